"""AlertManager: turn failing and recovering checks into incidents a responder can act on at 3 a.m.

One incident per (model, check class), with what failed and its numbers, which version is served now, the action
already taken and how long detection and recovery took against the RTO, a runbook link, and the host/pod. Every
event goes through the durable :class:`~goldwatch.watchdog.alerts.outbox.Outbox`, recorded in the same
transaction as the incident state, so a crash never loses an alert nor leaves the incident book out of step.

>>> import tempfile, pathlib, httpx
>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.alerts import Outbox, PagerDutySink
>>> sent = []
>>> def pagerduty(request):
...     sent.append(json.loads(request.content))
...     return httpx.Response(202, json={"status": "success"})
>>> sink = PagerDutySink("k" * 32, transport=httpx.MockTransport(pagerduty))
>>> box = Outbox.open(pathlib.Path(tempfile.mkdtemp()) / "alerts.sqlite")
>>> mgr = AlertManager(box, [sink], source="pod-7", runbook_url="https://runbooks.example/goldwatch", rto_s=60)
>>> bad = Check(name="integrity:digest", status="fail", summary="model.onnx: sha256 differs",
...             measured={"mismatched_files": 1}, threshold={"mismatched_files": 0})
>>> act = ActionTaken(kind="rollback", description="rolled back v7 -> v6", from_version="v7", to_version="v6")
>>> _ = mgr.trigger("fraud", "integrity", checks=[bad], served_version="v6", action=act,
...                 timing=Timing(detected_at=0.0, recovered_at=1.4, rto_s=60))
>>> _ = mgr.trigger("fraud", "integrity", checks=[bad], served_version="v6", action=act)  # unchanged: no page
>>> _ = mgr.resolve("fraud", "integrity")
>>> report = mgr.flush(timeout_s=5)
>>> [e["event_action"] for e in sent], sent[0]["payload"]["severity"]
(['trigger', 'resolve'], 'critical')
>>> print(sent[0]["payload"]["summary"])
fraud: integrity check failed: integrity:digest: model.onnx: sha256 differs; rolled back v7 -> v6
in 1.4 s (RTO 60 s met); serving v6
>>> mgr.close()
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from goldwatch.checks import Check
from goldwatch.errors import ConfigError
from goldwatch.logs import get_logger
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.alerts.dedup import Incident, IncidentBook, check_class, dedup_key
from goldwatch.watchdog.alerts.events import AlertEvent, ChangeEvent, Link, Severity
from goldwatch.watchdog.alerts.outbox import DeliveryReport, Outbox, RetryPolicy
from goldwatch.watchdog.alerts.sinks import DEFAULT_EVENTS_URL, PagerDutySink, Sink, WebhookSink

if TYPE_CHECKING:
    import httpx

    from goldwatch.config import AlertsConfig

__all__ = [
    "EVENTS_URL_ENV",
    "ActionTaken",
    "AlertManager",
    "AlertOutcome",
    "Timing",
    "build_sinks",
    "default_severity",
    "no_sink_error",
    "outbox_path",
    "page_fingerprint",
]

log = get_logger(__name__)

EVENTS_URL_ENV = "GOLDWATCH_PAGERDUTY_EVENTS_URL"

# The design's evidence table: proof that the model is wrong pages critical; an unreachable server is an
# error (never proof of corruption); drift is a warning.
_SEVERITY_BY_CLASS: dict[str, Severity] = {
    "integrity": "critical",
    "artifact": "critical",
    "fingerprint": "critical",
    "digest": "critical",
    "golden": "critical",
    "rollback": "critical",
    "server": "error",
    "readiness": "error",
    "runtime": "error",
    "drift": "warning",
    "test": "info",
}
_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def default_severity(check_class: str, *, only_errors: bool = False) -> Severity:
    """Severity for a failing check class; a check that merely *errored* (could not run) is at most ``error``.

    >>> default_severity("golden"), default_severity("drift"), default_severity("golden", only_errors=True)
    ('critical', 'warning', 'error')
    """
    severity = _SEVERITY_BY_CLASS.get(check_class, "error")
    if only_errors and _RANK[severity] > _RANK["error"]:
        return "error"
    return severity


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def _epoch(value: float | Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


@dataclasses.dataclass(frozen=True)
class ActionTaken:
    """What goldwatch already did about the problem, e.g. a rollback from ``v7`` to ``v6``."""

    kind: Literal["rollback", "fallback", "quarantine", "none"]
    description: str
    from_version: str | None = None
    to_version: str | None = None


@dataclasses.dataclass(frozen=True)
class Timing:
    """When the problem started (if known), was detected and was recovered from, in epoch seconds.

    (An aware ``datetime`` passed instead is converted to epoch seconds.)

    >>> t = Timing(started_at=100.0, detected_at=102.5, recovered_at=104.0, rto_s=60)
    >>> t.detection_s, t.recovery_s, t.total_s, t.within_rto
    (2.5, 1.5, 4.0, True)
    """

    detected_at: float
    started_at: float | None = None
    recovered_at: float | None = None
    rto_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("detected_at", "started_at", "recovered_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _epoch(value))

    @property
    def detection_s(self) -> float | None:
        return None if self.started_at is None else self.detected_at - self.started_at

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.detected_at

    @property
    def total_s(self) -> float | None:
        if self.recovered_at is None:
            return None
        return self.recovered_at - (self.started_at if self.started_at is not None else self.detected_at)

    @property
    def within_rto(self) -> bool | None:
        if self.rto_s is None or self.total_s is None:
            return None
        return self.total_s <= self.rto_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "detected_at": self.detected_at,
            "recovered_at": self.recovered_at,
            "detection_s": self.detection_s,
            "recovery_s": self.recovery_s,
            "total_s": self.total_s,
            "rto_s": self.rto_s,
            "within_rto": self.within_rto,
        }


@dataclasses.dataclass(frozen=True)
class AlertOutcome:
    """What a manager call did: whether events were stored for at least one sink (``queued``), why, and the
    outbox id per sink. ``reason`` is the incident decision (new, changed, renotify, unchanged, resolved, ...)."""

    action: Literal["trigger", "acknowledge", "resolve", "change"]
    dedup_key: str | None
    queued: bool
    reason: str
    outbox_ids: Mapping[str, int] = dataclasses.field(default_factory=dict)
    incident: Incident | None = None


def _check_entry(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "status": check.status,
        "summary": check.summary,
        "measured": to_jsonable(dict(check.measured)),
        "threshold": to_jsonable(dict(check.threshold)),
    }


class AlertManager:
    """Sends trigger/acknowledge/resolve and change events to every sink through the outbox.

    ``runbook_for(model, check_class)``: the runbook link of one incident (e.g. its disaster scenario's anchor in the
    generated runbooks); default ``runbook_url`` for every incident.
    ``renotify_s``: an unchanged, still-failing incident is re-sent (a reminder trigger on the same dedup key)
    at most this often. ``resolve_after_s``: :meth:`observe` resolves an incident only after its checks have
    passed for this long, so a flapping check keeps one incident.
    """

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        *,
        source: str | None = None,
        runbook_url: str | None = None,
        rto_s: float | None = None,
        renotify_s: float = 3600.0,
        resolve_after_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ConfigError(f"alert sink names must be unique, got {names}", where="alerts",
                              hint="give each webhook its own name")
        self.outbox = outbox
        self.sinks: dict[str, Sink] = {s.name: s for s in sinks}
        self.book = IncidentBook(outbox.connection)
        self.host = socket.gethostname()
        self.pod = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or self.host
        self.source = source or self.pod
        self.runbook_url = runbook_url
        self.runbook_for: Callable[[str, str], str | None] | None = None
        self.rto_s = rto_s
        self.renotify_s = renotify_s
        self.resolve_after_s = resolve_after_s
        self._clock = clock

    # -- construction ----------------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: AlertsConfig,
        *,
        default_dir: str | os.PathLike[str] = ".goldwatch",
        transport: httpx.BaseTransport | None = None,
        require_sink: bool = False,
        sinks: Sequence[Sink] | None = None,
    ) -> AlertManager:
        """Build sinks from ``config`` and the environment (unless ``sinks`` are given), and open the outbox.

        The outbox lives at ``alerts.outbox_path`` or ``<default_dir>/alerts.sqlite``.
        """
        if sinks is None:
            sinks = build_sinks(config, transport=transport)
        if require_sink and not sinks:
            raise no_sink_error(config)
        policy = RetryPolicy(base_s=config.retry_base_s, max_delay_s=config.retry_max_delay_s,
                             max_age_s=config.max_age_s)
        box = Outbox.open(outbox_path(config, default_dir=default_dir), policy=policy)
        return cls(
            box, sinks, source=config.source, runbook_url=config.runbook_url, rto_s=config.rto_seconds,
            renotify_s=config.renotify_s, resolve_after_s=config.resolve_after_s,
        )

    # -- events ----------------------------------------------------------------------------------------------

    def _queue(self, event: AlertEvent | ChangeEvent, order_key: str) -> dict[str, int]:
        # Render first (validation, trimming): bad input raises before anything is stored.
        rendered = [(name, sink.route, *sink.render(event)) for name, sink in self.sinks.items()]
        return {
            name: self.outbox.enqueue(name, kind, body, order_key=order_key, route=route)
            for name, route, kind, body in rendered
        }

    def _details(
        self,
        model: str,
        cls_name: str,
        checks: Sequence[Check],
        served_version: str | None,
        action: ActionTaken | None,
        timing: Timing | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            "model": model,
            "check_class": cls_name,
            "served_version": served_version,
            "failed_checks": [_check_entry(c) for c in checks if not c.ok],
            "action": to_jsonable(action) if action else {"kind": "none", "description": "no action taken"},
            "timing": timing.to_dict() if timing else None,
            "rto_s": self.rto_s,
            "runbook": self._runbook(model, cls_name),
            "host": self.host,
            "pod": self.pod,
        }
        evidence = {c.name: to_jsonable(dict(c.details)) for c in checks if not c.ok and c.details}
        if evidence:
            # Last on purpose: the bulky part, and the first to be trimmed if the event is too large.
            details["evidence"] = evidence
        if extra:
            details.update(to_jsonable(dict(extra)))
        return details

    def _runbook(self, model: str, check_class: str) -> str | None:
        if self.runbook_for is not None:
            return self.runbook_for(model, check_class) or self.runbook_url
        return self.runbook_url

    def _summary(self, model: str, cls_name: str, failed: Sequence[Check], served_version: str | None,
                 action: ActionTaken | None, timing: Timing | None) -> str:
        parts = [f"{model}: {cls_name} check failed"]
        if failed:
            first = failed[0]
            parts[0] += f": {first.name}: {first.summary}" if first.summary else f": {first.name}"
            if len(failed) > 1:
                parts[0] += f" (+{len(failed) - 1} more)"
        if action and action.kind != "none":
            text = action.description
            if timing and timing.recovery_s is not None:
                text += f" in {timing.recovery_s:.1f} s"
                rto = timing.rto_s if timing.rto_s is not None else self.rto_s
                total = timing.total_s
                if rto is not None and total is not None:
                    text += f" (RTO {rto:g} s {'met' if total <= rto else 'MISSED'})"
            parts.append(text)
        if served_version:
            parts.append(f"serving {served_version}")
        return "; ".join(parts)

    def trigger(
        self,
        model: str,
        check_class: str,
        *,
        checks: Sequence[Check] = (),
        summary: str | None = None,
        severity: Severity | None = None,
        served_version: str | None = None,
        action: ActionTaken | None = None,
        timing: Timing | None = None,
        details: Mapping[str, Any] | None = None,
        force: bool = False,
        send: bool | None = None,
    ) -> AlertOutcome:
        """Open or update the incident of (model, check class); queued when new, changed, due, or ``force``.

        ``send`` overrides the book's decision (True: queue it, False: record it, queue nothing): for a caller
        that decided elsewhere, e.g. a fleet's shared incident book (:mod:`goldwatch.watchdog.registry.incidents`).
        """
        failed = [c for c in checks if not c.ok]
        if severity is None:
            severity = default_severity(check_class, only_errors=bool(failed) and all(
                c.status == "error" for c in failed))
        if timing is not None and timing.rto_s is None and self.rto_s is not None:
            timing = dataclasses.replace(timing, rto_s=self.rto_s)
        key = dedup_key(model, check_class)
        text = summary or self._summary(model, check_class, failed, served_version, action, timing)
        event = AlertEvent(
            action="trigger", dedup_key=key, summary=text, source=self.source, severity=severity,
            timestamp=_utc(self._clock()), component=model, group=check_class, event_class=check_class,
            custom_details=self._details(model, check_class, checks, served_version, action, timing, details),
            links=[Link(runbook, "Runbook")] if (runbook := self._runbook(model, check_class)) else (),
        )
        fingerprint = page_fingerprint(severity=severity, checks=checks, served_version=served_version,
                                       action=action, summary=summary)
        if not self.sinks:
            log.warning("no alert sink is configured: incident %s is recorded but nobody is paged", key)
        with self.outbox.transaction():
            decision = self.book.on_trigger(
                key=key, model=model, check_class=check_class, severity=severity, summary=text,
                fingerprint=fingerprint, now=self._clock(), renotify_s=self.renotify_s,
            )
            queue = (decision.send or force) if send is None else send
            ids = self._queue(event, key) if queue else {}
        reason = decision.reason if send is None else ("forced" if send else "decided elsewhere")
        if send is None and force and not decision.send:
            reason = "forced"
        log.info("incident %s (#%d) %s: %s", key, decision.incident.number,
                 "queued" if queue else "not re-sent", reason)
        return AlertOutcome("trigger", key, bool(ids), reason, ids, decision.incident)

    def resolve(self, model: str, check_class: str, *, summary: str | None = None,
                force: bool = False, send: bool | None = None) -> AlertOutcome:
        """Resolve the open incident of (model, check class) now; nothing is sent if none is open (unless ``force``).
        ``send`` overrides that decision, as in :meth:`trigger`."""
        key = dedup_key(model, check_class)
        with self.outbox.transaction():
            incident = self.book.on_pass(key=key, now=self._clock(), resolve_after_s=0.0)
            queue = (incident is not None or force) if send is None else send
            ids = self._queue(AlertEvent(action="resolve", dedup_key=key, summary=summary or ""), key) if queue else {}
        if send is not None:
            reason = "forced" if send else "decided elsewhere"
        else:
            reason = "resolved" if incident else ("forced" if force else "not open")
        return AlertOutcome("resolve", key, bool(ids), reason, ids, incident)

    def passing(self, model: str, check_class: str) -> bool:
        """(model, check class) passes now: True when its open incident now waits ``resolve_after_s`` before the
        resolve is sent (:meth:`resolves_due` says when); False when there is nothing to wait for (no
        ``resolve_after_s``, no open incident, or it has passed long enough): resolve now. A trigger meanwhile
        keeps the incident open, and the wait starts again at the next pass."""
        if self.resolve_after_s <= 0:
            return False
        now = self._clock()
        with self.outbox.transaction():
            since = self.book.mark_passing(key=dedup_key(model, check_class), now=now)
        return since is not None and now - since < self.resolve_after_s

    def resolves_due(self) -> list[Incident]:
        """Open incidents whose checks have passed for ``resolve_after_s``: resolve each now."""
        if self.resolve_after_s <= 0:
            return []
        with self.outbox.transaction():
            return self.book.pending_resolves(now=self._clock(), resolve_after_s=self.resolve_after_s)

    def acknowledge(self, model: str, check_class: str) -> AlertOutcome:
        """Acknowledge the incident of (model, check class) (e.g. someone is on it); the book is unchanged."""
        key = dedup_key(model, check_class)
        with self.outbox.transaction():
            ids = self._queue(AlertEvent(action="acknowledge", dedup_key=key), key)
        return AlertOutcome("acknowledge", key, bool(ids), "acknowledged", ids, self.book.get(key))

    def change(self, summary: str, *, model: str | None = None, details: Mapping[str, Any] | None = None,
               links: Sequence[Link] = ()) -> AlertOutcome:
        """A change event (promotion, rollback, quarantine): context for responders, never a page."""
        payload = {"model": model, "host": self.host, "pod": self.pod, **(to_jsonable(dict(details or {})))}
        event = ChangeEvent(summary=summary, source=self.source, timestamp=_utc(self._clock()),
                            custom_details=payload, links=links)
        with self.outbox.transaction():
            ids = self._queue(event, f"change/{model or '*'}")
        return AlertOutcome("change", None, bool(ids), "change", ids)

    def observe(
        self,
        model: str,
        checks: Sequence[Check],
        *,
        served_version: str | None = None,
        action: ActionTaken | None = None,
        timing: Timing | None = None,
    ) -> list[AlertOutcome]:
        """Feed one evaluation's checks: failing classes trigger, passing classes resolve their open incident.

        Skipped checks count as neither. A class resolves only after it has passed for ``resolve_after_s``.
        """
        by_class: dict[str, list[Check]] = {}
        for c in checks:
            if c.status != "skip":
                by_class.setdefault(check_class(c.name), []).append(c)
        outcomes = []
        for cls_name, group in by_class.items():
            if any(not c.ok for c in group):
                outcomes.append(self.trigger(model, cls_name, checks=group, served_version=served_version,
                                             action=action, timing=timing))
                continue
            key = dedup_key(model, cls_name)
            with self.outbox.transaction():
                incident = self.book.on_pass(key=key, now=self._clock(), resolve_after_s=self.resolve_after_s)
                ids = self._queue(AlertEvent(action="resolve", dedup_key=key,
                                             summary=f"{model}: {cls_name} checks pass again"), key) if incident else {}
            if incident:
                outcomes.append(AlertOutcome("resolve", key, bool(ids), "resolved", ids, incident))
        return outcomes

    # -- delivery --------------------------------------------------------------------------------------------

    def flush(self, *, timeout_s: float = 0.0) -> DeliveryReport:
        """Deliver what the outbox holds: one pass with ``timeout_s=0``, else retry until empty or timed out."""
        if timeout_s <= 0:
            return self.outbox.deliver_once(self.sinks)
        return self.outbox.drain(self.sinks, timeout_s=timeout_s)

    def incidents(self, state: Literal["open", "resolved"] | None = None) -> list[Incident]:
        return self.book.list(state=state)

    def close(self) -> None:
        """Close the sinks' HTTP clients and the outbox (queued events stay on disk for the next process)."""
        for sink in self.sinks.values():
            sink.close()
        self.outbox.close()


