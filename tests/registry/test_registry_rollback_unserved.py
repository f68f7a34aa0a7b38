"""A rollback with no serving pointer is refused with a clear message instead of relabelling versions."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from goldwatch.cli import main


def test_rollback_without_serving_pointer_is_an_input_error(tmp_path: Path) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights v1" * 100)
    root = str(tmp_path / "reg")
    runner = CliRunner()
    assert runner.invoke(main, ["registry", "--registry-root", root, "add", "m", str(artifact)]).exit_code == 0
    promoted = runner.invoke(main, ["registry", "--registry-root", root, "promote", "m", "1", "--reason", "ok"])
    assert promoted.exit_code == 0
    result = runner.invoke(main, ["registry", "--registry-root", root, "rollback", "m", "--reason", "bad"])
    assert result.exit_code == 2, result.output
    assert "no serving pointer" in result.output
    assert "--serving-dir" in result.output
    # nothing changed: v1 is still known-good, not quarantined
    shown = runner.invoke(main, ["registry", "--registry-root", root, "show", "m", "1", "--json"])
    assert '"known-good"' in shown.output
