"""``goldwatch golden build|replay|example`` through click's runner and one real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.examples import ExampleArtifacts
from goldwatch.golden_sets import GoldenSet


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_build_then_replay_passes_and_json_is_parseable(tabular: ExampleArtifacts, tmp_path: Path) -> None:
    out = tmp_path / "g"
    result = invoke("golden", "build", "--model", str(tabular.onnx), "--inputs", str(tabular.inputs),
                    "--labels", str(tabular.labels), "--out", str(out), "--repeats", "2")
    assert result.exit_code == 0, result.output
    assert "atol" in result.output
    assert "bound by" in result.output
    result = invoke("golden", "replay", "--model", str(tabular.models["torchscript"]), "--golden", str(out), "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is True
    assert verdict["n_samples"] == 256
    assert {c["name"] for c in verdict["checks"]} >= {"golden:logits:max_abs_error", "golden:logits:top1_agreement"}


def test_replay_of_a_wrong_model_exits_1(tabular: ExampleArtifacts, tabular_golden: GoldenSet, tmp_path: Path) -> None:
    other = tmp_path / "other"
    invoke("golden", "example", "tabular", "--out", str(other), "--seed", "3", "--repeats", "1")
    result = invoke("golden", "replay", "--model", str(other / "model.onnx"), "--golden", str(tabular_golden.path))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL:")
    assert "FAIL  golden:logits:max_abs_error" in result.output


def test_bad_input_exits_2_with_one_line(tabular: ExampleArtifacts, tabular_golden: GoldenSet, conv_golden: GoldenSet,
                                         tmp_path: Path) -> None:
    missing = invoke("golden", "replay", "--model", str(tabular.onnx), "--golden", str(tmp_path / "none"))
    assert missing.exit_code == 2
    assert missing.output.strip().count("\n") == 0
    assert "golden set directory not found" in missing.output
    other_model = invoke("golden", "replay", "--model", str(tabular.onnx), "--golden", str(conv_golden.path))
    assert other_model.exit_code == 2
    assert "inputs do not match" in other_model.output
    tampered = Path(shutil.copytree(tabular_golden.path, tmp_path / "t"))  # type: ignore[arg-type]
    data = np.load(tampered / "expected.npz")["logits"]
    with open(tampered / "expected.npz", "wb") as fh:
        np.savez(fh, logits=data * 1.01)
    bad = invoke("golden", "replay", "--model", str(tabular.onnx), "--golden", str(tampered))
    assert bad.exit_code == 2
    assert "sha256 mismatch" in bad.output
    no_model = invoke("golden", "replay", "--model", str(tmp_path / "m.onnx"), "--golden", str(tabular_golden.path))
    assert no_model.exit_code == 2
    assert "model not found" in no_model.output
    exists = invoke("golden", "build", "--model", str(tabular.onnx), "--inputs", str(tabular.inputs),
                    "--out", str(tampered))
    assert exists.exit_code == 2
    assert "already exists" in exists.output
    device = invoke("golden", "replay", "--model", str(tabular.onnx), "--golden", str(tabular_golden.path),
                    "--device", "tpu")
    assert device.exit_code == 2
    assert "unknown device" in device.output
    role = invoke("golden", "build", "--model", str(tabular.onnx), "--inputs", str(tabular.inputs),
                  "--out", str(tmp_path / "r"), "--role", "logits=banana")
    assert role.exit_code == 2
    assert "bad role" in role.output
    assert not (tmp_path / "r").exists()


def test_console_script_replays_in_a_real_subprocess(tabular: ExampleArtifacts, tabular_golden: GoldenSet) -> None:
    exe = Path(sys.executable).with_name("goldwatch")
    done = subprocess.run(
        [str(exe), "golden", "replay", "--model", str(tabular.models["state_dict"]), "--golden",
         str(tabular_golden.path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS:")


@pytest.mark.slow
def test_example_command_writes_everything_and_replays(tmp_path: Path) -> None:
    result = invoke("golden", "example", "conv", "--out", str(tmp_path / "ex"), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert set(info["example"]["models"]) == {"onnx", "torchscript", "state_dict"}
    again = invoke("golden", "replay", "--model", info["example"]["models"]["torchscript"], "--golden", info["golden"])
    assert again.exit_code == 0, again.output


def test_a_pinned_digest_refuses_a_loosened_golden_set(tabular: ExampleArtifacts, tmp_path: Path) -> None:
    """Editing the manifest (and nothing else) would let a wrong model pass; pinning the digest refuses it."""
    out = tmp_path / "g"
    built = invoke("golden", "build", "--model", str(tabular.onnx), "--inputs", str(tabular.inputs), "--out", str(out),
                   "--repeats", "2", "--json")
    assert built.exit_code == 0, built.output
    digest = json.loads(built.stdout)["digest"]
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64
    assert GoldenSet.load(out).digest == digest
    human = invoke("golden", "build", "--model", str(tabular.onnx), "--inputs", str(tabular.inputs),
                   "--out", str(tmp_path / "g2"), "--repeats", "2")
    assert f"digest {GoldenSet.load(tmp_path / 'g2').digest}" in human.output

    model = str(tabular.models["torchscript"])
    pinned = invoke("golden", "replay", "--model", model, "--golden", f"{out}@{digest}", "--json")
    assert pinned.exit_code == 0, pinned.output
    assert json.loads(pinned.stdout)["golden_digest"] == digest
    bare_hex = invoke("golden", "replay", "--model", model, "--golden", f"{out}@sha256:{digest[7:].upper()}")
    assert bare_hex.exit_code == 0, bare_hex.output

    manifest = json.loads((out / "golden.json").read_text())
    manifest["outputs"]["logits"]["tolerance"].update(atol=1e30, rtol=1e30)
    (out / "golden.json").write_text(json.dumps(manifest, indent=2))
    unpinned = invoke("golden", "replay", "--model", model, "--golden", str(out))
    assert unpinned.exit_code == 0  # the data files still match their digests: only the pin can tell
    refused = invoke("golden", "replay", "--model", model, "--golden", f"{out}@{digest}")
    assert refused.exit_code == 2
    assert refused.output.strip().count("\n") == 0
    assert "golden set digest mismatch" in refused.output
    assert "golden.json" in refused.output
    malformed = invoke("golden", "replay", "--model", model, "--golden", f"{out}@sha256:abc")
    assert malformed.exit_code == 2
    assert "--golden: not a golden set digest: 'sha256:abc'" in malformed.output
    old = invoke("golden", "replay", "--model", model, "--golden", str(out), "--golden-digest", digest)
    assert old.exit_code == 2  # the deprecated spelling still pins: refused the same way
    assert "golden set digest mismatch" in old.stderr
    assert "`main golden replay --golden-digest` is deprecated" in old.stderr


def test_in_memory_golden_set_cannot_match_a_pin(tabular: ExampleArtifacts) -> None:
    from goldwatch.errors import GoldenSetError
    from goldwatch.golden_sets import build_golden_set, replay

    in_memory = build_golden_set(tabular.onnx, tabular.inputs, None, repeats=1)  # type: ignore[arg-type]
    assert in_memory.digest is None
    with pytest.raises(GoldenSetError, match="has a digest only once saved or loaded"):
        replay(tabular.onnx, in_memory, golden_digest="sha256:" + "0" * 64)  # type: ignore[arg-type]