def page_fingerprint(*, severity: str, checks: Sequence[Check], served_version: str | None,
                     action: ActionTaken | None, summary: str | None) -> str:
    """What makes an update of an open incident worth a page: which checks fail and how, the served version, the
    action -- not the exact numbers, which move on every evaluation and would page every minute.

    >>> bad = Check(name="integrity:w", status="fail", summary="block 3 differs", measured={"blocks": 1})
    >>> worse = Check(name="integrity:w", status="fail", summary="blocks 3, 4 differ", measured={"blocks": 2})
    >>> page_fingerprint(severity="critical", checks=[bad], served_version="7", action=None, summary=None) == \\
    ...     page_fingerprint(severity="critical", checks=[worse], served_version="7", action=None, summary=None)
    True
    """
    failed = [c for c in checks if not c.ok]
    return hashlib.sha256(json.dumps(
        [severity, sorted((c.name, c.status) for c in failed), served_version,
         action.kind if action else None, summary], sort_keys=True).encode()).hexdigest()


def no_sink_error(config: AlertsConfig, *, what: str = "no alert sink is configured") -> ConfigError:
    """The one message for "alerting is not set up": which variable to set (``what`` may add context)."""
    return ConfigError(
        what,
        where=f"${config.pagerduty.routing_key_env}",
        hint=f"set {config.pagerduty.routing_key_env} to a PagerDuty Events API v2 integration key "
        f"(and {EVENTS_URL_ENV} to use another Events API URL), or add [[alerts.webhooks]]",
    )


