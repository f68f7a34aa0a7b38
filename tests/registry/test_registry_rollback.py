"""Verified rollback: skip and quarantine corrupted backups, fall back, report none, readiness, timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry import CommandReloader, Registry, Serving, make_pointer
from tests.registry.registry_helpers import corrupt, write_weights


def _served(reg: Registry) -> bytes:
    path = reg.serving_for("m").pointer.served_path()
    return (path / "weights.npz").read_bytes()


def _three_known_good(reg: Registry, artifact) -> list:
    return [reg.promote("m", reg.add("m", artifact(i)).version, reason=f"release {i}") for i in (1, 2, 3)]


def test_rollback_skips_and_quarantines_a_corrupted_backup(served_registry: Registry, artifact) -> None:
    reg = served_registry
    v1, v2, _v3 = _three_known_good(reg, artifact)
    corrupt(v2.path / "weights.npz")
    result = reg.rollback("m", actor="sidecar", reason="v3 digest mismatch", evidence={"check": "digest"})
    assert result.ok
    assert (result.from_version, result.to_version) == ("3", "1")
    assert [(s.version, s.quarantined) for s in result.skipped] == [("2", True)]
    assert "weights.npz" in result.skipped[0].reason
    assert {v.version: v.state for v in reg.list("m")} == {"1": "known-good", "2": "quarantined", "3": "quarantined"}
    assert _served(reg) == (v1.path / "weights.npz").read_bytes()
    assert set(result.phases) == {"select", "switch", "verify_after"}
    assert all(t >= 0 for t in result.phases.values())
    check = result.to_checks()[0]
    assert check.status == "pass"
    assert check.details["skipped"][0]["version"] == "2"
    assert "rolled back m 3 -> 1" in result.summary()
    assert "skipped 2" in result.summary()
    serve_event = reg.history("m")[-1]
    assert (serve_event.action, serve_event.version, serve_event.actor) == ("serve", "1", "sidecar")


def test_rollback_keep_current(served_registry: Registry, artifact) -> None:
    reg = served_registry
    _three_known_good(reg, artifact)
    result = reg.rollback("m", reason="drill", quarantine_current=False)
    assert result.to_version == "2"
    assert reg.get("m", "3").state == "known-good"


def test_no_verified_known_good_and_no_fallback_changes_nothing(served_registry: Registry, artifact) -> None:
    reg = served_registry
    v1, _v2 = (reg.promote("m", reg.add("m", artifact(i)).version, reason="ok") for i in (1, 2))
    corrupt(v1.path / "weights.npz")
    before_served = _served(reg)
    result = reg.rollback("m", reason="v2 bad")
    assert not result.ok
    assert not result.switched
    assert "no verified known-good version" in result.error
    assert result.to_checks()[0].status == "fail"
    assert reg.serving_target("m")[0] == "2"
    assert _served(reg) == before_served
    assert reg.get("m", "2").state == "known-good"  # not quarantined: nothing to replace it with
    assert reg.get("m", "1").state == "quarantined"  # the corrupted backup is, and it is reported
    assert not reg.check("m").ok


def test_fallback_model_is_served_when_nothing_verifies(tmp_path: Path, artifact) -> None:
    fallback = write_weights(tmp_path / "fallback", 99)
    reg = Registry.open(tmp_path / "reg")
    reg.attach("m", Serving(make_pointer("current-link", tmp_path / "serve"), fallback=fallback))
    reg.promote("m", reg.add("m", artifact(1)).version, reason="only one")
    result = reg.rollback("m", reason="v1 bad")
    assert result.ok
    assert result.to_version is None
    assert result.fallback == fallback
    assert "fallback" in result.summary()
    assert reg.serving_target("m") == (None, str(fallback.resolve()))
    assert (tmp_path / "serve" / "current" / "weights.npz").read_bytes() == (fallback / "weights.npz").read_bytes()
    assert reg.check("m").checks[0].summary.startswith("no verified known-good version; fallback")
    reg.close()


def test_reloader_is_called_with_the_target_and_failures_are_reported(tmp_path: Path, artifact) -> None:
    log = tmp_path / "reload.log"
    script = f'echo "$GOLDWATCH_MODEL $GOLDWATCH_VERSION $GOLDWATCH_PATH" >> {log}'
    reg = Registry.open(tmp_path / "reg")
    serving = Serving(make_pointer("current-link", tmp_path / "serve"), reloader=CommandReloader(["sh", "-c", script]))
    reg.attach("m", serving)
    v1, _v2 = (reg.promote("m", reg.add("m", artifact(i)).version, reason="ok") for i in (1, 2))
    result = reg.rollback("m", reason="bad")
    assert result.ok
    assert result.server_ready is True
    assert {"reload", "ready"} <= set(result.phases)
    assert log.read_text().splitlines()[-1] == f"m 1 {v1.path.resolve()}"
    # a server that refuses: the switch stands (it is durable), the result says the server did not confirm
    reg.attach("m", Serving(serving.pointer, reloader=CommandReloader(["sh", "-c", "echo boom >&2; exit 3"])))
    reg.promote("m", reg.add("m", artifact(3)).version, reason="ok", serve=False)
    result = reg.rollback("m", reason="again", quarantine_current=False)
    assert result.switched
    assert not result.ok
    assert result.server_ready is False
    assert "exited with status 3: boom" in result.error
    assert result.to_checks()[0].status == "error"
    reg.close()


def test_readiness_report(served_registry: Registry, artifact) -> None:
    reg = served_registry
    reg.promote("m", reg.add("m", artifact(1)).version, reason="ok")
    report = reg.check("m")
    assert not report.ok
    assert report.target is None
    assert report.checks[0].summary == "no verified known-good version to roll back to and no fallback model"
    v2 = reg.promote("m", reg.add("m", artifact(2)).version, reason="ok")
    report = reg.check("m")
    assert report.ok
    assert report.target == "1"
    assert [c.name for c in report.checks] == ["registry:m:target", "registry:m:target-digest", "registry:m:pointer"]
    assert v2.serving


def test_readiness_flags_corrupted_backup_and_a_moved_pointer(served_registry: Registry, artifact) -> None:
    reg = served_registry
    v1, v2, _v3 = _three_known_good(reg, artifact)
    corrupt(v2.path / "weights.npz")
    report = reg.check("m")
    assert report.target == "1"
    assert not report.ok
    bad = [c for c in report.checks if c.status == "fail"]
    assert [c.name for c in bad] == ["registry:m:backup:2"]
    assert reg.get("m", "2").state == "known-good"  # a check never changes anything
    ptr = reg.serving_for("m").pointer
    ptr.switch(ptr.stage(v1.path, label="someone else"))
    assert [c.status for c in reg.check("m").checks if c.name.endswith("pointer")] == ["fail"]


def test_readiness_load_check_skips_or_runs(served_registry: Registry, artifact) -> None:
    reg = served_registry
    _three_known_good(reg, artifact)
    load = reg.check("m", load=True).checks[-1]
    assert load.name == "registry:m:target-loads"
    # a bare weights.npz directory is no model any runtime knows: "does not load" is the honest answer
    assert load.status == "fail"
    assert load.summary.startswith("2 does not load")


def test_rollback_needs_a_reason_and_a_known_model(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="unknown model"):
        registry.rollback("ghost", reason="x")
