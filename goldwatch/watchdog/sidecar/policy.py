"""The policy: evidence and what happened before -> decisions. Pure: no I/O, no clock, no randomness.

:func:`decide` takes a model's :class:`ModelView` (its rules, the state of each kind of check, open incidents,
recent rollbacks, pause and flap-guard state), one :class:`~.evidence.Evidence` and its
:class:`~.evidence.EvidenceKind`, and the time; it returns the view with the evidence folded in and the
:class:`Decision` s to carry out, in order. :func:`staleness` does the same for external evidence sources that went
silent. The service (:mod:`.service`) journals each decision before it carries it out.

The rules, as in the design:

* a failure that proves the served model wrong (files, golden replay, resident fingerprints) -> page (critical) and
  roll back; a golden failure is first confirmed by one immediate re-run (``confirm``);
* not while paused (planned deploys: no action, no page), in observe mode, with no registry, or after the flap
  guard stopped acting (page, say why, do nothing); the flap guard stops after ``max_rollbacks_per_hour``
  automatic rollbacks within an hour and pages that it stopped;
* a server not ready, or a check that could not run -> page (error) only after a grace period (a pod being
  deleted stops its server before its sidecar; a server still starting gets a longer one), never a rollback; while
  the server is down, other checks that cannot reach it say so under the one ``server`` incident;
* the server reporting another version than the registry serves -> page (error) and reload once; meanwhile golden
  and resident failures are not proof against the registry's version and do not roll it back;
* evidence about a version no longer served, or from a run that started before the last action finished, is
  recorded and otherwise ignored;
* checks passing again -> resolve; an incident that caused a rollback resolves only once every proof check has
  passed on what is served after it (files and golden replay: "recovered");
* disaster recovery: a failure of a kind with ``reroute`` alternates (the server down past its grace period, the
  device lost) moves the model's traffic to the first configured alternate that its golden sets prove (``route``;
  the responder verifies before it routes); a rollback that finds no verified known-good version routes to the
  fallback instead; while traffic is on an alternate, the primary keeps being checked, and once every one of its
  checks has passed for ``route_back_after_s`` the traffic goes back (``route`` to ``primary``) and the incident
  resolves. Never in observe mode, while paused, or after the flap guard stopped acting.

>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.sidecar.evidence import Evidence, EvidenceKinds
>>> kinds = EvidenceKinds.builtin()
>>> view = ModelView(model="fraud", rules=Rules(), served_version="2", seen_ready=True)
>>> bad = Evidence("fraud", "files", (Check("integrity:model.onnx", "fail", "sha256 differs"),), 100.0, 100.2, "2")
>>> out = decide(view, bad, kinds.get("files"), now=100.2)
>>> [(d.action, d.check_class) for d in out.decisions]
[('page', 'integrity'), ('rollback', None)]
>>> observe = ModelView(model="fraud", rules=Rules(mode="observe"), served_version="2")
>>> [(d.action, d.reason) for d in decide(observe, bad, kinds.get("files"), now=100.2).decisions]
[('page', 'not acting: observe mode (pages, never acts)')]
>>> degrading = ModelView(model="fraud", rules=Rules(alternates=("fallback",), server_down_grace_s=1.0),
...                       seen_ready=True)
>>> down = Evidence("fraud", "readiness", (Check("server:ready", "fail", "cannot connect"),), 100.0, 100.0)
>>> later = dataclasses.replace(down, started_at=101.5, finished_at=101.5)
>>> first = decide(degrading, down, kinds.get("readiness"), now=100.0)
>>> [(d.action, d.alternates) for d in decide(first.view, later, kinds.get("readiness"), now=101.5).decisions]
[('page', ()), ('route', ('fallback',))]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from goldwatch.checks import Status
from goldwatch.watchdog.alerts.events import Severity
from goldwatch.watchdog.sidecar.evidence import Evidence, EvidenceKind, EvidenceKinds

__all__ = [
    "FLAP_GUARD_CLASS",
    "PRIMARY",
    "Decision",
    "IncidentView",
    "KindState",
    "ModelView",
    "Outcome",
    "Rules",
    "SourceState",
    "decide",
    "primary_passes",
    "resolutions",
    "staleness",
]

FLAP_GUARD_CLASS = "flap-guard"
HOUR_S = 3600.0
PRIMARY = "primary"
Action = Literal["ignore", "hold", "confirm", "page", "rollback", "reload", "route", "stop", "resolve", "forget"]


@dataclasses.dataclass(frozen=True)
class Rules:
    """A model's policy settings (from its ``[[serve.watch]]`` table).

    ``proof_kinds``: the scheduled kinds that must pass on what is served after a rollback before its incident
    resolves. ``confirm``: the kinds whose failures are confirmed by one immediate re-run. ``alternates``: where
    traffic may go when the primary cannot serve (``fallback``, ``cpu_variant``: configured with a route hook);
    ``primary_kinds``: the scheduled kinds that must all pass, for ``route_back_after_s``, before traffic goes back.
    """

    mode: Literal["act", "observe"] = "act"
    can_rollback: bool = True
    can_reload: bool = True
    max_rollbacks_per_hour: int = 2
    server_down_grace_s: float = 60.0
    server_start_grace_s: float = 300.0
    stale_factor: float = 3.0
    confirm: frozenset[str] = frozenset({"golden", "device"})
    proof_kinds: tuple[str, ...] = ("files", "golden")
    alternates: tuple[str, ...] = ()
    route_back_after_s: float = 30.0
    primary_kinds: tuple[str, ...] = ("readiness", "device", "version", "golden")


@dataclasses.dataclass(frozen=True)
class KindState:
    """What the runs of one kind of check said lately. ``failing_since``: the first failing run since the last pass."""

    status: Status | None = None
    last_run_at: float | None = None
    last_pass_at: float | None = None
    failing_since: float | None = None
    consecutive: int = 0

    def after(self, ev: Evidence) -> KindState:
        if ev.status == "pass":
            return KindState("pass", ev.finished_at, ev.finished_at, None, 0)
        if ev.status == "skip":
            return dataclasses.replace(self, status="skip", last_run_at=ev.finished_at)
        return KindState(ev.status, ev.finished_at, self.last_pass_at,
                         self.failing_since if self.failing_since is not None else ev.finished_at,
                         self.consecutive + 1)


@dataclasses.dataclass(frozen=True)
class IncidentView:
    """An open incident as the policy needs it: which kind opened it, when, and what was done."""

    check_class: str
    kind: str
    detected_at: float
    acted_at: float | None = None
    action: Literal["rollback", "reload", "route"] | None = None
    severity: str = "error"


@dataclasses.dataclass(frozen=True)
class SourceState:
    """An external evidence source (``agent:<host>:<pid>``) and when it last reported."""

    source: str
    kind: str
    interval_s: float | None
    first_seen: float
    last_seen: float
    status: Status

    @property
    def lineage(self) -> str:
        """The source without its last part (``agent:<host>``): a restarted agent has the same lineage."""
        return self.source.rpartition(":")[0] or self.source


@dataclasses.dataclass(frozen=True)
class ModelView:
    """Everything the policy knows about one watched model. ``route``: where its traffic goes (``primary`` or an
    alternate) since ``routed_at``; ``primary_ok_since``: while on an alternate, since when every check of the
    primary has passed."""

    model: str
    rules: Rules
    served_version: str | None = None
    started_at: float = 0.0
    seen_ready: bool = False
    paused_until: float | None = None
    stopped: bool = False
    acting: bool = False
    last_action_at: float | None = None
    rollbacks: tuple[float, ...] = ()
    kinds: Mapping[str, KindState] = dataclasses.field(default_factory=dict)
    incidents: Mapping[str, IncidentView] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, SourceState] = dataclasses.field(default_factory=dict)
    route: str = PRIMARY
    routed_at: float | None = None
    primary_ok_since: float | None = None

    def paused(self, now: float) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def recent_rollbacks(self, now: float) -> int:
        return sum(1 for t in self.rollbacks if now - t < HOUR_S)

    def server_down(self) -> bool:
        state = self.kinds.get("readiness")
        return state is not None and state.status in ("fail", "error")

    def device_lost(self) -> bool:
        state = self.kinds.get("device")
        return state is not None and state.status == "fail"

    @property
    def degraded(self) -> bool:
        """Traffic goes to an alternate, not to the primary."""
        return self.route != PRIMARY

    def skewed(self) -> bool:
        state = self.kinds.get("version")
        return state is not None and state.status == "fail"

    def kind(self, name: str) -> KindState:
        return self.kinds.get(name) or KindState()


@dataclasses.dataclass(frozen=True)
class Decision:
    """One thing to do (or not to do, and why): journaled first, then carried out by the service.

    ``page`` opens or updates the incident of ``check_class`` at ``severity``; ``resolve`` closes it; ``rollback``
    and ``reload`` act on the model; ``route`` moves its traffic: to the first of ``alternates`` its golden sets
    prove, or back to the primary (``route = "primary"``); a ``rollback`` with ``alternates`` routes to them when
    it finds no verified known-good version; ``stop`` trips the flap guard; ``confirm`` asks for an immediate
    re-run; ``forget`` drops a superseded evidence source; ``hold`` and ``ignore`` record why nothing happens.
    """

    action: Action
    reason: str
    check_class: str | None = None
    severity: Severity | None = None
    source: str | None = None
    route: str | None = None
    alternates: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    view: ModelView
    decisions: list[Decision]


def _page(kind: EvidenceKind, severity: Severity, reason: str) -> Decision:
    return Decision("page", reason, check_class=kind.check_class, severity=severity)


def _at_most_error(severity: Severity) -> Severity:
    return "error" if severity == "critical" else severity


def _not_acting(view: ModelView, *, what: Literal["rollback", "reload", "route"]) -> str | None:
    if view.rules.mode == "observe":
        return "observe mode (pages, never acts)"
    if view.stopped:
        return "the flap guard stopped acting on this model (POST .../resume to act again)"
    if what == "rollback" and not view.rules.can_rollback:
        return "rollback is off (no registry: served_path + manifest)"
    if what == "reload" and not view.rules.can_reload:
        return "no reloader is configured (reload = \"none\")"
    if what == "route" and not view.rules.alternates:
        return "no fallback or CPU variant is configured"
    return None


def _alternates(view: ModelView, kind: EvidenceKind) -> tuple[str, ...]:
    """The alternates a failure of ``kind`` may move traffic to, configured ones only, in the kind's order."""
    return tuple(a for a in kind.reroute if a in view.rules.alternates)


