"""``goldwatch gate`` through click's CliRunner and as the real console script: exit codes, messages, reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.watchdog.gate.verdict import SCHEMA_PATH
from tests.gate._schema import errors as schema_errors
from tests.gate.conftest import GateWorld

SCHEMA = json.loads(SCHEMA_PATH.read_text())


def gate(*args: str | os.PathLike[str]):
    return CliRunner().invoke(main, ["gate", *map(str, args), "--latency-repeats", "2"], catch_exceptions=False)


def reports(tmp_path: Path) -> list[str]:
    return ["--junit", str(tmp_path / "gate.xml"), "--markdown", str(tmp_path / "gate.md"),
            "--verdict", str(tmp_path / "gate.json"), "--html", str(tmp_path / "gate.html")]


def junit_counts(path: Path) -> tuple[int, int, int]:
    suite = ET.parse(path).getroot().find("testsuite")
    return int(suite.get("tests")), int(suite.get("failures")), int(suite.get("errors"))


def test_pass_exit_0_with_four_reports(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline", world.same,
                  *reports(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS: ")
    tests, failures, errors = junit_counts(tmp_path / "gate.xml")
    assert (failures, errors) == (0, 0)
    assert tests > 10
    data = json.loads((tmp_path / "gate.json").read_text())
    assert schema_errors(data, SCHEMA) == []
    assert (data["verdict"], data["exit_code"]) == ("pass", 0)
    assert data["counts"]["pass"] + data["counts"]["skip"] == tests
    assert (tmp_path / "gate.md").read_text().startswith("## goldwatch gate: ✅ PASS")
    assert "[gate.html](gate.html)" in (tmp_path / "gate.md").read_text()
    assert 'data-verdict="pass"' in (tmp_path / "gate.html").read_text()


def test_fail_exit_1_lists_failures(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline", world.other,
                  *reports(tmp_path))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL: ")
    assert "  FAIL  baseline:golden:logits:top1_agreement: top-1 agreement with baseline: " in result.output
    _, failures, _ = junit_counts(tmp_path / "gate.xml")
    assert failures >= 1
    assert json.loads((tmp_path / "gate.json").read_text())["exit_code"] == 1


def test_flags_override_thresholds(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline", world.other,
                  "--min-top1-agreement", "0", "--drift-p-threshold", "1e-300", "--metric-min-absolute-change", "-1",
                  "--verdict", tmp_path / "v.json")
    thresholds = json.loads((tmp_path / "v.json").read_text())["thresholds"]
    assert thresholds["min_top1_agreement"] == 0
    assert thresholds["metric_min_absolute_change"] == -1
    assert result.exit_code in (0, 1)


def test_config_file_thresholds(world: GateWorld, tmp_path: Path) -> None:
    cfg = tmp_path / "goldwatch.toml"
    cfg.write_text("[gate]\nmin_top1_agreement = 0.0\nlatency_budget_ms_p95 = 0.000001\n")
    result = CliRunner().invoke(main, ["--config", str(cfg), "gate", "--candidate", str(world.candidate),
                                       "--golden", str(world.golden), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["thresholds"]["latency_budget_ms_p95"] == 1e-6
    assert [c["status"] for c in data["checks"] if c["name"].startswith("latency:")] == ["fail"]


def test_unloadable_candidate_exit_2_one_line_and_junit_records_it(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", tmp_path / "missing.onnx", "--golden", world.golden, *reports(tmp_path))
    assert result.exit_code == 2
    err_lines = [line for line in result.stderr.splitlines() if line.startswith("goldwatch: error:")]
    assert err_lines == [
        f"goldwatch: error: {tmp_path / 'missing.onnx'}: model not found "
        "(fix: pass an existing model file, directory or URL)"
    ]
    assert "Traceback" not in result.output
    suite = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite")
    (case,) = [c for c in suite.findall("testcase") if c.find("error") is not None]
    assert "model not found" in case.find("error").get("message")
    assert json.loads((tmp_path / "gate.json").read_text())["error"]["kind"] == "ArtifactError"


def test_golden_for_another_signature_exit_2(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.wrong_input, "--golden", world.golden, "--junit", tmp_path / "j.xml")
    assert result.exit_code == 2
    assert "inputs do not match: the model takes ['features'], the golden set has ['x']" in result.stderr
    assert junit_counts(tmp_path / "j.xml")[2] == 1


def test_unknown_baseline_exit_2(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline-registry", "nosuch",
                  "--registry-root", tmp_path / "no-registry")
    assert result.exit_code == 2
    assert "no registry here" in result.stderr


def test_unwritable_report_path_exit_2_but_junit_written(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--junit", tmp_path / "gate.xml",
                  "--html", tmp_path / "no" / "such" / "dir" / "gate.html")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("goldwatch: error: --html ")
    assert "does not exist (fix: create it first: mkdir -p" in result.stderr
    suite = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite")
    assert suite.get("errors") == "1"
    assert not (tmp_path / "no").exists()


def test_report_path_that_is_a_directory(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--verdict", tmp_path)
    assert result.exit_code == 2
    assert "Invalid value for '--verdict'" in result.stderr
    assert "is a directory" in result.stderr


def test_json_to_stdout_stays_parseable(world: GateWorld) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"] == "pass"
    assert result.stderr.startswith("PASS: ")


def test_evidently_needs_html(world: GateWorld) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--evidently")
    assert result.exit_code == 2
    assert "--evidently needs --html FILE" in result.output


@pytest.mark.slow
def test_evidently_report_embedded(world: GateWorld, tmp_path: Path) -> None:
    pytest.importorskip("evidently", reason="the reports extra (evidently) is not installed")
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline", world.shifted,
                  "--html", tmp_path / "r.html", "--evidently")
    assert result.exit_code == 1
    page = (tmp_path / "r.html").read_text()
    assert '<iframe class="evidently" title="Evidently drift report" srcdoc="' in page
    assert "&lt;script" in page  # Evidently's app, escaped into srcdoc
    assert "<script" not in page
    assert "Evidently drift report" in page


def console_script() -> str:
    script = Path(sys.executable).parent / "goldwatch"
    if not script.exists():
        pytest.skip(f"the goldwatch console script is not installed next to {sys.executable}")
    return str(script)


@pytest.mark.integration
def test_console_script_subprocess(world: GateWorld, tmp_path: Path) -> None:
    proc = subprocess.run(
        [console_script(), "gate", "--candidate", str(world.candidate), "--golden", str(world.golden),
         "--baseline", str(world.other), "--junit", str(tmp_path / "gate.xml"), "--latency-repeats", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("FAIL: ")
    assert junit_counts(tmp_path / "gate.xml")[1] >= 1
    bad = subprocess.run([console_script(), "gate", "--candidate", "x.onnx", "--golden", str(world.golden)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "goldwatch: error: x.onnx: model not found (fix: pass an existing model file, " \
                                 "directory or URL)"


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from click.testing import CliRunner; from goldwatch.cli import main; "
            "r = CliRunner().invoke(main, ['gate', '--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'evidently', 'mlserver') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_promote_records_the_verdict_in_the_registry(world: GateWorld, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--promote", "--registry-root", registry,
                  "--model-name", "clf", "--verdict", tmp_path / "v.json", "--markdown", tmp_path / "v.md")
    assert result.exit_code == 0, result.output
    promotion = json.loads((tmp_path / "v.json").read_text())["promotion"]
    assert (promotion["model"], promotion["state"]) == ("clf", "known-good")
    assert f"Promoted `clf` version `{promotion['version']}` to **known-good**" in (tmp_path / "v.md").read_text()
    # the promoted version is now the baseline
    again = gate("--candidate", world.candidate, "--golden", world.golden, "--baseline-registry", "clf",
                 "--registry-root", registry, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["baseline"]["version"] == promotion["version"]


def test_promote_without_a_model_name_is_an_error(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--promote", "--registry-root",
                  tmp_path / "r", "--junit", tmp_path / "j.xml")
    assert result.exit_code == 2
    assert "--promote needs a registry and a model name" in result.stderr
    assert junit_counts(tmp_path / "j.xml")[2] == 1


def test_a_pinned_golden_digest_gates_the_golden_set_too(world: GateWorld, tmp_path: Path) -> None:
    import shutil

    from goldwatch.golden_sets import GoldenSet

    golden = Path(shutil.copytree(world.golden, tmp_path / "golden"))
    digest = GoldenSet.load(golden).digest
    assert digest is not None
    ok = gate("--candidate", world.candidate, "--golden", f"{golden}@{digest}", "--baseline", world.same,
              *reports(tmp_path))
    assert ok.exit_code == 0, ok.output
    data = json.loads((tmp_path / "gate.json").read_text())
    assert schema_errors(data, SCHEMA) == []
    assert data["golden_digests"] == {f"{golden}@{digest}": digest}  # the verdict records what was replayed
    assert f"{digest[:19]}…" in (tmp_path / "gate.md").read_text()
    manifest = json.loads((golden / "golden.json").read_text())
    for output in manifest["outputs"].values():
        output["tolerance"]["atol"] = 1e30
    (golden / "golden.json").write_text(json.dumps(manifest))
    refused = gate("--candidate", world.candidate, "--golden", f"{golden}@{digest}", "--baseline", world.same,
                   "--verdict", str(tmp_path / "gate.json"))
    assert refused.exit_code == 2, refused.output
    assert "golden set digest mismatch" in refused.output
    data = json.loads((tmp_path / "gate.json").read_text())
    assert (data["verdict"], data["exit_code"]) == ("error", 2)


def test_old_spellings_still_work_for_a_release(world: GateWorld, tmp_path: Path) -> None:
    result = gate("--candidate", world.candidate, "--golden", world.golden, "--json", tmp_path / "v.json",
                  "--registry", tmp_path / "registry")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] == "pass"  # --json FILE wrote the verdict
    assert result.stdout.startswith("PASS: ")  # ... and stdout kept the human summary, as before
    assert "`main gate --json FILE` is deprecated" in result.stderr
    assert "use --verdict FILE" in result.stderr
    assert "`main gate --registry` is deprecated" in result.stderr
    assert "--registry-root DIR" in result.stderr
    assert not (tmp_path / "registry").exists()
