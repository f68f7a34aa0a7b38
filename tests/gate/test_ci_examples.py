"""The example CI configurations run as written: the test executes the same command lines on a real layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.gate.conftest import GateWorld

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"


@pytest.fixture
def repo(world: GateWorld, tmp_path: Path) -> Path:
    """The repository layout the examples assume: models/, golden/ and a manifest."""
    from goldwatch.integrity import build_manifest

    (tmp_path / "models" / "candidate").mkdir(parents=True)
    (tmp_path / "models" / "production").mkdir(parents=True)
    shutil.copy(world.candidate, tmp_path / "models" / "candidate" / "model.onnx")
    shutil.copy(world.same, tmp_path / "models" / "production" / "model.onnx")
    build_manifest(tmp_path / "models" / "candidate" / "model.onnx").save(
        tmp_path / "models" / "candidate" / "model.onnx.manifest.json"
    )
    shutil.copytree(world.golden, tmp_path / "golden" / "tabular")
    return tmp_path


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=180, check=False, env={**os.environ, "PATH": path, **env})


def check_reports(repo: Path) -> None:
    suite = ET.parse(repo / "reports" / "gate.xml").getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert json.loads((repo / "reports" / "gate.json").read_text())["verdict"] == "pass"
    assert (repo / "reports" / "gate.html").stat().st_size > 5000


def test_github_actions_workflow(repo: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the workflow")
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    by_name = {s.get("name"): s for s in steps}
    gate = by_name["goldwatch gate"]["run"]
    assert "goldwatch gate" in gate
    result = shell(gate, repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in result.stderr  # the examples teach the current spellings
    check_reports(repo)
    summary = repo / "step-summary.md"
    result = shell(by_name["Job summary"]["run"], repo, GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 0, result.stderr
    assert summary.read_text().startswith("## goldwatch gate: ✅ PASS")
    assert by_name["Show the checks as tests"]["with"]["report_paths"] == "reports/gate.xml"


def test_gitlab_ci_job(repo: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the job")
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["model-gate"]
    assert job["artifacts"]["reports"]["junit"] == "reports/gate.xml"
    result = shell("\n".join(job["script"]), repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in result.stderr
    check_reports(repo)


def test_workflow_fails_the_job_on_a_corrupted_candidate(repo: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the workflow")
    steps = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())["jobs"]["gate"]["steps"]
    gate = next(s["run"] for s in steps if s.get("name") == "goldwatch gate")
    model = repo / "models" / "candidate" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-20] ^= 0x01
    model.write_bytes(bytes(data))
    result = shell(gate, repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  artifact:model.onnx" in result.stdout
