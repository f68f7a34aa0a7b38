"""The adapter to goldwatch.integrity: manifests are goldwatch.integrity manifests, and problems are located."""

from __future__ import annotations

import json
from pathlib import Path

from goldwatch.integrity import ArtifactManifest
from goldwatch.integrity.manifest import FORMAT_NAME
from goldwatch.watchdog.registry import _integrity_adapter as adapter
from tests.registry.registry_helpers import corrupt, write_weights


def test_manifest_is_an_integrity_manifest_and_verifies(tmp_path: Path) -> None:
    art = write_weights(tmp_path / "model", 1)
    manifest = tmp_path / "m.json"
    adapter.write_manifest(art, manifest)
    assert json.loads(manifest.read_text())["format"] == FORMAT_NAME
    assert [f.path for f in ArtifactManifest.load(manifest).files] == ["weights.npz"]
    result = adapter.verify(art, manifest)
    assert result.ok
    assert result.problems == []
    assert [c.status for c in result.checks] == ["pass"]


def test_corruption_and_file_changes_are_located(tmp_path: Path) -> None:
    art = write_weights(tmp_path / "model", 1)
    (art / "extra.txt").write_text("x")
    manifest = tmp_path / "m.json"
    adapter.write_manifest(art, manifest)
    corrupt(art / "weights.npz", offset=-200)  # inside the tensor's data, not the zip directory
    (art / "extra.txt").unlink()
    (art / "new.bin").write_bytes(b"")
    result = adapter.verify(art, manifest)
    assert not result.ok
    assert "extra.txt: file is missing" in result.problems
    assert "new.bin: file is not in the manifest" in result.problems
    assert any(p.startswith("weights.npz: sha256 digest differs") for p in result.problems)
    assert {c.name: c.status for c in result.checks}["registry:weights.npz"] == "fail"


def test_missing_or_garbage_manifest_is_a_failed_verification_with_a_clear_message(tmp_path: Path) -> None:
    art = write_weights(tmp_path / "model", 1)
    manifest = tmp_path / "m.json"
    missing = adapter.verify(art, manifest)
    assert not missing.ok
    assert missing.problems[0].startswith(f"{manifest}: manifest not found")
    manifest.write_text("{not json")
    garbage = adapter.verify(art, manifest)
    assert not garbage.ok
    assert garbage.problems[0].startswith(f"{manifest}: manifest is not readable JSON")
    assert garbage.checks[0].status == "fail"
    manifest.write_text(json.dumps({"format": "something-else/1", "files": {}}))
    foreign = adapter.verify(art, manifest)
    assert not foreign.ok
    assert foreign.problems[0].startswith(f"{manifest}: not a goldwatch artifact manifest")


def test_missing_artifact_is_a_failed_verification(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    adapter.write_manifest(write_weights(tmp_path / "model", 1), manifest)
    assert adapter.verify(tmp_path / "gone", manifest).problems == [f"{tmp_path / 'gone'}: artifact is missing"]
