"""Typed alert and change events, and their PagerDuty Events API v2 wire format with its limits.

The limits come from PagerDuty's Events API v2 documentation: ``routing_key`` is 32 characters, ``dedup_key`` at
most 255, ``payload.summary`` at most 1024, ``severity`` one of critical|error|warning|info, image ``src`` must be
HTTPS, and a whole event is at most 512 KB. An event that is too large is *trimmed*, never rejected: the summary is
cut on a character boundary and ``custom_details`` is shrunk first (largest values first), then images, then links,
and the event says what was trimmed so a responder knows to look at goldwatch's journal for the rest.

The routing key is never part of a stored event: it is added by the sink at the moment of sending, so the outbox
on disk holds no secret.

>>> import datetime as dt
>>> ev = AlertEvent(action="trigger", dedup_key="goldwatch/fraud/integrity", summary="digest mismatch",
...                 source="pod-1", severity="critical",
...                 timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
>>> body = ev.to_pagerduty()
>>> body["event_action"], body["payload"]["severity"], body["payload"]["timestamp"]
('trigger', 'critical', '2026-01-02T03:04:05.000+00:00')
>>> AlertEvent(action="resolve", dedup_key="goldwatch/fraud/integrity").to_pagerduty()
{'event_action': 'resolve', 'dedup_key': 'goldwatch/fraud/integrity'}
>>> truncate_text("héllo wörld", 8)
'héllo w…'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from goldwatch.errors import DataError
from goldwatch.serialize import to_jsonable

__all__ = [
    "MAX_DEDUP_KEY_CHARS",
    "MAX_EVENT_BYTES",
    "MAX_SUMMARY_CHARS",
    "ROUTING_KEY_CHARS",
    "AlertEvent",
    "ChangeEvent",
    "EventAction",
    "Image",
    "Link",
    "Severity",
    "encode_body",
    "fit_to_size",
    "truncate_text",
]

Severity = Literal["critical", "error", "warning", "info"]
EventAction = Literal["trigger", "acknowledge", "resolve"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
EVENT_ACTIONS: tuple[str, ...] = get_args(EventAction)

ROUTING_KEY_CHARS = 32
MAX_DEDUP_KEY_CHARS = 255
MAX_SUMMARY_CHARS = 1024
MAX_EVENT_BYTES = 512 * 1024
ELLIPSIS = "…"
TRIM_MARKER = "goldwatch_trimmed"


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (code points, never half a UTF-8 sequence), ending in "…"."""
    if limit < 1:
        raise DataError(f"cannot cut text to {limit} characters", hint="use a limit of at least 1")
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise DataError(
            f"timestamp {value.isoformat()} has no time zone",
            where="alert event",
            hint="pass an aware datetime, e.g. datetime.now(timezone.utc)",
        )
    return value.isoformat(timespec="milliseconds")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Link:
    """A link shown on the incident (e.g. the runbook)."""

    href: str
    text: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {"href": self.href, **({"text": self.text} if self.text else {})}


@dataclasses.dataclass(frozen=True)
class Image:
    """An image shown on the incident; PagerDuty requires ``src`` to be served over HTTPS."""

    src: str
    href: str | None = None
    alt: str | None = None

    def __post_init__(self) -> None:
        if not self.src.lower().startswith("https://"):
            raise DataError(
                f"image src {self.src!r} is not an HTTPS URL", where="alert event images",
                hint="PagerDuty only shows images served over https://",
            )

    def to_dict(self) -> dict[str, str]:
        out = {"src": self.src}
        if self.href:
            out["href"] = self.href
        if self.alt:
            out["alt"] = self.alt
        return out


