"""Tell responders about promotions and rollbacks: a PagerDuty change event for each, and for a rollback an incident.

:func:`notify_promotion` and :func:`notify_rollback` build the :class:`AlertManager` from ``[alerts]``, store the
events in the durable outbox, then try a short, bounded flush (``flush_timeout_s``, 5 s by default: no send starts
after it, and each request's timeout is capped at half of it). What is not delivered by then stays in the outbox
for ``goldwatch alert flush`` (or the next process that flushes), and the :class:`NotifyResult` says so.

A rollback opens (or updates) the model's ``rollback`` incident with what was done and how long it took, e.g.
``rolled back fraud 7 -> 6 in 0.58 s (RTO 60 s met); serving 6; reason: golden failed``. A rollback that found
no target or whose server did not confirm the reload pages ``critical``: that is what a human must act on now.
A rollback that worked is recorded as a ``warning`` incident (recovered, still to be looked at).

Alerting is optional: with no sink configured nothing is stored or sent and the result says so (``configured``
is false). A bad alert configuration raises :class:`~goldwatch.errors.ConfigError`; delivery problems never raise,
they are in the result.

>>> import tempfile
>>> from goldwatch.config import AlertsConfig
>>> res = notify_promotion(AlertsConfig(pagerduty={"routing_key_env": "GW_DOCTEST_UNSET_KEY"}), model="fraud",
...                        version="7", actor="alice", reason="gate passed", default_dir=tempfile.mkdtemp())
>>> res.configured, res.queued, res.line()
(False, 0, 'alerts: no alert sink is configured; nothing sent')
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from goldwatch.logs import get_logger
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.alerts.manager import ActionTaken, AlertManager, AlertOutcome, Timing, build_sinks
from goldwatch.watchdog.alerts.sinks import PagerDutySink

if TYPE_CHECKING:
    import httpx

    from goldwatch.checks import Check
    from goldwatch.config import AlertsConfig

__all__ = [
    "FLUSH_TIMEOUT_S",
    "ROLLBACK_CHECK_CLASS",
    "NotifyResult",
    "RollbackLike",
    "describe_sink",
    "notify_promotion",
    "notify_rollback",
]

log = get_logger(__name__)

FLUSH_TIMEOUT_S = 5.0
ROLLBACK_CHECK_CLASS = "rollback"


class RollbackLike(Protocol):
    """What :func:`notify_rollback` reads from a rollback (:class:`goldwatch.watchdog.registry.RollbackResult`)."""

    @property
    def from_version(self) -> str | None: ...

    @property
    def to_version(self) -> str | None: ...

    @property
    def phases(self) -> Mapping[str, float]: ...

    @property
    def error(self) -> str | None: ...

    @property
    def switched(self) -> bool: ...

    @property
    def ok(self) -> bool: ...

    @property
    def total_s(self) -> float: ...

    def summary(self) -> str: ...

    def to_checks(self) -> list[Check]: ...


@dataclasses.dataclass(frozen=True)
class NotifyResult:
    """What a notification did.

    ``configured``: a sink exists (else nothing was stored or sent). ``events``: what was queued ("change",
    "trigger <dedup key>"). ``queued``: outbox rows stored (one per event and sink); of those, ``delivered`` were
    accepted during the short flush, ``pending`` stay queued (``errors`` says why) and ``rejected`` became dead
    letters. ``outbox``: the outbox file ``goldwatch alert flush`` delivers from.
    """

    configured: bool
    events: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()
    queued: int = 0
    delivered: int = 0
    pending: int = 0
    rejected: int = 0
    outbox: Path | None = None
    dedup_key: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing to worry about: alerting is off, or everything queued was delivered."""
        return self.pending == 0 and self.rejected == 0

    def line(self) -> str:
        """One line for a person: what was sent where, or what is left and how to deliver it."""
        if not self.configured:
            return "alerts: no alert sink is configured; nothing sent"
        what = " and ".join(self.events) or "nothing"
        where = ", ".join(self.sinks)
        if self.ok:
            return f"alerts: {what} delivered to {where}"
        parts = [f"alerts: {what} for {where}: {self.delivered} of {self.queued} delivered"]
        if self.pending:
            parts.append(f"{self.pending} not delivered yet ({self.errors[-1] if self.errors else 'not yet due'}), "
                         f"kept in the outbox {self.outbox}: run `goldwatch alert flush`")
        if self.rejected:
            parts.append(f"{self.rejected} rejected and kept as dead letter(s): "
                         "see `goldwatch alert list --status dead`")
        return "; ".join(parts)


def _send(
    config: AlertsConfig,
    default_dir: str | os.PathLike[str],
    flush_timeout_s: float,
    transport: httpx.BaseTransport | None,
    queue: Callable[[AlertManager], list[tuple[str, AlertOutcome]]],
) -> NotifyResult:
    """Build the manager (only if a sink exists), queue through ``queue``, flush briefly, and report our rows."""
    cap = flush_timeout_s / 2 if flush_timeout_s > 0 else None
    sinks = build_sinks(config, transport=transport, max_timeout_s=cap)
    if not sinks:
        log.debug("no alert sink is configured: no change event or incident sent")
        return NotifyResult(configured=False)
    try:
        mgr = AlertManager.from_config(config, default_dir=default_dir, sinks=sinks)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    try:
        outcomes = queue(mgr)
        ids = {row for _, out in outcomes for row in out.outbox_ids.values()}
        if flush_timeout_s > 0 and ids:
            mgr.flush(timeout_s=flush_timeout_s)
        left = {e.id: e for e in mgr.outbox.entries() if e.id in ids}
        pending = [e for e in left.values() if e.status == "pending"]
        dead = [e for e in left.values() if e.status == "dead"]
        errors = tuple(f"{e.sink}: {e.last_error}" for e in pending if e.last_error) + tuple(
            f"{e.sink}: {e.dead_reason}" for e in dead)
        return NotifyResult(
            configured=True,
            events=tuple(label for label, out in outcomes if out.queued),
            sinks=tuple(describe_sink(s) for s in mgr.sinks.values()),
            queued=len(ids),
            delivered=len(ids) - len(left),
            pending=len(pending),
            rejected=len(dead),
            outbox=mgr.outbox.path,
            dedup_key=next((out.dedup_key for _, out in outcomes if out.dedup_key), None),
            errors=errors,
        )
    finally:
        mgr.close()


