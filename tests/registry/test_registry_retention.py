"""Retention keeps the newest K known-good versions and never the last verified one."""

from __future__ import annotations

import pytest

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry import Registry
from tests.registry.registry_helpers import corrupt


def _known_good(reg: Registry, artifact, n: int) -> list:
    return [reg.promote("m", reg.add("m", artifact(i)).version, reason="ok", serve=False) for i in range(1, n + 1)]


def test_keeps_newest_k_and_deletes_bytes(registry: Registry, artifact) -> None:
    vs = _known_good(registry, artifact, 4)
    report = registry.apply_retention("m", keep=2, actor="cron")
    assert (report.kept, report.retired) == (["4", "3"], ["2", "1"])
    assert report.deleted_bytes == sum(v.size_bytes for v in vs[:2])
    assert not vs[0].path.exists()
    assert vs[3].path.exists()
    assert registry.get("m", "1").state == "retired"
    assert registry.history("m", "1")[-1].actor == "cron"
    assert registry.apply_retention("m", keep=2).retired == []  # idempotent


def test_never_retires_the_last_verified_or_the_served(served_registry: Registry, artifact) -> None:
    reg = served_registry
    vs = [reg.promote("m", reg.add("m", artifact(i)).version, reason="ok") for i in (1, 2, 3, 4)]
    reg.rollback("m", reason="drill", quarantine_current=False)  # serving 3 now
    corrupt(vs[3].path / "weights.npz")  # newest (4) fails: 3 is the last verified one
    report = reg.apply_retention("m", keep=1)
    assert report.kept == ["4", "3"]
    assert report.retired == ["2", "1"]


def test_candidates_and_quarantined_are_untouched(registry: Registry, artifact) -> None:
    _known_good(registry, artifact, 2)
    cand = registry.add("m", artifact(7))
    registry.quarantine("m", "1", reason="bad")
    report = registry.apply_retention("m", keep=1)
    assert report.retired == []
    assert registry.get("m", cand.version).state == "candidate"
    assert registry.get("m", "1").path.exists()  # evidence is kept


def test_keep_must_be_positive(registry: Registry, artifact) -> None:
    _known_good(registry, artifact, 1)
    with pytest.raises(RegistryError, match="keep must be a whole number >= 1, got 0"):
        registry.apply_retention("m", keep=0)


def test_orphan_trees_from_a_crashed_add_are_collected(registry: Registry, artifact) -> None:
    _known_good(registry, artifact, 1)
    orphan = registry.store.put(artifact(42))  # stored, never registered: what a crash mid-add leaves
    report = registry.apply_retention("m", keep=1)
    assert report.retired == []
    assert report.deleted_bytes == orphan.size_bytes
    assert not orphan.path.exists()
    assert registry.verify(registry.get("m", "1")).ok
