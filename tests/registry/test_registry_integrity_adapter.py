"""The adapter to goldwatch.integrity: manifests written by either side keep verifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import _integrity_adapter as adapter
from tests.registry.registry_helpers import write_weights


def test_fallback_manifest_verifies_and_locates_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    art = write_weights(tmp_path / "model", 1)
    (art / "extra.txt").write_text("x")
    manifest = tmp_path / "m.json"
    monkeypatch.setattr(adapter, "_integrity", lambda: None)
    adapter.write_manifest(art, manifest)
    assert json.loads(manifest.read_text())["format"] == adapter.FALLBACK_FORMAT
    monkeypatch.undo()  # verification dispatches on the file's format, with or without goldwatch.integrity
    assert adapter.verify(art, manifest).ok
    (art / "extra.txt").write_text("y")
    (art / "new.bin").write_bytes(b"")
    result = adapter.verify(art, manifest)
    assert not result.ok
    assert sorted(result.problems) == ["extra.txt: sha256 differs", "new.bin: not in the manifest"]
    assert result.checks[0].status == "fail"


def test_integrity_manifest_when_available(tmp_path: Path) -> None:
    if adapter._integrity() is None:
        pytest.skip("goldwatch.integrity does not provide build_manifest yet")
    art = write_weights(tmp_path / "model", 1)
    manifest = tmp_path / "m.json"
    adapter.write_manifest(art, manifest)
    assert adapter.FALLBACK_FORMAT not in manifest.read_text()
    assert adapter.verify(art, manifest).ok
    (art / "weights.npz").unlink()
    result = adapter.verify(art, manifest)
    assert not result.ok
    assert "weights.npz" in result.problems[0]


def test_unreadable_manifest_is_a_failed_verification(tmp_path: Path) -> None:
    art = write_weights(tmp_path / "model", 1)
    manifest = tmp_path / "m.json"
    manifest.write_text("{not json")
    result = adapter.verify(art, manifest)
    assert not result.ok
    assert str(manifest) in result.problems[0]
    assert adapter.verify(tmp_path / "gone", manifest).problems == [f"{tmp_path / 'gone'}: artifact is missing"]
