"""A local stand-in for PagerDuty's Events API v2 that validates every event strictly and answers as scripted.

It serves ``POST /v2/enqueue`` (alert events) and ``POST /v2/change/enqueue`` (change events) on 127.0.0.1 from a
stdlib ``ThreadingHTTPServer`` in a thread. Each request is checked against the documented schema
(developer.pagerduty.com, "Send an Alert Event", "Send a Change Event", "Events API v2 Overview"):

* body: JSON object, ``Content-Type: application/json``, at most 512 KB;
* ``routing_key``: string of exactly 32 characters; unknown top-level or payload keys are refused;
* alert: ``event_action`` in trigger|acknowledge|resolve; ``dedup_key`` a string of 1..255 characters, required for
  acknowledge and resolve; a trigger needs ``payload`` with ``summary`` (1..1024 characters), ``source`` (non-empty)
  and ``severity`` in critical|error|warning|info; ``timestamp`` ISO 8601; ``component``, ``group``, ``class``
  strings; ``custom_details`` an object; ``images`` objects with an HTTPS ``src`` (``href``, ``alt`` optional);
  ``links`` objects with ``href`` (``text`` optional); ``client``/``client_url`` strings;
* change: only ``routing_key``, ``payload`` (``summary`` required, ``source``, ``timestamp``, ``custom_details``)
  and ``links``.

A valid event gets 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``, an invalid one
400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``. :meth:`script` queues
answers for the next requests: an HTTP status (202, 400, 429, 500, 503...) or ``"hang"`` (never answer until
released). The stub also plays PagerDuty's incident logic per (routing_key, dedup_key) -- a trigger opens an
incident or adds to the open one, resolve closes it, a trigger after a resolve opens a new one -- so tests can
assert "one incident per problem".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from goldwatch._http_server import QuietKeepAliveHandler

MAX_BYTES = 512 * 1024
SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}
ALERT_KEYS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
ALERT_PAYLOAD_KEYS = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
CHANGE_KEYS = {"routing_key", "payload", "links"}
CHANGE_PAYLOAD_KEYS = {"summary", "source", "timestamp", "custom_details"}


def _is_iso8601(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value and parsed.tzinfo is not None


def _check_links(body: dict[str, Any], errors: list[str]) -> None:
    links = body.get("links")
    if links is None:
        return
    if not isinstance(links, list):
        errors.append("'links' must be an array")
        return
    for i, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str) or not link["href"]:
            errors.append(f"links[{i}].href is required")
            continue
        if set(link) - {"href", "text"}:
            errors.append(f"links[{i}] has unknown keys {sorted(set(link) - {'href', 'text'})}")
        if "text" in link and not isinstance(link["text"], str):
            errors.append(f"links[{i}].text must be a string")


def _check_images(body: dict[str, Any], errors: list[str]) -> None:
    images = body.get("images")
    if images is None:
        return
    if not isinstance(images, list):
        errors.append("'images' must be an array")
        return
    for i, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("src"), str):
            errors.append(f"images[{i}].src is required")
            continue
        if not image["src"].startswith("https://"):
            errors.append(f"images[{i}].src must be served via HTTPS")
        if set(image) - {"src", "href", "alt"}:
            errors.append(f"images[{i}] has unknown keys")
        for key in ("href", "alt"):
            if key in image and not isinstance(image[key], str):
                errors.append(f"images[{i}].{key} must be a string")


def _check_common(body: Any, allowed: set[str], errors: list[str]) -> bool:
    if not isinstance(body, dict):
        errors.append("the event must be a JSON object")
        return False
    unknown = set(body) - allowed
    if unknown:
        errors.append(f"unknown keys {sorted(unknown)}")
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    return True


def _check_summary(payload: dict[str, Any], errors: list[str]) -> None:
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is required")
    elif len(summary) > 1024:
        errors.append(f"'payload.summary' is {len(summary)} characters (max 1024)")


def validate_alert(body: Any) -> list[str]:
    """Errors of an ``/v2/enqueue`` body ([] when valid)."""
    errors: list[str] = []
    if not _check_common(body, ALERT_KEYS, errors):
        return errors
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {sorted(ACTIONS)}, got {action!r}")
    if "dedup_key" in body:
        key = body["dedup_key"]
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            errors.append("'dedup_key' must be a string of 1 to 255 characters")
    elif action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required for {action}")
    payload = body.get("payload")
    if payload is None:
        if action == "trigger":
            errors.append("'payload' is required for trigger")
    elif not isinstance(payload, dict):
        errors.append("'payload' must be an object")
    else:
        if set(payload) - ALERT_PAYLOAD_KEYS:
            errors.append(f"unknown payload keys {sorted(set(payload) - ALERT_PAYLOAD_KEYS)}")
        _check_summary(payload, errors)
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("'payload.source' is required")
        if payload.get("severity") not in SEVERITIES:
            errors.append(f"'payload.severity' must be one of {sorted(SEVERITIES)}")
        if "timestamp" in payload and not _is_iso8601(payload["timestamp"]):
            errors.append("'payload.timestamp' must be an ISO 8601 timestamp with a time zone")
        for key in ("component", "group", "class"):
            if key in payload and not isinstance(payload[key], str):
                errors.append(f"'payload.{key}' must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
    for key in ("client", "client_url"):
        if key in body and not isinstance(body[key], str):
            errors.append(f"'{key}' must be a string")
    _check_links(body, errors)
    _check_images(body, errors)
    return errors


def validate_change(body: Any) -> list[str]:
    """Errors of a ``/v2/change/enqueue`` body ([] when valid)."""
    errors: list[str] = []
    if not _check_common(body, CHANGE_KEYS, errors):
        return errors
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is required and must be an object")
    else:
        if set(payload) - CHANGE_PAYLOAD_KEYS:
            errors.append(f"unknown payload keys {sorted(set(payload) - CHANGE_PAYLOAD_KEYS)}")
        _check_summary(payload, errors)
        if "source" in payload and not isinstance(payload["source"], str):
            errors.append("'payload.source' must be a string")
        if "timestamp" in payload and not _is_iso8601(payload["timestamp"]):
            errors.append("'payload.timestamp' must be an ISO 8601 timestamp with a time zone")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
    _check_links(body, errors)
    return errors


@dataclasses.dataclass
class Received:
    """One request as the stub saw it, with the answer it gave, any schema errors, and when it arrived (epoch s)."""

    path: str
    body: Any
    status: int | str
    errors: list[str]
    size: int
    at: float = dataclasses.field(default_factory=time.time)


@dataclasses.dataclass
class StubIncident:
    routing_key: str
    dedup_key: str
    number: int
    state: str = "triggered"
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class PagerDutyStub:
    """Start with ``with PagerDutyStub() as pd:``; ``pd.url`` is the Events API base URL."""

    def __init__(self, *, hang_s: float = 30.0) -> None:
        self.hang_s = hang_s
        self.requests: list[Received] = []
        self.incidents: list[StubIncident] = []
        self._answers: deque[int | str] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        stub = self

        class Handler(QuietKeepAliveHandler):
            def do_POST(self) -> None:
                stub._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> PagerDutyStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, *answers: int | str) -> None:
        """Answers for the next requests, in order (then valid events get 202 again)."""
        with self._lock:
            self._answers.extend(answers)

    def clear_script(self) -> None:
        """Forget scripted answers: from now on valid events get 202 (the outage is over)."""
        with self._lock:
            self._answers.clear()

    def release(self) -> None:
        """Let hanging requests finish (they get no answer)."""
        self._release.set()

    # -- views -----------------------------------------------------------------------------------------------

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status == 202]

    @property
    def violations(self) -> list[Received]:
        """Requests whose body broke the schema, whatever the scripted answer was."""
        return [r for r in self.requests if r.errors]

    def accepted_actions(self) -> list[tuple[str, str | None]]:
        return [(r.body.get("event_action", "change"), r.body.get("dedup_key")) for r in self.accepted]

    # -- request handling ------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        errors: list[str] = []
        body: Any = None
        if h.path not in ("/v2/enqueue", "/v2/change/enqueue"):
            self._reply(h, 404, {"status": "not found"})
            return
        if (h.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            errors.append("Content-Type must be application/json")
        if len(raw) > MAX_BYTES:
            errors.append(f"event is {len(raw)} bytes (max {MAX_BYTES})")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            errors.append("body is not valid JSON")
        if body is not None:
            errors += validate_alert(body) if h.path == "/v2/enqueue" else validate_change(body)
        with self._lock:
            answer: int | str = self._answers.popleft() if self._answers else 202
            record = Received(h.path, body, answer, errors, len(raw))
            self.requests.append(record)
        if answer == "hang":
            self._release.wait(self.hang_s)
            h.close_connection = True
            return
        status = int(answer)
        if status == 202 and errors:
            record.status = 400
            self._reply(h, 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
            return
        if status == 202:
            dedup = self._apply(h.path, body)
            self._reply(h, 202, {"status": "success", "message": "Event processed", "dedup_key": dedup})
        elif status == 400:
            self._reply(h, 400, {"status": "invalid event", "message": "Event object is invalid",
                                 "errors": errors or ["scripted 400"]})
        elif status == 429:
            self._reply(h, 429, None, text="Request Limit Exceeded")
        else:
            self._reply(h, status, None, text="Internal Server Error")

    def _apply(self, path: str, body: dict[str, Any]) -> str | None:
        """PagerDuty's documented alert de-duplication, per (routing_key, dedup_key)."""
        if path != "/v2/enqueue":
            return None
        key = body.get("dedup_key") or str(uuid.uuid4())
        with self._lock:
            open_ = [i for i in self.incidents if i.routing_key == body["routing_key"] and i.dedup_key == key
                     and i.state != "resolved"]
            action = body["event_action"]
            if action == "trigger":
                if open_:
                    open_[0].events.append(body)
                else:
                    number = 1 + sum(1 for i in self.incidents if i.dedup_key == key)
                    self.incidents.append(StubIncident(body["routing_key"], key, number, events=[body]))
            elif open_:  # acknowledge / resolve of a closed or unknown alert is dropped, as PagerDuty does
                open_[0].state = "acknowledged" if action == "acknowledge" else "resolved"
                open_[0].events.append(body)
        return key

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, data: Any, *, text: str | None = None) -> None:
        payload = (json.dumps(data) if data is not None else (text or "")).encode("utf-8")
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json" if data is not None else "text/plain")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:  # the client gave up (timeout test): nothing to answer
            pass


def incidents_for(stub: PagerDutyStub, dedup_key: str) -> list[StubIncident]:
    return [i for i in stub.incidents if i.dedup_key == dedup_key]


def bodies(records: Iterable[Received]) -> list[Any]:
    return [r.body for r in records]