def _check_dedup_key(key: str) -> None:
    if not key or len(key) > MAX_DEDUP_KEY_CHARS:
        raise DataError(
            f"dedup_key has {len(key)} characters", where="alert event",
            hint=f"use 1 to {MAX_DEDUP_KEY_CHARS} characters (see goldwatch.watchdog.alerts.dedup.dedup_key)",
        )


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """One alert event: ``trigger`` opens (or updates) the incident of ``dedup_key``; ``resolve`` closes it.

    ``summary``, ``source`` and ``severity`` are required for a trigger. ``event_class`` is PagerDuty's ``class``
    (a Python keyword). ``custom_details`` holds the evidence; it is converted with
    :func:`goldwatch.serialize.to_jsonable`, so numpy values and dataclasses may be passed.
    """

    action: EventAction
    dedup_key: str
    summary: str = ""
    source: str = ""
    severity: Severity = "error"
    timestamp: dt.datetime = dataclasses.field(default_factory=_now)
    component: str | None = None
    group: str | None = None
    event_class: str | None = None
    custom_details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    links: Sequence[Link] = ()
    images: Sequence[Image] = ()
    client: str | None = "goldwatch"
    client_url: str | None = None

    def __post_init__(self) -> None:
        if self.action not in EVENT_ACTIONS:
            raise DataError(f"unknown event action {self.action!r}", where="alert event",
                            hint=f"use one of {', '.join(EVENT_ACTIONS)}")
        _check_dedup_key(self.dedup_key)
        if self.action == "trigger":
            if self.severity not in SEVERITIES:
                raise DataError(f"unknown severity {self.severity!r}", where="alert event",
                                hint=f"use one of {', '.join(SEVERITIES)}")
            if not self.summary.strip() or not self.source.strip():
                raise DataError("a trigger needs a non-empty summary and source", where="alert event",
                                hint="say what failed (summary) and on which host/pod (source)")
        _timestamp(self.timestamp)

    def to_pagerduty(self, *, max_bytes: int = MAX_EVENT_BYTES - 64) -> dict[str, Any]:
        """The ``/v2/enqueue`` body without ``routing_key``, trimmed to fit ``max_bytes`` once the key is added.

        The default leaves 64 bytes for ``"routing_key":"<32 chars>",``.
        """
        body: dict[str, Any] = {"event_action": self.action, "dedup_key": self.dedup_key}
        if self.action != "trigger":
            # acknowledge/resolve carry only the key: PagerDuty ignores a payload on them.
            return body
        payload: dict[str, Any] = {
            "summary": truncate_text(self.summary, MAX_SUMMARY_CHARS),
            "source": self.source,
            "severity": self.severity,
            "timestamp": _timestamp(self.timestamp),
        }
        for key, value in (("component", self.component), ("group", self.group), ("class", self.event_class)):
            if value:
                payload[key] = value
        payload["custom_details"] = to_jsonable(dict(self.custom_details))
        body["payload"] = payload
        if self.links:
            body["links"] = [link.to_dict() for link in self.links]
        if self.images:
            body["images"] = [image.to_dict() for image in self.images]
        if self.client:
            body["client"] = self.client
        if self.client_url:
            body["client_url"] = self.client_url
        return fit_to_size(body, max_bytes=max_bytes)

    def to_text(self) -> str:
        """One line for chat webhooks: severity, summary, source."""
        summary = truncate_text(self.summary, MAX_SUMMARY_CHARS)
        if self.action == "trigger":
            return f"[{self.severity.upper()}] {summary} (on {self.source})"
        return f"[{self.action.upper()}] {self.dedup_key}" + (f": {summary}" if summary else "")