def _observe(view: ModelView, ev: Evidence, kind: EvidenceKind, *, ignored: bool) -> ModelView:
    changes: dict[str, object] = {}
    if kind.external and ev.source:
        known = view.sources.get(ev.source)
        state = SourceState(ev.source, ev.kind, ev.interval_s, known.first_seen if known else ev.finished_at,
                            ev.finished_at, ev.status)
        changes["sources"] = {**view.sources, ev.source: state}
    if not ignored:
        changes["kinds"] = {**view.kinds, ev.kind: view.kind(ev.kind).after(ev)}
        if ev.kind == "readiness" and ev.status == "pass":
            changes["seen_ready"] = True
    return dataclasses.replace(view, **changes) if changes else view  # type: ignore[arg-type]


def _stale_reason(view: ModelView, ev: Evidence) -> str | None:
    if view.acting:
        return "an action on this model is in progress"
    if ev.version is not None and view.served_version is not None and ev.version != view.served_version:
        return f"about version {ev.version}, but {view.served_version} is served now"
    if view.last_action_at is not None and ev.started_at < view.last_action_at:
        return "the run started before the last action on this model finished"
    return None


def decide(view: ModelView, ev: Evidence, kind: EvidenceKind, *, now: float,
           kinds: EvidenceKinds | None = None) -> Outcome:
    """Fold ``ev`` into ``view`` and decide what to do about it (see the module docstring)."""
    stale = _stale_reason(view, ev)
    seen = _observe(view, ev, kind, ignored=stale is not None)
    if stale is not None:
        return Outcome(seen, [Decision("ignore", stale)])
    seen = _track_primary(seen, now=now)
    status = ev.status
    if status == "skip":
        return Outcome(seen, _route_back(seen, now=now))
    if status == "pass":
        return Outcome(seen, _route_back(seen, now=now) + resolutions(seen, kinds=kinds))
    return Outcome(seen, _on_failure(seen, ev, kind, now=now))


