"""Registry operations: add, promote (verified), quarantine, states, audit trail, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry import Registry
from tests.registry.registry_helpers import corrupt, write_golden_set


def test_add_numbers_versions_and_records_the_manifest(registry: Registry, artifact, tmp_path: Path) -> None:
    golden = write_golden_set(tmp_path / "golden")
    v1 = registry.add("fraud", artifact(1), golden=[golden], actor="ci")
    v2 = registry.add("fraud", artifact(2), version="2024-06-rc1")
    v3 = registry.add("fraud", artifact(3))
    assert [v.version for v in registry.list("fraud")] == ["1", "2024-06-rc1", "3"]
    assert v1.state == "candidate"
    assert v1.created_by == "ci"
    assert len(v1.golden) == 1
    assert Path(v1.golden[0]).parent.parent == registry.store.golden
    assert v1.manifest_path.is_file()
    assert (v1.path / "weights.npz").is_file()
    assert v2.seq == 2
    assert v3.seq == 3
    assert registry.verify(v1).ok
    assert registry.models() == ["fraud"]


def test_unknown_model_and_version_say_what_exists(registry: Registry, artifact) -> None:
    registry.add("fraud", artifact(1))
    with pytest.raises(RegistryError, match=r"unknown model 'frud' \(known: fraud\)"):
        registry.get("frud", "1")
    with pytest.raises(RegistryError, match=r"unknown version '9' of 'fraud' \(known: 1\)"):
        registry.promote("fraud", "9", reason="x")
    with pytest.raises(RegistryError, match="invalid model"):
        registry.add("../etc", artifact(1))
    with pytest.raises(RegistryError, match="already exists"):
        registry.add("fraud", artifact(2), version="1")
    assert len(registry.list("fraud")) == 1


def test_promote_verifies_and_records_who_when_why(registry: Registry, artifact) -> None:
    v = registry.add("m", artifact(1), actor="ci")
    promoted = registry.promote("m", v.version, actor="alice", reason="gate passed", evidence={"run": 7})
    assert promoted.state == "known-good"
    ev = registry.history("m")[-1]
    assert (ev.action, ev.from_state, ev.to_state, ev.actor, ev.reason) == (
        "promote", "candidate", "known-good", "alice", "gate passed")
    assert ev.evidence["run"] == 7
    assert ev.evidence["verified_s"] >= 0
    assert ev.at.endswith("+00:00")


def test_promoting_a_corrupted_version_changes_nothing(registry: Registry, artifact) -> None:
    v = registry.add("m", artifact(1))
    corrupt(v.path / "weights.npz")
    before = registry.history("m")
    with pytest.raises(RegistryError, match=r"fails verification: weights\.npz: sha256") as err:
        registry.promote("m", v.version, reason="looks fine")
    assert err.value.exit_code == 2
    assert "nothing was changed" in str(err.value)
    assert registry.get("m", v.version).state == "candidate"
    assert registry.history("m") == before


def test_illegal_transitions(registry: Registry, artifact) -> None:
    v = registry.add("m", artifact(1))
    registry.quarantine("m", v.version, reason="bad", actor="bob")
    with pytest.raises(RegistryError, match="only a candidate can be promoted"):
        registry.promote("m", v.version, reason="retry")
    registry.retire("m", v.version, reason="cleanup")
    with pytest.raises(RegistryError, match="is retired; it cannot become quarantined"):
        registry.quarantine("m", v.version, reason="again")
    with pytest.raises(RegistryError, match="a reason is required"):
        registry.quarantine("m", v.version, reason="")
    assert [e.action for e in registry.history("m")] == ["add", "quarantine", "retire"]


def test_known_good_is_the_newest_verified(registry: Registry, artifact) -> None:
    assert registry.list() == []
    vs = [registry.add("m", artifact(i)) for i in (1, 2, 3)]
    for v in vs[:2]:
        registry.promote("m", v.version, reason="ok")
    assert registry.known_good("m").version == "2"
    corrupt(vs[1].path / "weights.npz")
    assert registry.known_good("m").version == "2"  # by state
    assert registry.known_good("m", verify_artifacts=True).version == "1"  # by bytes


def test_promote_with_pointer_serves_the_version(served_registry: Registry, artifact) -> None:
    reg = served_registry
    v = reg.promote("m", reg.add("m", artifact(1)).version, reason="first")
    assert v.serving
    served = reg.serving_for("m").pointer.served_path()
    assert (served / "weights.npz").read_bytes() == (v.path / "weights.npz").read_bytes()
    assert reg.serving_target("m") == ("1", str(v.path.resolve()))
    assert reg.check("m").checks[-1].status == "pass"  # the pointer agrees with the registry


def test_promote_without_pointer_refuses_to_serve(registry: Registry, artifact) -> None:
    v = registry.add("m", artifact(1))
    with pytest.raises(RegistryError, match="no serving pointer is attached"):
        registry.promote("m", v.version, reason="x", serve=True)
    assert registry.get("m", v.version).state == "candidate"


def test_linked_golden_sets_are_copied_into_the_store(registry: Registry, artifact, tmp_path: Path) -> None:
    import shutil

    from goldwatch.golden_sets import GoldenSet

    golden = write_golden_set(tmp_path / "ci-workspace" / "golden")
    v1 = registry.add("fraud", artifact(1), golden=[golden])
    v2 = registry.add("fraud", artifact(2), golden=[golden])
    assert v1.golden == v2.golden  # content-addressed: the same set is stored once
    stored = Path(v1.golden[0])
    assert stored.is_relative_to(registry.store.root)
    assert stored.name == "golden"
    shutil.rmtree(tmp_path / "ci-workspace")  # the CI workspace is gone
    assert GoldenSet.load(registry.get("fraud", "1").golden[0]).n_samples == 4
    assert registry.history("fraud", "1")[0].evidence["golden_sources"] == [str(golden.resolve())]
    # retention's sweep of trees no version names leaves golden sets alone
    registry.promote("fraud", "1", reason="ok", serve=False)
    registry.apply_retention("fraud", keep=1)
    assert GoldenSet.load(stored).n_samples == 4


def test_a_bad_golden_set_fails_before_anything_is_written(tmp_path: Path, artifact) -> None:
    not_golden = tmp_path / "not-golden"
    not_golden.mkdir()
    (not_golden / "x.txt").write_text("x")
    root = tmp_path / "reg"
    with Registry.open(root) as reg:
        for bad, message in ((not_golden, "the golden set does not load"), (tmp_path / "missing",
                                                                              "golden set not found")):
            with pytest.raises(RegistryError, match=message):
                reg.add("fraud", artifact(1), golden=[bad])
        assert reg.models() == []
        assert not any(reg.store.objects.iterdir())
        assert not any(reg.store.trees.iterdir())
