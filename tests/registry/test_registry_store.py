"""The content-addressed store: deduplication, directory artifacts, refusal of links, garbage collection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry.store import ArtifactStore


def test_same_bytes_same_tree_and_objects_are_shared(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "model"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 100)
    (src / "sub").mkdir()
    (src / "sub" / "b.bin").write_bytes(b"a" * 100)  # same content as a.bin: one object
    first = store.put(src)
    second = store.put(src)
    assert first == second
    assert first.files == 2
    assert first.size_bytes == 200
    assert (first.path / "sub" / "b.bin").read_bytes() == b"a" * 100
    assert len(list(store.objects.glob("*/*"))) == 1
    assert not any(store.tmp.iterdir())
    # stored bytes are read-only: an accidental write fails rather than corrupting the backup
    assert not os.stat(first.path / "a.bin").st_mode & 0o222


def test_different_name_or_bytes_different_tree(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    a, b = tmp_path / "x.bin", tmp_path / "y.bin"
    a.write_bytes(b"1")
    b.write_bytes(b"1")
    assert store.put(a).tree != store.put(b).tree
    b.write_bytes(b"2")
    assert store.put(a).tree != store.put(b).tree


def test_symlinks_and_empty_dirs_are_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "model"
    src.mkdir()
    with pytest.raises(RegistryError, match="holds no files"):
        store.put(src)
    (src / "link").symlink_to("/etc/hostname")
    with pytest.raises(RegistryError, match="symbolic links are not stored"):
        store.put(src)
    with pytest.raises(RegistryError, match="artifact not found"):
        store.put(tmp_path / "missing")


def test_delete_tree_frees_only_unshared_objects(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "shared.bin").write_bytes(b"s" * 50)
    (one / "own.bin").write_bytes(b"o" * 70)
    t1, t2 = store.put(one), store.put(two)
    assert store.delete_tree(t1.tree) == 70
    assert not t1.path.exists()
    assert not t1.manifest_path.exists()
    assert (t2.path / "shared.bin").read_bytes() == b"s" * 50
    assert store.delete_tree(t2.tree) == 50
    assert list(store.objects.glob("*/*")) == []


@settings(max_examples=25)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}\.bin", fullmatch=True), st.binary(max_size=300),
                       min_size=1, max_size=5))
def test_put_round_trips_any_content(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]) -> None:
    base = tmp_path_factory.mktemp("rt")
    src = base / "model"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    stored = ArtifactStore(base / "store").put(src)
    assert {p.name: p.read_bytes() for p in stored.path.iterdir()} == files
    assert stored.size_bytes == sum(len(d) for d in files.values())


def _golden_dir(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "golden"
    (src / "data").mkdir(parents=True)
    (src / "golden.json").write_text('{"tolerance": 1e-5}')
    (src / "data" / "expected.npz").write_bytes(b"answers")
    return src


def test_stored_tree_problem_sees_edits_additions_and_removals(tmp_path: Path) -> None:
    from goldwatch.watchdog.registry.store import stored_tree_problem

    store = ArtifactStore(tmp_path / "store")
    stored = store.put_golden(_golden_dir(tmp_path))
    assert stored_tree_problem(stored) is None
    assert stored_tree_problem(tmp_path / "src" / "golden") is None  # not in the store's layout: nothing to check
    extra = stored / "data" / "extra.npz"
    extra.write_bytes(b"planted")
    assert "no longer match" in (stored_tree_problem(stored) or "")
    extra.unlink()
    manifest = stored / "golden.json"
    manifest.unlink()  # stored files are read-only hard links: an edit replaces the file
    manifest.write_text('{"tolerance": 1e30}')
    assert "no longer match" in (stored_tree_problem(stored) or "")
    manifest.unlink()
    assert "no longer match" in (stored_tree_problem(stored) or "")


def test_adding_a_golden_set_again_repairs_its_stored_tree(tmp_path: Path) -> None:
    from goldwatch.watchdog.registry.store import stored_tree_problem

    store = ArtifactStore(tmp_path / "store")
    src = _golden_dir(tmp_path)
    stored = store.put_golden(src)
    (stored / "data" / "extra.npz").write_bytes(b"planted")
    (stored / "planted").mkdir()
    (stored / "planted" / "x").write_bytes(b"x")
    (stored / "golden.json").unlink()
    (stored / "golden.json").write_text('{"tolerance": 1e30}')
    assert stored_tree_problem(stored) is not None
    assert store.put_golden(src) == stored
    assert stored_tree_problem(stored) is None
    assert not (stored / "planted").exists()
    assert (stored / "golden.json").read_text() == '{"tolerance": 1e-5}'


def test_an_unreadable_stored_file_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.watchdog.registry import store as store_module

    store = ArtifactStore(tmp_path / "store")
    stored = store.put_golden(_golden_dir(tmp_path))
    real = store_module.file_digest

    def unreadable(path: Path, algorithm: str) -> str:
        if Path(path).name == "golden.json":
            from goldwatch.errors import ArtifactError

            raise ArtifactError("cannot read the file (Permission denied)", where=str(path))
        return real(path, algorithm)

    monkeypatch.setattr(store_module, "file_digest", unreadable)
    problem = store_module.stored_tree_problem(stored)
    assert problem is not None
    assert problem.startswith("cannot read the stored tree: ")
    assert "Permission denied" in problem
