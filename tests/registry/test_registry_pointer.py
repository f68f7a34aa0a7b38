"""The serving pointer in both layouts: atomic switch, staged leftovers, what a reader sees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry.pointer import MARKER, VERSIONS_DIR, make_pointer


def _digest12(source: Path) -> str:
    import hashlib

    return hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    out = []
    for name in ("v1", "v2"):
        d = tmp_path / "store" / name
        d.mkdir(parents=True)
        (d / "weights.bin").write_text(name)
        out.append(d)
    return out[0], out[1]


def test_current_link_switch(tmp_path: Path, versions: tuple[Path, Path]) -> None:
    ptr = make_pointer("current-link", tmp_path / "serve")
    assert ptr.read() is None
    ptr.switch(ptr.stage(versions[0], label="m:1"))
    assert (tmp_path / "serve" / "current" / "weights.bin").read_text() == "v1"
    ptr.switch(ptr.stage(versions[1], label="m:2"))
    state = ptr.read()
    assert state is not None
    assert state.source == versions[1].resolve()
    assert state.label == "m:2"
    assert (tmp_path / "serve" / "current" / "weights.bin").read_text() == "v2"
    assert sorted(os.listdir(tmp_path / "serve")) == [VERSIONS_DIR, "current"]
    # one private copy, the one served; the link is relative (the serving directory can be mounted elsewhere)
    assert os.readlink(tmp_path / "serve" / "current") == f"{VERSIONS_DIR}/2-" + _digest12(versions[1]) + "/v2"
    assert len(os.listdir(tmp_path / "serve" / VERSIONS_DIR)) == 1


def test_current_link_staged_but_not_switched_is_invisible_and_cleaned(tmp_path: Path, versions) -> None:
    ptr = make_pointer("current-link", tmp_path / "serve")
    ptr.switch(ptr.stage(versions[0], label="m:1"))
    ptr.stage(versions[1], label="m:2")  # a crash here: the staged link exists under a hidden name
    assert ptr.read().source == versions[0].resolve()
    assert len(ptr.cleanup()) == 2  # the staged link and the copy it named
    assert sorted(os.listdir(tmp_path / "serve")) == [VERSIONS_DIR, "current"]
    assert (tmp_path / "serve" / "current" / "weights.bin").read_text() == "v1"
    assert len(os.listdir(tmp_path / "serve" / VERSIONS_DIR)) == 1


def test_current_link_refuses_a_regular_file_in_its_place(tmp_path: Path) -> None:
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "current").write_text("not a link")
    with pytest.raises(RegistryError, match="not a symbolic link"):
        make_pointer("current-link", tmp_path / "serve").read()


def test_numbered_layout_copies_and_bumps(tmp_path: Path, versions: tuple[Path, Path]) -> None:
    ptr = make_pointer("numbered", tmp_path / "serve")
    ptr.switch(ptr.stage(versions[0], label="m:1"))
    ptr.switch(ptr.stage(versions[1], label="m:2"))
    ptr.switch(ptr.stage(versions[0], label="m:1"))  # roll back = a new, higher number with the old bytes
    assert sorted(os.listdir(tmp_path / "serve")) == [MARKER, "3"]
    served = tmp_path / "serve" / "3"
    assert (served / "weights.bin").read_text() == "v1"
    assert not (served / "weights.bin").samefile(versions[0] / "weights.bin")  # a copy, not a link
    state = ptr.read()
    assert state.number == 3
    assert state.label == "m:1"
    assert state.source == versions[0].resolve()
    assert not (served / MARKER).exists()  # the served copy holds exactly the artifact
    assert json.loads((tmp_path / "serve" / MARKER).read_text())["3"]["label"] == "m:1"


def test_numbered_crash_leftovers_are_resolved_by_cleanup(tmp_path: Path, versions, monkeypatch) -> None:
    ptr = make_pointer("numbered", tmp_path / "serve")
    ptr.switch(ptr.stage(versions[0], label="m:1"))

    def die(keep: int) -> None:
        raise KeyboardInterrupt("killed after the rename, before dropping the old number")

    monkeypatch.setattr(ptr, "_drop_below", die)
    with pytest.raises(KeyboardInterrupt):
        ptr.switch(ptr.stage(versions[1], label="m:2"))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "serve")) == [MARKER, "1", "2"]
    assert ptr.read().label == "m:2"  # the highest number is what Triton serves
    ptr.stage(versions[0], label="m:1")  # and a half-staged directory
    ptr.cleanup()
    assert sorted(os.listdir(tmp_path / "serve")) == [MARKER, "2"]


def test_single_file_artifact_in_numbered_layout(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    ptr = make_pointer("numbered", tmp_path / "serve")
    ptr.switch(ptr.stage(model, label="m:1"))
    assert (tmp_path / "serve" / "1" / "model.onnx").read_bytes() == b"onnx"


def test_unknown_layout_and_file_as_serving_dir(tmp_path: Path, versions) -> None:
    with pytest.raises(RegistryError, match="unknown serving layout 'flat'"):
        make_pointer("flat", tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="not a directory"):
        make_pointer("numbered", tmp_path / "file").stage(versions[0], label="x")


def test_current_link_serves_a_private_copy(tmp_path: Path, versions: tuple[Path, Path]) -> None:
    ptr = make_pointer("current-link", tmp_path / "serve")
    ptr.switch(ptr.stage(versions[0], label="m:1"))
    served = tmp_path / "serve" / "current" / "weights.bin"
    assert not os.path.samefile(served, versions[0] / "weights.bin")
    served.write_text("corrupted")
    assert (versions[0] / "weights.bin").read_text() == "v1"
    # serving the same version again makes a fresh copy (under a new name), then drops the corrupted one
    ptr.switch(ptr.stage(versions[0], label="m:1"))
    assert served.read_text() == "v1"
    assert ptr.read().source == versions[0].resolve()
    assert len(os.listdir(tmp_path / "serve" / VERSIONS_DIR)) == 1


def test_current_link_reads_a_link_made_by_an_older_goldwatch(tmp_path: Path, versions: tuple[Path, Path]) -> None:
    serve = tmp_path / "serve"
    serve.mkdir()
    os.symlink(versions[0].resolve(), serve / "current")
    (serve / MARKER).write_text(json.dumps({str(versions[0].resolve()): "m:1"}))
    ptr = make_pointer("current-link", serve)
    assert (ptr.read().source, ptr.read().label) == (versions[0].resolve(), "m:1")
    ptr.switch(ptr.stage(versions[1], label="m:2"))
    assert ptr.read().source == versions[1].resolve()
    assert sorted(os.listdir(serve)) == [VERSIONS_DIR, "current"]
    assert (versions[0] / "weights.bin").read_text() == "v1"  # the store is never touched