def primary_passes(view: ModelView) -> bool:
    """While traffic is on an alternate: every scheduled check of the primary has passed since it was moved."""
    if not view.degraded or view.routed_at is None:
        return False
    for name in view.rules.primary_kinds:
        state = view.kinds.get(name)
        if state is None or state.status in ("fail", "error") or not _passed_since(state, view.routed_at):
            return False
    return True


def _track_primary(view: ModelView, *, now: float) -> ModelView:
    if not view.degraded:
        return view if view.primary_ok_since is None else dataclasses.replace(view, primary_ok_since=None)
    if not primary_passes(view):
        return view if view.primary_ok_since is None else dataclasses.replace(view, primary_ok_since=None)
    return view if view.primary_ok_since is not None else dataclasses.replace(view, primary_ok_since=now)


def _route_back(view: ModelView, *, now: float) -> list[Decision]:
    if view.primary_ok_since is None or view.paused(now) or view.rules.mode == "observe":
        return []
    held = now - view.primary_ok_since
    if held < view.rules.route_back_after_s:
        return [Decision("hold", f"the primary passes again: traffic goes back once it has passed for "
                                 f"{view.rules.route_back_after_s:g} s")]
    return [Decision("route", f"the primary passes every check again ({held:.1f} s): traffic goes back to it",
                     route=PRIMARY)]


