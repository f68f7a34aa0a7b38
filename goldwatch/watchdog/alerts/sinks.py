"""Where alerts go: PagerDuty Events API v2 and a generic JSON webhook, behind one small interface.

**Why our own client and not PagerDuty's ``pagerduty`` package.** For the Events API the client is one JSON POST
to ``/v2/enqueue`` or ``/v2/change/enqueue``; everything that matters for goldwatch is around it and has to be
goldwatch's anyway: persistence before sending, retry with backoff that survives a restart, per-key ordering,
dead letters, a rate limit shared across processes, exact control of the bytes sent (the 512 KB limit is measured
on them) and a routing key that never reaches a log. A library that retries inside the call would block the
sidecar and lose its retry state on a crash, so we would disable it and use it only to build a dict. httpx is
already a dependency and gives us an injectable transport (``httpx.BaseTransport``, one method) so tests can
script every answer, and a real local server can play PagerDuty. So: a small client of our own.

Each sink turns an event into a stored body (:meth:`render`, no secret in it) and later sends that body
(:meth:`send`), answering with a :class:`SendResult`: ``delivered`` (PagerDuty's 202), ``retry`` (429, 5xx,
network error, timeout) or ``reject`` (400 and other client errors: retrying cannot help).

>>> import httpx
>>> seen = []
>>> def answer(request):
...     seen.append(request.url.path)
...     return httpx.Response(202, json={"status": "success", "message": "Event processed"})
>>> sink = PagerDutySink("0123456789abcdef0123456789abcdef", events_url="https://pd.example",
...                      transport=httpx.MockTransport(answer))
>>> kind, body = sink.render(ChangeEvent(summary="promoted fraud v7"))
>>> sink.send(kind, body).outcome, seen
('delivered', ['/v2/change/enqueue'])
>>> "0123456789abcdef" in repr(sink)
False
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx

from goldwatch._http import client as http_client
from goldwatch.errors import ConfigError
from goldwatch.logs import get_logger, redact
from goldwatch.watchdog.alerts.events import (
    MAX_EVENT_BYTES,
    ROUTING_KEY_CHARS,
    AlertEvent,
    ChangeEvent,
    encode_body,
)

__all__ = [
    "DEFAULT_EVENTS_URL",
    "EventKind",
    "PagerDutySink",
    "SendResult",
    "Sink",
    "WebhookSink",
]

log = get_logger(__name__)

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
EventKind = Literal["alert", "change"]
_PATHS: dict[str, str] = {"alert": "/v2/enqueue", "change": "/v2/change/enqueue"}


@dataclasses.dataclass(frozen=True)
class SendResult:
    """The outcome of one delivery attempt. ``detail`` never contains a secret."""

    outcome: Literal["delivered", "retry", "reject"]
    status_code: int | None = None
    detail: str = ""
    retry_after_s: float | None = None


@runtime_checkable
class Sink(Protocol):
    """What the outbox needs from a destination.

    ``name`` is stored with each queued event (so a restarted process finds the sink again from its config);
    ``route`` groups events for the rate limit and is derived from, but never equal to, the secret.
    """

    name: str
    route: str
    rate_limit_per_minute: int | None

    def render(self, event: AlertEvent | ChangeEvent) -> tuple[EventKind, dict[str, Any]]: ...

    def send(self, kind: str, body: Mapping[str, Any]) -> SendResult: ...

    def close(self) -> None: ...


class _MaskSecrets(logging.Filter):
    """Masks sink secrets in records of the HTTP client's own loggers.

    httpx logs each request's URL at INFO ("HTTP Request: POST https://hooks.slack.com/services/T/B/secret");
    a webhook URL is a secret, and those loggers are outside the ``goldwatch`` tree that
    :func:`goldwatch.logs.redact` covers, so the sinks put this filter on them.
    """

    secrets: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(secret in text for secret in self.secrets):
                for secret in self.secrets:
                    text = text.replace(secret, "[REDACTED]")
                record.msg, record.args = text, None
        return True


_MASK = _MaskSecrets()


def _guard_secret(secret: str) -> None:
    redact(secret)
    _MaskSecrets.secrets.add(secret)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None  # unparseable: our own backoff applies


def _classify(response: httpx.Response, *, mask: str) -> SendResult:
    code = response.status_code
    if 200 <= code < 300:
        return SendResult("delivered", code)
    # PagerDuty's 400 lists the reasons in "errors"; keep them (masked) as the dead letter's reason.
    text = response.text[:2000]
    try:
        data = response.json()
        if isinstance(data, Mapping):
            parts = [str(data.get("message", ""))] + [str(e) for e in data.get("errors", []) or []]
            text = "; ".join(p for p in parts if p) or text
    except ValueError:
        pass
    text = text.replace(mask, "[REDACTED]") if mask else text
    detail = f"HTTP {code}: {text}".strip()
    if code == 429 or code == 408 or code >= 500:
        return SendResult("retry", code, detail, _retry_after(response))
    return SendResult("reject", code, detail)


class _HttpSink:
    """Shared HTTP plumbing: one pooled client, timeouts, and mapping transport errors to ``retry``."""

    name: str
    route: str
    rate_limit_per_minute: int | None

    def __init__(self, *, secret: str, timeout_s: float, transport: httpx.BaseTransport | None) -> None:
        _guard_secret(secret)
        self._secret = secret
        self._client = http_client(  # a local relay or stand-in on loopback is never reached through a proxy
            timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=False,
            headers={"Content-Type": "application/json", "User-Agent": "goldwatch"},
        )

    def _post(self, url: str, content: bytes) -> SendResult:
        try:
            response = self._client.post(url, content=content)
        except httpx.TimeoutException as exc:
            return SendResult("retry", None, f"timed out ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return SendResult("retry", None, f"network error: {type(exc).__name__}: {exc}".replace(
                self._secret, "[REDACTED]"))
        return _classify(response, mask=self._secret)

    def close(self) -> None:
        self._client.close()


class PagerDutySink(_HttpSink):
    """PagerDuty Events API v2: alert events to ``/v2/enqueue``, change events to ``/v2/change/enqueue``.

    ``routing_key`` is the 32-character integration key; it is added to the body only when sending, registered
    with :func:`goldwatch.logs.redact`, and never stored, logged or shown in ``repr``. ``events_url`` is the API's
    base URL (PagerDuty's by default; a proxy or a test server otherwise).
    """

    def __init__(
        self,
        routing_key: str,
        *,
        events_url: str = DEFAULT_EVENTS_URL,
        name: str = "pagerduty",
        timeout_s: float = 10.0,
        rate_limit_per_minute: int | None = 120,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = routing_key.strip()
        if len(key) != ROUTING_KEY_CHARS or any(c.isspace() for c in key):
            # Name the length, never the value.
            raise ConfigError(
                f"the PagerDuty routing key has {len(key)} characters, expected {ROUTING_KEY_CHARS} without spaces",
                where="PagerDuty routing key",
                hint="copy the Integration Key of an Events API v2 integration into GOLDWATCH_PAGERDUTY_ROUTING_KEY",
            )
        if not events_url.startswith(("http://", "https://")):
            raise ConfigError(f"events URL {events_url!r} is not an http(s) URL", where="alerts.pagerduty.events_url",
                              hint=f"use e.g. {DEFAULT_EVENTS_URL}")
        super().__init__(secret=key, timeout_s=timeout_s, transport=transport)
        self.name = name
        self.route = f"pagerduty:{_fingerprint(key)}"
        self.rate_limit_per_minute = rate_limit_per_minute
        self.events_url = events_url.rstrip("/")

    def __repr__(self) -> str:
        return f"PagerDutySink(name={self.name!r}, events_url={self.events_url!r}, route={self.route!r})"

    def render(self, event: AlertEvent | ChangeEvent) -> tuple[EventKind, dict[str, Any]]:
        kind: EventKind = "change" if isinstance(event, ChangeEvent) else "alert"
        # Leave room for ,"routing_key":"<32 chars>" so the sent event is within 512 KB.
        return kind, event.to_pagerduty(max_bytes=MAX_EVENT_BYTES - len(',"routing_key":""') - ROUTING_KEY_CHARS)

    def send(self, kind: str, body: Mapping[str, Any]) -> SendResult:
        path = _PATHS.get(kind)
        if path is None:
            return SendResult("reject", None, f"unknown event kind {kind!r} for PagerDuty")
        content = encode_body({"routing_key": self._secret, **body})
        if len(content) > MAX_EVENT_BYTES:
            return SendResult("reject", None, f"event is {len(content)} bytes, over PagerDuty's {MAX_EVENT_BYTES}")
        result = self._post(self.events_url + path, content)
        log.debug("pagerduty %s %s -> %s %s", kind, body.get("event_action", ""), result.outcome,
                  result.status_code)
        return result


class WebhookSink(_HttpSink):
    """A generic JSON webhook (e.g. a Slack incoming webhook): ``{"text": ..., "goldwatch": {...}}``.

    ``text`` is the one line chat tools show; ``goldwatch`` carries the same structured event PagerDuty gets
    (without any routing key). The URL often embeds a token, so it is treated as a secret like a routing key.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        timeout_s: float = 10.0,
        rate_limit_per_minute: int | None = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"the URL of webhook {name!r} is not an http(s) URL", where=f"webhook {name}",
                              hint="set the variable or file to the full https:// URL")
        super().__init__(secret=url, timeout_s=timeout_s, transport=transport)
        self.name = name
        self.route = f"webhook:{_fingerprint(url)}"
        self.rate_limit_per_minute = rate_limit_per_minute
        self._url = url

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, route={self.route!r})"

    def render(self, event: AlertEvent | ChangeEvent) -> tuple[EventKind, dict[str, Any]]:
        kind: EventKind = "change" if isinstance(event, ChangeEvent) else "alert"
        return kind, {"text": event.to_text(), "goldwatch": {"kind": kind, "event": event.to_pagerduty()}}

    def send(self, kind: str, body: Mapping[str, Any]) -> SendResult:
        result = self._post(self._url, encode_body(body))
        log.debug("webhook %s %s -> %s %s", self.name, kind, result.outcome, result.status_code)
        return result
