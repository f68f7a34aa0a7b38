"""``goldwatch demo``, the README's first command: a passing candidate and a corrupted copy the gate catches."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.runtimes.mlserver_testing import mlserver_available
from goldwatch.watchdog.gate.demo import corrupt_one_bit
from tests.gate.conftest import GateWorld


def test_demo_end_to_end(tmp_path: Path) -> None:
    """The README's first command: the gate, then (with MLServer installed) the sidecar healing a served model."""
    out = tmp_path / "demo"
    whole = mlserver_available()
    args = ["demo", "--out", str(out)] if whole else ["demo", "gate", "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = result.stdout
    if whole:
        for line in ("3. the sidecar heals a corrupted served model", "one bit flipped in the served file",
                     "DETECTED by the files check: integrity:model.onnx: model.onnx: tensor", "paged on-call",
                     "ROLLED BACK 2 -> 1", "golden replay passes (version 1)", "RESOLVED:",
                     "PagerDuty received: trigger goldwatch/fraud/integrity",
                     "resolve goldwatch/fraud/integrity -- 1 incident",
                     "time to detect:", "time to recover:", "RTO 60 s: met",
                     "the corruption was detected, rolled back, verified and resolved without a human"):
            assert line in text, line
        assert (out / "sidecar" / "goldwatch.toml").is_file()
        assert (out / "sidecar" / "sidecar.sqlite").is_file()
    assert "1. gate on a good candidate" in text
    assert "2. gate on a CORRUPTED copy: one flipped bit" in text
    assert "as designed -- the good candidate passed and the corrupted copy was stopped" in text
    good = json.loads((out / "reports" / "candidate" / "gate.json").read_text())
    bad = json.loads((out / "reports" / "corrupted" / "gate.json").read_text())
    assert (good["verdict"], good["exit_code"]) == ("pass", 0)
    assert (bad["verdict"], bad["exit_code"]) == ("fail", 1)
    (artifact,) = [c for c in bad["checks"] if c["name"].startswith("artifact:")]
    assert artifact["status"] == "fail"
    assert "tensor 'layer" in artifact["summary"]
    for run in ("candidate", "corrupted"):
        folder = out / "reports" / run
        assert ET.parse(folder / "gate.xml").getroot().tag == "testsuites"
        assert (folder / "gate.md").read_text().startswith("## goldwatch gate:")
        assert "<svg" in (folder / "gate.html").read_text()
    # the printed command line reproduces the verdict
    command = next(line.split("same as: ", 1)[1] for line in text.splitlines() if "same as: " in line)
    args = command.split()[1:]
    again = CliRunner().invoke(main, [*args, "--latency-repeats", "2"], catch_exceptions=False)
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("part", [[], ["gate"], ["sidecar"]])
def test_demo_refuses_a_foreign_folder(tmp_path: Path, part: list[str]) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", *part, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "the folder exists and is not a goldwatch demo folder" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_corrupt_one_bit_flips_exactly_one_bit_in_the_largest_weight(world: GateWorld, tmp_path: Path) -> None:
    target = tmp_path / "bad.onnx"
    where = corrupt_one_bit(world.candidate, target)
    assert "tensor 'W'" in where
    a = np.frombuffer(world.candidate.read_bytes(), np.uint8)
    b = np.frombuffer(target.read_bytes(), np.uint8)
    assert a.shape == b.shape
    assert int(np.unpackbits(a ^ b).sum()) == 1


def test_corrupt_one_bit_needs_raw_float_weights(tmp_path: Path) -> None:
    from goldwatch.errors import InvalidInputError
    from tests.gate.conftest import write_linear_onnx

    model = write_linear_onnx(tmp_path / "m.onnx", np.zeros((0, 0), np.float32), np.zeros(0, np.float32))
    with pytest.raises(InvalidInputError):
        corrupt_one_bit(model, tmp_path / "x.onnx")