def _on_failure(view: ModelView, ev: Evidence, kind: EvidenceKind, *, now: float) -> list[Decision]:
    rules = view.rules
    state = view.kind(ev.kind)
    if view.paused(now):
        return [Decision("hold", "paused (planned work): neither acting nor paging until resumed")]
    proof = ev.status == "fail" and kind.may_rollback
    incident = view.incidents.get(kind.check_class)
    if proof and view.degraded and incident is not None and incident.action == "route":
        return [_page(kind, kind.severity, f"traffic stays on the {view.route}: the primary still fails, and no "
                                           "verified known-good version was left to roll back to; it goes back "
                                           "once the primary passes again")]
    if ev.status == "fail" and ev.kind in rules.confirm and not ev.confirmed and not (
            view.degraded and kind.reroute):  # traffic already moved: nothing to confirm before
        return [Decision("confirm", "a failure is confirmed by one immediate re-run before anything is done")]
    if not proof:
        return _not_proof(view, ev, kind, state, now=now)
    if ev.kind != "files" and view.skewed():
        return [_page(kind, kind.severity, "not rolling back: the server does not report the version the registry "
                                           "serves, so its answers are no proof against that version")]
    why_not = _not_acting(view, what="rollback")
    if why_not:
        return [_page(kind, kind.severity, f"not acting: {why_not}")]
    recent = view.recent_rollbacks(now)
    if recent >= rules.max_rollbacks_per_hour:
        why = (f"{recent} automatic rollback(s) of {view.model} in the last hour "
               f"(max_rollbacks_per_hour = {rules.max_rollbacks_per_hour})")
        return [
            Decision("stop", f"flap guard: {why}; no more automatic action until resumed"),
            _page(kind, kind.severity, f"not acting: flap guard ({why})"),
            Decision("page", f"stopped acting on {view.model}: {why}; a person must look "
                             f"(POST /v1/models/{view.model}/resume to act again)",
                     check_class=FLAP_GUARD_CLASS, severity="critical"),
        ]
    fallback = ("fallback",) if "fallback" in rules.alternates else ()
    return [_page(kind, kind.severity, "rolling back to the newest verified known-good version"),
            Decision("rollback", ev.summary(), alternates=fallback)]


def _not_proof(view: ModelView, ev: Evidence, kind: EvidenceKind, state: KindState, *,
               now: float) -> list[Decision]:
    rules = view.rules
    if ev.status == "error" and ev.kind != "readiness" and view.server_down():
        return [Decision("hold", "the server is not ready: reported once, as the 'server' incident")]
    if ev.status == "error" and ev.kind not in ("readiness", "device") and view.device_lost():
        return [Decision("hold", "the device is lost: reported once, as the 'device' incident")]
    if ev.status == "error" or ev.kind == "readiness":
        if view.seen_ready:
            grace, since, what = rules.server_down_grace_s, state.failing_since or now, "failing"
        else:
            grace, since, what = rules.server_start_grace_s, view.started_at, "not seen ready since start"
        waited = now - since
        if waited < grace:
            return [Decision("hold", f"{what} for {waited:.1f} s of a {grace:g} s grace period")]
    if state.consecutive < kind.consecutive:
        return [Decision("hold", f"{state.consecutive} of {kind.consecutive} failures in a row before a page")]
    if not kind.pages:
        return [Decision("hold", "reported (status, metrics), never paged")]
    severity = kind.severity if ev.status == "fail" else _at_most_error(kind.severity)
    alternates = _alternates(view, kind)
    if kind.reroute and (ev.status == "fail" or ev.kind == "readiness"):
        return _reroute(view, kind, ev, severity, alternates)
    if not (kind.may_reload and ev.status == "fail"):
        return [_page(kind, severity, "never acted on: page only")]
    incident = view.incidents.get(kind.check_class)
    why_not = _not_acting(view, what="reload")
    if why_not:
        return [_page(kind, severity, f"not acting: {why_not}")]
    if incident is not None and incident.action == "reload":
        return [_page(kind, severity, "already reloaded once for this incident: not again")]
    return [_page(kind, severity, "telling the server to load the version the registry serves"),
            Decision("reload", ev.summary())]


