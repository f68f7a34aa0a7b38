"""The policy, pure: evidence + history -> decisions, as the design's evidence table says."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.checks import Check
from goldwatch.watchdog.sidecar.evidence import Evidence, EvidenceKind, EvidenceKinds
from goldwatch.watchdog.sidecar.policy import (
    FLAP_GUARD_CLASS,
    IncidentView,
    KindState,
    ModelView,
    Rules,
    SourceState,
    decide,
    staleness,
)

KINDS = EvidenceKinds.builtin()
T0 = 1_000_000.0


def ev(kind: str, status: str, *, at: float = T0, version: str | None = "3", confirmed: bool = False,
       source: str = "scheduler", interval_s: float | None = None) -> Evidence:
    name = {"files": "integrity:model.onnx", "golden": "golden:y:max_abs_error", "readiness": "server:ready",
            "version": "version:served", "resident": "resident:fingerprint",
            "rollback_readiness": "registry:m:target"}.get(kind, f"{kind}:x")
    return Evidence("m", kind, (Check(name, status, f"{kind} {status}"),), at - 0.1, at, version, source,  # type: ignore[arg-type]
                    interval_s, confirmed)


def view(**kw: object) -> ModelView:
    rules = kw.pop("rules", Rules())
    base = ModelView(model="m", rules=rules, served_version="3", started_at=T0 - 1000, seen_ready=True)  # type: ignore[arg-type]
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def actions(out: object) -> list[tuple[str, str | None]]:
    return [(d.action, d.check_class) for d in out.decisions]  # type: ignore[attr-defined]


def run(v: ModelView, e: Evidence, now: float | None = None) -> object:
    return decide(v, e, KINDS.get(e.kind), now=e.finished_at if now is None else now, kinds=KINDS)


def test_file_mismatch_pages_critical_and_rolls_back() -> None:
    out = run(view(), ev("files", "fail"))
    assert actions(out) == [("page", "integrity"), ("rollback", None)]
    assert out.decisions[0].severity == "critical"  # type: ignore[attr-defined]


def test_golden_failure_is_confirmed_once_before_acting() -> None:
    assert actions(run(view(), ev("golden", "fail"))) == [("confirm", None)]
    assert actions(run(view(), ev("golden", "fail", confirmed=True))) == [("page", "golden"), ("rollback", None)]
    no_confirm = view(rules=Rules(confirm=frozenset()))
    assert actions(run(no_confirm, ev("golden", "fail"))) == [("page", "golden"), ("rollback", None)]


@pytest.mark.parametrize(("changes", "why"), [
    ({"rules": Rules(mode="observe")}, "observe mode"),
    ({"rules": Rules(can_rollback=False)}, "rollback is off"),
    ({"stopped": True}, "flap guard stopped"),
])
def test_proof_without_permission_to_act_pages_and_says_why(changes: dict, why: str) -> None:  # type: ignore[type-arg]
    out = run(view(**changes), ev("files", "fail"))
    assert actions(out) == [("page", "integrity")]
    assert why in out.decisions[0].reason  # type: ignore[attr-defined]


def test_paused_neither_acts_nor_pages() -> None:
    out = run(view(paused_until=T0 + 60), ev("files", "fail"))
    assert actions(out) == [("hold", None)]
    later = run(view(paused_until=T0 + 60), ev("files", "fail", at=T0 + 61))  # the pause ran out
    assert ("rollback", None) in actions(later)


def test_flap_guard_stops_after_max_rollbacks_in_an_hour_and_pages_that_it_stopped() -> None:
    two = view(rollbacks=(T0 - 3000, T0 - 10))
    out = run(two, ev("files", "fail"))
    assert actions(out) == [("stop", None), ("page", "integrity"), ("page", FLAP_GUARD_CLASS)]
    assert "flap guard" in out.decisions[1].reason  # type: ignore[attr-defined]
    old = view(rollbacks=(T0 - 4000, T0 - 3700))  # more than an hour ago: they do not count
    assert ("rollback", None) in actions(run(old, ev("files", "fail")))
    zero = view(rules=Rules(max_rollbacks_per_hour=0))
    assert actions(run(zero, ev("files", "fail")))[0] == ("stop", None)


def test_server_down_pages_error_after_the_grace_period_never_rolls_back() -> None:
    v = view()
    out = run(v, ev("readiness", "fail", at=T0))
    assert actions(out) == [("hold", None)]
    v = out.view  # type: ignore[attr-defined]
    out = run(v, ev("readiness", "fail", at=T0 + 30))
    assert actions(out) == [("hold", None)], "30 s of a 60 s grace: a pod being deleted must not page"
    out = run(out.view, ev("readiness", "fail", at=T0 + 61))  # type: ignore[attr-defined]
    assert actions(out) == [("page", "server")]
    assert out.decisions[0].severity == "error"  # type: ignore[attr-defined]


def test_a_server_never_seen_ready_gets_the_start_grace() -> None:
    v = view(seen_ready=False, started_at=T0)
    assert actions(run(v, ev("readiness", "fail", at=T0 + 100))) == [("hold", None)]
    assert actions(run(v, ev("readiness", "fail", at=T0 + 301))) == [("page", "server")]


def test_checks_that_cannot_reach_a_down_server_are_one_incident() -> None:
    down = view(kinds={"readiness": KindState("fail", T0, T0 - 100, T0 - 90, 9)})
    assert actions(run(down, ev("golden", "error"))) == [("hold", None)]
    up = view()
    held = run(up, ev("golden", "error", at=T0))
    assert actions(held) == [("hold", None)]
    late = run(held.view, ev("golden", "error", at=T0 + 61))  # type: ignore[attr-defined]
    assert actions(late) == [("page", "golden")]
    assert late.decisions[0].severity == "error", "a check that could not run is never critical"  # type: ignore[attr-defined]


def test_version_skew_pages_and_reloads_once_and_blocks_golden_rollbacks() -> None:
    out = run(view(), ev("version", "fail"))
    assert actions(out) == [("page", "version"), ("reload", None)]
    reloaded = view(incidents={"version": IncidentView("version", "version", T0, T0, "reload")})
    assert actions(run(reloaded, ev("version", "fail"))) == [("page", "version")]
    skewed = view(kinds={"version": KindState("fail", T0, None, T0, 1)})
    golden = run(skewed, ev("golden", "fail", confirmed=True))
    assert actions(golden) == [("page", "golden")]
    assert ("rollback", None) in actions(run(skewed, ev("files", "fail"))), "files are independent of the server"


def test_evidence_about_another_version_or_from_before_the_last_action_is_ignored() -> None:
    assert actions(run(view(), ev("files", "fail", version="2"))) == [("ignore", None)]
    after_rollback = view(last_action_at=T0 - 0.05)  # the run started at T0 - 0.1
    assert actions(run(after_rollback, ev("files", "fail"))) == [("ignore", None)]
    assert actions(run(view(acting=True), ev("files", "fail"))) == [("ignore", None)]


def test_an_incident_after_a_rollback_resolves_once_every_proof_check_passed_on_the_new_version() -> None:
    acted = view(served_version="2", last_action_at=T0,
                 incidents={"integrity": IncidentView("integrity", "files", T0 - 5, T0 - 1, "rollback")})
    files = run(acted, ev("files", "pass", at=T0 + 1, version="2"))
    assert actions(files) == [], "golden replay has not passed on version 2 yet"
    golden = run(files.view, ev("golden", "pass", at=T0 + 2, version="2"))  # type: ignore[attr-defined]
    assert actions(golden) == [("resolve", "integrity")]
    no_golden = view(served_version="2", last_action_at=T0, kinds={"golden": KindState("skip", T0 + 1)},
                     incidents={"integrity": IncidentView("integrity", "files", T0 - 5, T0 - 1, "rollback")})
    assert actions(run(no_golden, ev("files", "pass", at=T0 + 1, version="2"))) == [("resolve", "integrity")]


def test_a_page_only_incident_resolves_when_its_checks_pass() -> None:
    v = view(incidents={"server": IncidentView("server", "readiness", T0 - 10)})
    assert actions(run(v, ev("readiness", "pass"))) == [("resolve", "server")]


def test_rollback_readiness_is_reported_never_paged() -> None:
    out = run(view(), ev("rollback_readiness", "fail"))
    assert actions(out) == [("hold", None)]
    assert out.view.kinds["rollback_readiness"].status == "fail"  # type: ignore[attr-defined]


def test_resident_failure_rolls_back_like_a_file_mismatch() -> None:
    out = run(view(), ev("resident", "fail", source="agent:pod:1", interval_s=30))
    assert actions(out) == [("page", "resident"), ("rollback", None)]
    assert "agent:pod:1" in out.view.sources  # type: ignore[attr-defined]


def test_a_new_kind_with_its_own_row_drift_pages_after_k_windows_never_rolls_back() -> None:
    kinds = EvidenceKinds.builtin()
    kinds.register(EvidenceKind("drift", "drift", "warning", consecutive=3, external=True))
    v = view()
    seen = []
    for i in range(4):
        out = decide(v, ev("drift", "fail", at=T0 + i, source="drift-sink"), kinds.get("drift"), now=T0 + i,
                     kinds=kinds)
        v = out.view
        seen.append(actions(out))
    assert seen[:2] == [[("hold", None)], [("hold", None)]]
    assert seen[2] == [("page", "drift")]
    assert all(("rollback", None) not in s for s in seen)


def test_silent_sources_warn_once_resolve_when_back_and_restarted_agents_supersede() -> None:
    src = SourceState("agent:pod:1", "resident", 30.0, T0 - 500, T0 - 100, "pass")
    v = view(sources={src.source: src})
    quiet = staleness(v, KINDS, now=T0 - 100 + 89)
    assert quiet.decisions == []
    out = staleness(v, KINDS, now=T0 - 100 + 91)
    assert [(d.action, d.check_class, d.severity) for d in out.decisions] == [("page", "resident-stale", "warning")]
    opened = view(sources={src.source: dataclasses.replace(src, last_seen=T0)},
                  incidents={"resident-stale": IncidentView("resident-stale", "resident-stale", T0 - 5)})
    assert [d.action for d in staleness(opened, KINDS, now=T0 + 1).decisions] == ["resolve"]
    newer = SourceState("agent:pod:2", "resident", 30.0, T0 - 50, T0 - 1, "pass")
    out = staleness(view(sources={src.source: src, newer.source: newer}), KINDS, now=T0)
    assert [(d.action, d.source) for d in out.decisions] == [("forget", "agent:pod:1")]
    assert set(out.view.sources) == {"agent:pod:2"}


# ---- properties over random histories -----------------------------------------------------------------------

_EVENTS = st.lists(st.tuples(st.sampled_from(["files", "golden", "readiness", "version", "rollback_readiness"]),
                             st.sampled_from(["pass", "fail", "error", "skip"]), st.booleans(),
                             st.floats(min_value=0.1, max_value=900.0)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(events=_EVENTS, mode=st.sampled_from(["act", "observe"]), limit=st.integers(0, 3),
       paused=st.booleans())
def test_rollbacks_only_on_proof_within_the_flap_guard_and_never_when_told_not_to(
        events: list[tuple[str, str, bool, float]], mode: str, limit: int, paused: bool) -> None:
    v = view(rules=Rules(mode=mode, max_rollbacks_per_hour=limit),  # type: ignore[arg-type]
             paused_until=T0 + 10**9 if paused else None)
    t = T0
    for kind, status, confirmed, gap in events:
        t += gap
        out = decide(v, ev(kind, status, at=t, confirmed=confirmed), KINDS.get(kind), now=t, kinds=KINDS)
        v = out.view
        for d in out.decisions:
            if d.action == "rollback":
                assert kind in ("files", "golden")
                assert status == "fail"
                assert mode == "act"
                assert not paused
                assert not v.stopped
                assert v.recent_rollbacks(t) < limit
                v = dataclasses.replace(v, rollbacks=(*v.rollbacks, t), last_action_at=t + 0.5)
            if d.action == "page":
                assert not paused, "a paused model is never paged"
                assert kind != "rollback_readiness"
                if kind in ("readiness", "version") or status == "error":
                    assert d.severity in ("error", "warning")
            if d.action == "stop":
                v = dataclasses.replace(v, stopped=True)
