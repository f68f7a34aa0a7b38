"""Disaster recovery in the pure policy: when traffic moves to an alternate, when it comes back, and when it never
moves (observe mode, a pause, the flap guard, nothing configured)."""

from __future__ import annotations

import dataclasses

import pytest

from goldwatch.checks import Check
from goldwatch.watchdog.sidecar.evidence import Evidence, EvidenceKinds
from goldwatch.watchdog.sidecar.policy import (
    PRIMARY,
    IncidentView,
    KindState,
    ModelView,
    Rules,
    decide,
    primary_passes,
)

KINDS = EvidenceKinds.builtin()
T0 = 1_000_000.0
ALT = ("fallback", "cpu_variant")


def ev(kind: str, status: str, *, at: float = T0, confirmed: bool = False) -> Evidence:
    return Evidence("m", kind, (Check(f"{kind}:x", status, f"{kind} {status}"),), at - 0.05, at, "3",  # type: ignore[arg-type]
                    confirmed=confirmed)


def view(**kw: object) -> ModelView:
    rules = kw.pop("rules", Rules(alternates=ALT, server_down_grace_s=1.0, route_back_after_s=2.0,
                                  primary_kinds=("readiness", "device", "golden")))
    base = ModelView(model="m", rules=rules, served_version="3", started_at=T0 - 1000, seen_ready=True)  # type: ignore[arg-type]
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def step(v: ModelView, e: Evidence, now: float | None = None) -> tuple[ModelView, list[tuple[str, object]]]:
    out = decide(v, e, KINDS.get(e.kind), now=e.finished_at if now is None else now, kinds=KINDS)
    return out.view, [(d.action, d.route or d.alternates or d.check_class) for d in out.decisions]


def test_a_server_down_past_its_grace_moves_traffic_to_the_fallback_first_never_a_rollback() -> None:
    v, first = step(view(), ev("readiness", "fail"))
    assert first == [("hold", None)]  # within the grace period: a pod being deleted must not page
    v, later = step(v, ev("readiness", "fail", at=T0 + 1.2))
    assert later == [("page", "server"), ("route", ALT)]
    assert not any(a == "rollback" for a, _ in later)


def test_a_lost_device_is_confirmed_then_goes_to_the_cpu_variant_first() -> None:
    v, first = step(view(), ev("device", "fail"))
    assert first == [("confirm", None)]
    _, confirmed = step(v, ev("device", "fail", confirmed=True))
    assert confirmed == [("page", "device"), ("route", ("cpu_variant", "fallback"))]


@pytest.mark.parametrize(("changes", "why"), [
    ({"rules": Rules(mode="observe", alternates=ALT, server_down_grace_s=0.0)}, "observe mode"),
    ({"stopped": True}, "flap guard"),
    ({"rules": Rules(server_down_grace_s=0.0)}, "no fallback or CPU variant is configured"),
])
def test_traffic_never_moves_when_told_not_to_or_with_nowhere_to_go(changes: dict, why: str) -> None:  # type: ignore[type-arg]
    v = view(**{"rules": Rules(alternates=ALT, server_down_grace_s=0.0), **changes})
    out = decide(v, ev("readiness", "fail"), KINDS.get("readiness"), now=T0, kinds=KINDS).decisions
    assert [d.action for d in out] == ["page"]
    assert why in out[0].reason


def test_paused_neither_moves_traffic_nor_pages() -> None:
    _, out = step(view(paused_until=T0 + 100), ev("device", "fail", confirmed=True))
    assert out == [("hold", None)]


def test_while_degraded_the_primary_is_still_checked_and_only_pages() -> None:
    down = {"readiness": KindState("fail", T0 - 1, T0 - 7, T0 - 6, 9)}
    degraded = view(route="fallback", routed_at=T0 - 5, kinds=down,
                    incidents={"server": IncidentView("server", "readiness", T0 - 6, T0 - 5.5, "route")})
    _, out = step(degraded, ev("readiness", "fail"))
    assert out == [("page", "server")]  # no second route
    # a golden error while the server is down is the server's incident, not a new one
    _, held = step(degraded, ev("golden", "error"))
    assert held == [("hold", None)]


def test_traffic_goes_back_once_every_primary_check_passed_for_the_hold_down() -> None:
    v = view(route="fallback", routed_at=T0, incidents={
        "server": IncidentView("server", "readiness", T0 - 2, T0 - 1, "route")})
    v, out = step(v, ev("readiness", "pass", at=T0 + 1))
    assert out == []  # device and golden have not passed since the route yet; the incident waits for the route back
    v, out = step(v, ev("device", "pass", at=T0 + 1.1))
    assert out == []
    v, out = step(v, ev("golden", "pass", at=T0 + 1.2))
    assert primary_passes(v)
    assert v.primary_ok_since == T0 + 1.2
    assert out == [("hold", None)]  # passing, but not for 2 s yet; and the incident stays open while degraded
    v, out = step(v, ev("readiness", "pass", at=T0 + 3.3))
    assert out == [("route", PRIMARY)]


def test_a_failure_during_the_hold_down_starts_it_again() -> None:
    v = view(route="cpu_variant", routed_at=T0)
    for kind, at in (("readiness", 1.0), ("device", 1.1), ("golden", 1.2)):
        v, _ = step(v, ev(kind, "pass", at=T0 + at))
    assert v.primary_ok_since == T0 + 1.2
    v, _ = step(v, ev("device", "fail", at=T0 + 2.0, confirmed=True))
    assert v.primary_ok_since is None
    v, out = step(v, ev("device", "pass", at=T0 + 3.5))
    assert v.primary_ok_since == T0 + 3.5
    assert out == [("hold", None)]


def test_a_rollback_offers_the_fallback_for_when_no_known_good_version_is_left() -> None:
    _, out = step(view(), ev("golden", "fail", confirmed=True))
    assert out == [("page", "golden"), ("rollback", ("fallback",))]
    no_fallback = view(rules=Rules(alternates=("cpu_variant",)))
    _, out = step(no_fallback, ev("files", "fail"))
    assert out == [("page", "integrity"), ("rollback", None)]


def test_degraded_because_nothing_was_left_to_roll_back_to_golden_failures_only_page() -> None:
    v = view(route="fallback", routed_at=T0 - 3, incidents={
        "golden": IncidentView("golden", "golden", T0 - 4, T0 - 3.5, "route", "critical")})
    _, out = step(v, ev("golden", "fail"))
    assert out == [("page", "golden")]  # no confirm, no second rollback attempt every interval


def test_route_incidents_resolve_with_the_route_back_not_before() -> None:
    v = view(route="fallback", routed_at=T0, rules=Rules(alternates=ALT, route_back_after_s=0.0,
                                                           primary_kinds=("readiness",)),
             incidents={"server": IncidentView("server", "readiness", T0 - 2, T0 - 1, "route")})
    _, out = step(v, ev("readiness", "pass", at=T0 + 1))
    assert out == [("route", PRIMARY)]  # the responder resolves the incident once traffic is back
    back = dataclasses.replace(v, route=PRIMARY)
    _, out = step(back, ev("readiness", "pass", at=T0 + 2))
    assert out == [("resolve", "server")]
