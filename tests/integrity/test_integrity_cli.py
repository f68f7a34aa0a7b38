"""`goldwatch fingerprint` and `goldwatch verify`: exit codes 0/1/2, messages, --json; one real subprocess run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.integrity.safetensors_parser import read_safetensors_header

from .conftest import flip_bit, raw_safetensors


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_fingerprint_then_verify_intact_and_corrupted(model_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    code, out, _ = _run("fingerprint", str(model_dir), "--out", str(manifest), "--digest", "blake3")
    assert code == 0
    assert "4 file(s)" in out
    assert "digest blake3" in out
    assert json.loads(manifest.read_text())["digest"] == "blake3"
    code, out, _ = _run("verify", str(model_dir), "--manifest", str(manifest))
    assert code == 0
    assert "intact" in out

    embed = next(t for t in read_safetensors_header(model_dir / "model.safetensors").tensors
                 if t.name == "embed.weight")
    flip_bit(model_dir / "model.safetensors", embed.start + 5)
    code, out, _ = _run("verify", str(model_dir), "--manifest", str(manifest))
    assert code == 1
    assert "block: model.safetensors: tensor 'embed.weight' block 0 bytes [0, 1048576) differs" in out
    assert f"file bytes [{embed.start}, {embed.start + 1048576})" in out

    code, out, _ = _run("verify", str(model_dir), "--manifest", str(manifest), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["mismatches"][1]["tensor"] == "embed.weight"
    code, out, _ = _run("verify", str(model_dir), "--manifest", str(manifest), "--no-locate")
    assert code == 1
    assert "block" not in out


def test_fingerprint_prints_the_manifest_without_output(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"abc")
    code, out, _ = _run("fingerprint", str(tmp_path / "w.bin"), "--digest", "sha256")
    assert code == 0
    data = json.loads(out)
    assert data["files"][0]["digest"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    code, out, _ = _run("fingerprint", str(tmp_path / "w.bin"), "--out", str(tmp_path / "m.json"), "--json")
    assert code == 0
    assert json.loads(out)["files"] == 1


def test_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    hostile = tmp_path / "bad.safetensors"
    hostile.write_bytes(raw_safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 99]}}, bytes(8)))
    code, out, err = _run("fingerprint", str(hostile), "--out", str(tmp_path / "m.json"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("goldwatch: error: ")
    assert "beyond the data section" in err
    assert not (tmp_path / "m.json").exists()  # no partial manifest

    code, _, err = _run("verify", str(tmp_path), "--manifest", str(tmp_path / "none.json"))
    assert code == 2
    assert "manifest not found" in err
    code, _, err = _run("fingerprint", str(tmp_path / "nope"))
    assert code == 2
    assert "no such file or directory" in err
    code, _, err = _run("fingerprint", str(tmp_path), "--digest", "md5")
    assert code == 2
    assert "md5" in err


def test_console_script_subprocess(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(bytes(range(256)) * 10)
    exe = str(Path(sys.executable).with_name("goldwatch"))
    manifest = tmp_path / "m.json"
    done = subprocess.run([exe, "fingerprint", str(tmp_path / "model"), "--out", str(manifest), "--digest", "xxh3"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([exe, "verify", str(tmp_path / "model"), "--manifest", str(manifest)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0
    assert "intact" in done.stdout
    (tmp_path / "model" / "w.bin").write_bytes(bytes(2560))
    done = subprocess.run([exe, "verify", str(tmp_path / "model"), "--manifest", str(manifest)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "digest: w.bin: xxh3 digest differs" in done.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from click.testing import CliRunner; from goldwatch.cli import main; "
            "r = CliRunner().invoke(main, ['verify', '--help']); assert r.exit_code == 0, r.output; "
            "import goldwatch.integrity; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'triton', 'evidently') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_progress_counts_the_bytes_of_each_pass(tmp_path: Path) -> None:
    from goldwatch import progress
    from goldwatch.cli import integrity as cli_integrity
    from goldwatch.integrity.manifest import build_manifest

    (tmp_path / "w.bin").write_bytes(bytes(3000))
    tasks: list[progress.Task] = []

    class Collect:
        def start(self, task: progress.Task) -> None:
            tasks.append(task)

        def update(self, task: progress.Task) -> None:
            pass

        def finish(self, task: progress.Task, *, ok: bool) -> None:
            assert ok

    with progress.reporting(Collect()), cli_integrity._byte_progress(tmp_path, label="test", passes=2) as on_bytes:
        assert on_bytes is not None
        build_manifest(tmp_path, on_bytes=on_bytes)
    (task,) = tasks
    # a plain file: one digest pass (no tensors to fingerprint), and the total expected just that
    assert (task.total, task.snapshot().done) == (3000, 3000)


def test_a_manifest_kept_inside_the_model_directory(model_dir: Path) -> None:
    manifest = model_dir / "goldwatch-manifest.json"
    code, out, _ = _run("fingerprint", str(model_dir), "--out", str(manifest))
    assert code == 0
    assert "4 file(s)" in out  # the manifest does not describe itself
    code, out, _ = _run("verify", str(model_dir), "--manifest", str(manifest))
    assert code == 0, out