def describe_sink(sink: Any) -> str:
    """A sink's name for messages; a PagerDuty Events URL is no secret (the key is), a webhook URL is."""
    return f"{sink.name} ({sink.events_url})" if isinstance(sink, PagerDutySink) else str(sink.name)


def notify_promotion(
    config: AlertsConfig,
    *,
    model: str,
    version: str,
    actor: str,
    reason: str,
    evidence_summary: Mapping[str, Any] | str | None = None,
    serving: bool | None = None,
    digest: str | None = None,
    default_dir: str | os.PathLike[str] = ".goldwatch",
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> NotifyResult:
    """Send a change event "promoted MODEL VERSION" (who, why, the evidence) to every configured sink."""
    summary = f"promoted {model} {version} to known-good" + (" and serving it" if serving else "")
    summary += f" by {actor}: {reason}"
    details = {
        "action": "promote", "version": version, "actor": actor, "reason": reason, "serving": serving,
        "digest": digest, "evidence": to_jsonable(evidence_summary),
    }
    return _send(config, default_dir, flush_timeout_s, transport,
                 lambda mgr: [("change event", mgr.change(summary, model=model, details=details))])


def rollback_summary(model: str, result: RollbackLike, *, reason: str, rto_s: float | None) -> str:
    """The incident's one line: what was done, how long it took against the RTO, what is served, and why.

    >>> class R:
    ...     from_version, to_version, phases, error, switched, ok, total_s = "7", "6", {}, None, True, True, 0.58
    ...     def summary(self): return "rolled back fraud 7 -> 6 in 0.58 s"
    ...     def to_checks(self): return []
    >>> rollback_summary("fraud", R(), reason="golden failed", rto_s=60)
    'rolled back fraud 7 -> 6 in 0.58 s (RTO 60 s met); serving 6; reason: golden failed'
    """
    text = result.summary()
    if result.ok:
        if rto_s is not None:
            text += f" (RTO {rto_s:g} s {'met' if result.total_s <= rto_s else 'MISSED'})"
        text += f"; serving {result.to_version or 'the fallback model'}"
    elif result.switched:
        text = f"ROLLBACK INCOMPLETE: {text}"
    else:
        text = f"ROLLBACK FAILED: {text}; still serving {result.from_version or 'nothing'}"
    return f"{text}; reason: {reason}"


def notify_rollback(
    config: AlertsConfig,
    *,
    model: str,
    result: RollbackLike,
    reason: str,
    actor: str | None = None,
    default_dir: str | os.PathLike[str] = ".goldwatch",
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> NotifyResult:
    """A change event for a rollback that switched something, and a trigger on ``goldwatch/MODEL/rollback``.

    The trigger says what was done ("rolled back fraud 7 -> 6 in 0.58 s"), carries the phases, the checks, the
    timing against ``alerts.rto_seconds`` and the action taken, and is sent on every rollback (each one is news
    to the responder). ``critical`` when the rollback failed, ``warning`` when it worked.
    """
    rto_s = config.rto_seconds
    text = rollback_summary(model, result, reason=reason, rto_s=rto_s)
    served = (result.to_version or "fallback") if result.switched else result.from_version
    now = clock()
    timing = Timing(detected_at=now - result.total_s, recovered_at=now if result.ok else None, rto_s=rto_s)
    action = (ActionTaken(kind="rollback", description=result.summary(), from_version=result.from_version,
                          to_version=result.to_version) if result.switched
              else ActionTaken(kind="none", description=f"rollback attempted, nothing switched: {result.error}"))
    details = {
        "rollback": {
            "ok": result.ok, "from_version": result.from_version, "to_version": result.to_version,
            "total_s": round(result.total_s, 6), "phases_s": {k: round(v, 6) for k, v in result.phases.items()},
            "error": result.error, "reason": reason, "actor": actor,
        },
        "checks": [to_jsonable(c) for c in result.to_checks()],
    }

    def queue(mgr: AlertManager) -> list[tuple[str, AlertOutcome]]:
        # The incident first: with a slow endpoint and a bounded flush, the page is what must get through.
        trig = mgr.trigger(
            model, ROLLBACK_CHECK_CLASS, checks=result.to_checks(), summary=text,
            severity="warning" if result.ok else "critical", served_version=served, action=action,
            timing=timing, details=details, force=True,
        )
        if not result.switched:
            return [(f"incident {trig.dedup_key}", trig)]
        change = text if actor is None else f"{text} (by {actor})"
        return [("change event", mgr.change(change, model=model, details=details)),
                (f"incident {trig.dedup_key}", trig)]

    return _send(config, default_dir, flush_timeout_s, transport, queue)

