"""The served copy and the store's backups are independent, and re-adding good bytes repairs a corrupted object."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.registry.store import ArtifactStore
from tests.registry.registry_helpers import corrupt, write_weights


@pytest.mark.parametrize("layout", ["current-link", "numbered"])
def test_corrupting_the_served_file_leaves_the_backups_intact(tmp_path: Path, layout: str) -> None:
    serve = tmp_path / "serve"
    reg = Registry.open(tmp_path / "reg", serving={"m": Serving(make_pointer(layout, serve))})
    v1 = reg.promote("m", reg.add("m", write_weights(tmp_path / "a", 1)).version, reason="r1")
    v2 = reg.promote("m", reg.add("m", write_weights(tmp_path / "b", 2)).version, reason="r2")
    # v3 holds v2's very bytes: the same tree and objects in the store
    v3 = reg.promote("m", reg.add("m", tmp_path / "b").version, reason="r3")
    assert v3.digest == v2.digest
    served = reg.serving_for("m").pointer.served_path()
    assert served is not None
    corrupt(served / "weights.npz")
    assert (served / "weights.npz").read_bytes() != (v3.path / "weights.npz").read_bytes()
    for mv in (v1, v2, v3):
        assert reg.verify(mv).ok, mv.version  # the store object (and every version sharing it) is untouched
    assert reg.check("m").target == "2"  # readiness judges the backups, which the served copy cannot touch
    result = reg.rollback("m", reason="served copy corrupted")
    assert result.ok, result.summary()
    assert (result.from_version, result.to_version) == ("3", "2")
    served = reg.serving_for("m").pointer.served_path()
    assert (served / "weights.npz").read_bytes() == (v2.path / "weights.npz").read_bytes()
    assert reg.verify(reg.get("m", "2")).ok
    if layout == "current-link":
        assert len(os.listdir(serve / ".goldwatch-versions")) == 1  # the corrupted copy is gone
    reg.close()


def test_promoting_the_served_version_again_replaces_a_corrupted_copy(served_registry: Registry, artifact) -> None:
    reg = served_registry
    v1 = reg.promote("m", reg.add("m", artifact(1)).version, reason="r1")
    corrupt(reg.serving_for("m").pointer.served_path() / "weights.npz")
    reg.promote("m", v1.version, reason="re-serve a fresh copy")
    served = reg.serving_for("m").pointer.served_path()
    assert (served / "weights.npz").read_bytes() == (v1.path / "weights.npz").read_bytes()
    assert reg.check("m").checks[-1].status == "pass"


def _object(store: ArtifactStore, file: Path) -> Path:
    [obj] = [p for p in store.objects.glob("*/*") if os.path.samefile(p, file)]
    return obj


def test_re_adding_good_bytes_repairs_a_corrupted_object(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = write_weights(tmp_path / "model", 1)
    twin = tmp_path / "twin"
    shutil.copytree(src, twin)  # another name, same bytes: another tree sharing the object
    a, b = store.put(src), store.put(twin)
    assert a.tree != b.tree
    obj = _object(store, a.path / "weights.npz")
    digest = obj.name
    corrupt(a.path / "weights.npz")  # a hard link: the object and the twin's tree are corrupted with it
    assert (b.path / "weights.npz").read_bytes() != (src / "weights.npz").read_bytes()
    with caplog.at_level(logging.WARNING, logger="goldwatch"):
        again = store.put(src)
    assert again.tree == a.tree
    assert obj.read_bytes() == (src / "weights.npz").read_bytes()
    assert obj.name == digest
    assert oct(obj.stat().st_mode & 0o777) == oct(0o444)
    for tree in (a, b):  # every tree that shared the corrupted inode now links the repaired object
        assert os.path.samefile(tree.path / "weights.npz", obj)
    assert any("did not match its digest" in r.getMessage() for r in caplog.records)
    assert not any(store.tmp.iterdir())


def test_re_adding_restores_a_tree_file_replaced_behind_the_stores_back(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = write_weights(tmp_path / "model", 1)
    a = store.put(src)
    target = a.path / "weights.npz"
    target.unlink()
    target.write_bytes(b"not the weights")  # a new inode: the object itself is intact
    store.put(src)
    assert target.read_bytes() == (src / "weights.npz").read_bytes()
    assert os.path.samefile(target, _object(store, target))


def test_re_adding_a_good_copy_makes_the_corrupted_version_verify(registry: Registry, artifact) -> None:
    v1 = registry.add("m", artifact(1))
    corrupt(v1.path / "weights.npz")
    assert not registry.verify(v1).ok
    v2 = registry.add("m", artifact(1))
    assert registry.verify(v2).ok
    assert registry.verify(v1).ok  # the same bytes, repaired in place