def outbox_path(config: AlertsConfig, *, default_dir: str | os.PathLike[str] = ".goldwatch") -> Path:
    """Where the outbox database lives: ``alerts.outbox_path``, else ``<default_dir>/alerts.sqlite``."""
    return Path(config.outbox_path) if config.outbox_path else Path(default_dir) / "alerts.sqlite"


def build_sinks(config: AlertsConfig, *, transport: httpx.BaseTransport | None = None,
                max_timeout_s: float | None = None) -> list[Sink]:
    """The sinks ``config`` and the environment define: PagerDuty when a routing key resolves, plus webhooks.

    The Events API URL is ``$GOLDWATCH_PAGERDUTY_EVENTS_URL`` if set (tests and proxies), else the config
    file's ``alerts.pagerduty.events_url``, else PagerDuty's. ``max_timeout_s`` caps each sink's per-request
    timeout (a caller with a deadline, e.g. the short flush after a promotion).
    """

    def timeout(configured: float) -> float:
        return configured if max_timeout_s is None else min(configured, max_timeout_s)

    from goldwatch.config import resolve_secret

    sinks: list[Sink] = []
    pd = config.pagerduty
    key = resolve_secret(env=pd.routing_key_env, file=pd.routing_key_file, what="PagerDuty routing key")
    if key:
        url = os.environ.get(pd.events_url_env or "") or pd.events_url or DEFAULT_EVENTS_URL
        sinks.append(PagerDutySink(key, events_url=url, timeout_s=timeout(pd.timeout_s),
                                   rate_limit_per_minute=pd.rate_limit_per_minute, transport=transport))
    for hook in config.webhooks:
        hook_url = resolve_secret(env=hook.url_env, file=hook.url_file, what=f"webhook {hook.name} URL")
        if not hook_url:
            raise ConfigError(
                f"webhook {hook.name!r} has no URL: ${hook.url_env} is not set" if hook.url_env
                else f"webhook {hook.name!r} has no URL", where=f"alerts.webhooks[{hook.name}]",
                hint="set the environment variable or url_file, or remove the webhook",
            )
        sinks.append(WebhookSink(hook_url, name=f"webhook:{hook.name}", timeout_s=timeout(hook.timeout_s),
                                 rate_limit_per_minute=hook.rate_limit_per_minute, transport=transport))
    return sinks