@dataclasses.dataclass(frozen=True)
class ChangeEvent:
    """A change event (``/v2/change/enqueue``): a promotion or rollback shown next to incidents, never a page.

    Change events take only ``summary``, ``source``, ``timestamp``, ``custom_details`` and ``links``.
    """

    summary: str
    source: str | None = None
    timestamp: dt.datetime = dataclasses.field(default_factory=_now)
    custom_details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    links: Sequence[Link] = ()

    def __post_init__(self) -> None:
        if not self.summary.strip():
            raise DataError("a change event needs a non-empty summary", where="change event",
                            hint="say what changed, e.g. 'promoted fraud v7'")
        _timestamp(self.timestamp)

    def to_pagerduty(self, *, max_bytes: int = MAX_EVENT_BYTES - 64) -> dict[str, Any]:
        """The ``/v2/change/enqueue`` body without ``routing_key``, trimmed to fit ``max_bytes``."""
        payload: dict[str, Any] = {
            "summary": truncate_text(self.summary, MAX_SUMMARY_CHARS),
            "timestamp": _timestamp(self.timestamp),
        }
        if self.source:
            payload["source"] = self.source
        payload["custom_details"] = to_jsonable(dict(self.custom_details))
        body: dict[str, Any] = {"payload": payload}
        if self.links:
            body["links"] = [link.to_dict() for link in self.links]
        return fit_to_size(body, max_bytes=max_bytes)

    def to_text(self) -> str:
        summary = truncate_text(self.summary, MAX_SUMMARY_CHARS)
        return f"[CHANGE] {summary}" + (f" (on {self.source})" if self.source else "")


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The exact bytes goldwatch sends: compact JSON, UTF-8 (sizes are measured on these bytes)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _size(obj: Any) -> int:
    return len(encode_body(obj)) if isinstance(obj, Mapping) else len(
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    )


def fit_to_size(body: dict[str, Any], *, max_bytes: int) -> dict[str, Any]:
    """Shrink ``body`` (a PagerDuty event without the key) until its encoding is at most ``max_bytes``.

    Order, cheapest loss first: the largest ``custom_details`` values are replaced by a cut-down text of
    themselves (then dropped if even that does not fit), then images, then links go. ``custom_details`` gains
    ``goldwatch_trimmed`` listing what was cut and the original size. Raises :class:`DataError` only if the
    event cannot fit even with all of those removed.

    >>> big = {"payload": {"summary": "s", "custom_details": {"keep": 1, "log": "x" * 5000}}}
    >>> small = fit_to_size(big, max_bytes=1000)
    >>> len(encode_body(small)) <= 1000, small["payload"]["custom_details"]["keep"]
    (True, 1)
    >>> small["payload"]["custom_details"]["goldwatch_trimmed"]["cut"]
    ['log']
    """
    original = _size(body)
    if original <= max_bytes:
        return body
    body = json.loads(encode_body(body))  # a deep copy we may edit
    payload = body.get("payload", {})
    details: dict[str, Any] = payload.get("custom_details") or {}
    report: dict[str, Any] = {"original_bytes": original, "limit_bytes": max_bytes, "cut": [], "dropped": []}
    payload["custom_details"] = details
    details[TRIM_MARKER] = report

    def over() -> int:
        return _size(body) - max_bytes

    # Largest values first: one huge log or table is usually the whole problem, and the small numbers
    # (measured, threshold, versions) a responder needs survive.
    sizes = sorted(((k, _size(v)) for k, v in details.items() if k != TRIM_MARKER), key=lambda kv: -kv[1])
    for key, size in sizes:
        excess = over()
        if excess <= 0:
            break
        report["cut"].append(key)
        # a character costs at most 6 bytes once JSON-escaped (\u00XX); leave room for the growing marker
        keep_chars = (size - excess) // 6 - 64
        if keep_chars >= 16:
            text = details[key] if isinstance(details[key], str) else json.dumps(details[key], ensure_ascii=False)
            details[key] = truncate_text(text, keep_chars)
            if over() <= 0:
                break
        report["cut"].remove(key)
        report["dropped"].append(key)
        del details[key]
    for key in ("images", "links"):
        if over() > 0 and key in body:
            report["dropped"].append(key)
            del body[key]
    if over() > 0:
        raise DataError(
            f"the event is {_size(body)} bytes even without details, images and links (limit {max_bytes})",
            where="alert event",
            hint="shorten source, component, group or class",
        )
    return body