def _reroute(view: ModelView, kind: EvidenceKind, ev: Evidence, severity: Severity,
             alternates: tuple[str, ...]) -> list[Decision]:
    if view.degraded:
        return [_page(kind, severity, f"traffic is on the {view.route}; it goes back once the primary passes again")]
    if not alternates:
        why = "no fallback or CPU variant is configured" if not view.rules.alternates else \
            f"none of {', '.join(kind.reroute)} is configured"
        return [_page(kind, severity, f"never a rollback; traffic cannot move: {why}")]
    why_not = _not_acting(view, what="route")
    if why_not:
        return [_page(kind, severity, f"not acting: {why_not}")]
    return [_page(kind, severity, f"moving traffic to the {alternates[0]} once its golden sets pass; never a "
                                  "rollback"),
            Decision("route", ev.summary(), check_class=kind.check_class, severity=severity, alternates=alternates)]


def resolutions(view: ModelView, *, kinds: EvidenceKinds | None = None) -> list[Decision]:
    """Resolve every open incident whose kind passes now (after a rollback: once every proof kind passed on what
    is served after it). Incidents of derived classes (flap guard, stale sources) resolve elsewhere."""
    out = []
    for cls, incident in sorted(view.incidents.items()):
        state = view.kinds.get(incident.kind)
        if state is None or state.status != "pass":
            continue
        if kinds is not None and incident.kind in kinds and kinds.get(incident.kind).check_class != cls:
            continue
        if incident.action == "route" and view.degraded:
            continue  # it resolves when traffic is back on the primary (the route back resolves it)
        if incident.action == "rollback" and incident.acted_at is not None:
            waiting = [k for k in view.rules.proof_kinds if not _passed_since(view.kinds.get(k), incident.acted_at)]
            if waiting:
                continue
            out.append(Decision("resolve", "every proof check passes on what is served after the rollback",
                                check_class=cls))
        else:
            out.append(Decision("resolve", f"{incident.kind} checks pass again", check_class=cls))
    return out


def _passed_since(state: KindState | None, t: float) -> bool:
    if state is None:
        return False
    if state.status == "skip":  # cannot check here (e.g. no golden set): not something to wait for
        return True
    return state.last_pass_at is not None and state.last_pass_at > t


def staleness(view: ModelView, kinds: EvidenceKinds, *, now: float) -> Outcome:
    """Page (warning) for external sources silent for more than ``stale_factor`` intervals; resolve when they report
    again. A source superseded by a newer one of the same lineage (a restarted agent) is forgotten instead."""
    decisions: list[Decision] = []
    sources = dict(view.sources)
    for name, src in list(sources.items()):
        if any(o.source != name and o.kind == src.kind and o.lineage == src.lineage and o.first_seen > src.last_seen
               for o in sources.values()):
            del sources[name]
            decisions.append(Decision("forget", f"{name} was superseded by a newer source of {src.lineage}",
                                      source=name))
    view = dataclasses.replace(view, sources=sources)
    for kind in kinds.external():
        cls = f"{kind.check_class}-stale"
        silent = [s for s in sources.values() if s.kind == kind.name and s.interval_s
                  and now - s.last_seen > view.rules.stale_factor * s.interval_s]
        if silent and cls not in view.incidents and not view.paused(now):
            text = ", ".join(f"{s.source} silent for {now - s.last_seen:.0f} s "
                             f"({view.rules.stale_factor:g} x {s.interval_s:g} s)" for s in silent[:5])
            decisions.append(Decision("page", f"{kind.name} checks stale: {text}; never a rollback",
                                      check_class=cls, severity="warning"))
        elif not silent and cls in view.incidents:
            decisions.append(Decision("resolve", f"{kind.name} sources report again", check_class=cls))
    return Outcome(view, decisions)
