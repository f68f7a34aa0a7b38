"""CloudEvents from inference payload loggers: KServe's agent, Seldon's executor, or any structured-mode sender.

KServe's logger (``pkg/logger/worker.go``, cloudevents sdk-go v2, binary content mode) posts one event per request
and one per response, the raw request/response body as the HTTP body and the attributes as headers::

    Ce-Specversion: 1.0
    Ce-Id: <the request's Ce-Id header, else a fresh UUID>      -- the same on the request and the response event
    Ce-Type: org.kubeflow.serving.inference.request | org.kubeflow.serving.inference.response
    Ce-Source: http://localhost:9081/  (the agent's source URI)
    Ce-Time: 2026-11-28T22:15:33.123456789Z                     -- when the request arrived / the response was ready
    Ce-Recordedtime, Ce-Inferenceservicename, Ce-Namespace, Ce-Component, Ce-Endpoint, Ce-Metadata (JSON of the
    forwarded headers), Ce-Annotations (JSON, optional)
    Content-Type: <the inference request's content type>

The response event is only sent for a 200, and the two events travel separately (workers, retries), so they can
arrive in either order, or one of them never. Seldon's executor uses ``io.seldon.serving.inference.request`` /
``.response`` with a different ``Ce-Id`` per event and pairs them by ``Ce-Requestid``. Structured mode
(``Content-Type: application/cloudevents+json``) carries the same attributes in a JSON envelope, the body in
``data`` (JSON) or ``data_base64``.

:func:`from_binary` and :func:`from_structured` turn one HTTP request into an :class:`InferenceEvent` or raise
:class:`EventError` with a countable reason (``not_cloudevent``, ``unknown_type``, ``malformed_json``).

>>> event = from_binary({"ce-specversion": "1.0", "ce-id": "abc", "ce-type": "org.kubeflow.serving.inference.response",
...                      "ce-source": "http://localhost:9081/", "ce-time": "2026-11-28T22:15:33.123456789Z",
...                      "ce-inferenceservicename": "fraud", "content-type": "application/json"}, b"{}")
>>> event.kind, event.key, event.model, round(event.time % 60, 3)
('response', 'abc', 'fraud', 33.123)
>>> from_binary({"ce-id": "x", "ce-type": "com.example.other", "ce-source": "s", "ce-specversion": "1.0"}, b"")
Traceback (most recent call last):
...
goldwatch.watchdog.live.events.EventError: unknown_type: ...
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

from goldwatch.errors import DataError
from goldwatch.probe import is_probe_id

__all__ = ["EVENT_TYPES", "EventError", "InferenceEvent", "from_binary", "from_structured", "parse_time"]

Kind = Literal["request", "response"]

#: CloudEvents type -> (protocol, kind)
EVENT_TYPES: dict[str, tuple[str, Kind]] = {
    "org.kubeflow.serving.inference.request": ("kserve", "request"),
    "org.kubeflow.serving.inference.response": ("kserve", "response"),
    "io.seldon.serving.inference.request": ("seldon", "request"),
    "io.seldon.serving.inference.response": ("seldon", "response"),
}
_REQUIRED = ("id", "source", "specversion", "type")
_CORE = frozenset({*_REQUIRED, "time", "datacontenttype", "dataschema", "subject", "data", "data_base64"})
STRUCTURED = "application/cloudevents+json"


class EventError(DataError):
    """An HTTP request that is not a usable inference CloudEvent; ``reason`` says why, for counting."""

    def __init__(self, reason: str, what: str) -> None:
        self.reason = reason
        super().__init__(what, where=reason)


@dataclasses.dataclass(frozen=True)
class InferenceEvent:
    """One logged request or response. ``key`` pairs a request with its response (``ce-id`` for KServe,
    ``ce-requestid`` for Seldon); ``model`` is the InferenceService (or Seldon model) the event names, if any;
    ``time``: the event's ``time`` as epoch seconds (None when absent); ``extensions``: the other attributes;
    ``body``: the raw body, or the parsed JSON ``data`` of a structured-mode event."""

    kind: Kind
    key: str
    event_id: str
    protocol: str
    source: str
    body: bytes | Mapping[str, Any]
    content_type: str = "application/json"
    time_text: str | None = None
    model: str | None = None
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def extensions(self) -> dict[str, str]:
        """The attributes beyond the CloudEvents core ones (built when asked: the hot path never needs them)."""
        return {k: str(v) for k, v in self.attributes.items() if k not in _CORE}

    @property
    def time(self) -> float | None:
        """``time`` as epoch seconds (parsed when asked: the sink's hot path never needs it); None when absent or
        unreadable -- an unreadable time is no reason to lose the payload."""
        if not self.time_text:
            return None
        try:
            return parse_time(self.time_text)
        except ValueError:
            return None

    @property
    def probe(self) -> bool:
        """goldwatch's own traffic (its golden replays), recognised by the id it set."""
        return is_probe_id(self.key) or is_probe_id(self.event_id)


_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$")


def parse_time(value: str) -> float:
    """RFC 3339 (``ce-time``, nanoseconds allowed) to epoch seconds; raises ValueError.

    >>> parse_time("1970-01-01T00:00:01.5Z"), parse_time("1970-01-01T01:00:00+01:00")
    (1.5, 0.0)
    """
    m = _TIME.match(value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    frac = m.group(7)
    if frac:
        seconds += int(frac[:9].ljust(9, "0")) / 1e9
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    return float(seconds)


def read_attributes(attrs: Mapping[str, Any]) -> tuple[str, Kind, str, str, str | None]:
    """Check an event's CloudEvents attributes; (protocol, kind, event id, pairing key, model named or None).
    Raises :class:`EventError` (``not_cloudevent``, ``unknown_type``)."""
    missing = [a for a in _REQUIRED if not attrs.get(a)]
    if missing:
        raise EventError("not_cloudevent", f"missing CloudEvents attribute(s) {', '.join(missing)}")
    if str(attrs["specversion"]) != "1.0":
        raise EventError("not_cloudevent", f"specversion {attrs['specversion']!r} (this sink reads 1.0)")
    ce_type = str(attrs["type"])
    mapped = EVENT_TYPES.get(ce_type)
    if mapped is None:
        raise EventError("unknown_type", f"type {ce_type!r} is not an inference request or response "
                                         f"(known: {', '.join(EVENT_TYPES)})")
    protocol, kind = mapped
    event_id = str(attrs["id"])
    key = event_id
    if protocol == "seldon":
        key = str(attrs.get("requestid") or event_id)
    model = attrs.get("inferenceservicename") or attrs.get("modelid") or None
    return protocol, kind, event_id, key, None if model is None else str(model)


def make_event(attrs: Mapping[str, Any], read: tuple[str, Kind, str, str, str | None],
               body: bytes | Mapping[str, Any], content_type: str) -> InferenceEvent:
    """The event of attributes already read by :func:`read_attributes`."""
    protocol, kind, event_id, key, model = read
    when = attrs.get("time")
    return InferenceEvent(kind=kind, key=key, event_id=event_id, protocol=protocol, source=str(attrs["source"]),
                          body=body, content_type=content_type, time_text=None if when is None else str(when),
                          model=model, attributes=attrs)


def _event(attrs: Mapping[str, Any], body: bytes | Mapping[str, Any], content_type: str) -> InferenceEvent:
    return make_event(attrs, read_attributes(attrs), body, content_type)


def from_binary(headers: Mapping[str, str], body: bytes) -> InferenceEvent:
    """A binary-mode event: ``headers`` with lower-case names (``ce-*`` attributes, ``content-type``)."""
    attrs = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    return _event(attrs, body, headers.get("content-type", "application/json"))


def from_structured(body: bytes) -> InferenceEvent:
    """A structured-mode event (``application/cloudevents+json``): attributes and data in one JSON envelope."""
    from goldwatch.watchdog.live.payload import loads

    try:
        envelope = loads(body)
    except (ValueError, TypeError) as exc:
        raise EventError("malformed_json", f"the CloudEvents envelope is not JSON ({str(exc)[:120]})") from None
    if not isinstance(envelope, Mapping):
        raise EventError("not_cloudevent", "the CloudEvents envelope must be a JSON object")
    content_type = str(envelope.get("datacontenttype") or "application/json")
    if "data_base64" in envelope:
        try:
            data = base64.b64decode(str(envelope["data_base64"]), validate=True)
        except ValueError:
            raise EventError("not_cloudevent", "data_base64 is not base64") from None
    elif "data" in envelope:
        raw = envelope["data"]
        # JSON data arrives parsed: kept as it is (decode_body takes a mapping), never re-serialised
        data = raw.encode() if isinstance(raw, str) else raw
    else:
        data = b""
    return _event(envelope, data, content_type)
