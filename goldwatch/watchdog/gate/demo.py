"""The README's first command: ``goldwatch demo`` builds everything the gate needs and runs it twice.

1. A seeded example model is trained (seconds, no download) and written as ONNX (the *candidate* to promote) and
   TorchScript (the *baseline*: the same weights, as served in production by a torch server).
2. A golden set is captured from the candidate, with tolerances calibrated from repeated runs, and an integrity
   manifest records its bytes and per-tensor fingerprints.
3. The gate runs on the candidate against the baseline: every check passes, exit code 0.
4. A copy of the candidate with **one flipped bit** in its largest weight tensor is gated the same way: the
   artifact check names the tensor and block, the golden replay shows the damage, exit code 1.

Each run writes the four reports (JUnit, Markdown, JSON, HTML) into its own folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from goldwatch.errors import InvalidInputError
from goldwatch.watchdog.gate.reports import ReportPaths, write_reports
from goldwatch.watchdog.gate.runner import GateThresholds, run_gate
from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["DemoResult", "DemoRun", "corrupt_one_bit", "run_demo"]

MARKER = ".goldwatch-demo"


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """One gate run of the demo: what was gated, the verdict, where its reports are, and the command line."""

    label: str
    candidate: Path
    verdict: GateVerdict
    reports: ReportPaths
    command: str
    expected: str


@dataclasses.dataclass(frozen=True)
class DemoResult:
    out: Path
    candidate: Path
    baseline: Path
    golden: Path
    manifest: Path
    flipped: str
    runs: tuple[DemoRun, ...]

    @property
    def as_expected(self) -> bool:
        """The good candidate passed and the corrupted one failed."""
        return all(r.verdict.verdict == r.expected for r in self.runs)


def _largest_weight(data: bytes, source: Path) -> tuple[str, int, int]:
    """(name, byte offset in the file, nbytes) of the largest float32 initializer of an ONNX model."""
    from goldwatch._optional import require

    onnx = require("onnx", purpose="locating a weight to corrupt in the demo")
    model = onnx.load_model_from_string(data)
    best = None
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and init.raw_data and (
            best is None or len(init.raw_data) > len(best.raw_data)
        ):
            best = init
    if best is None:
        raise InvalidInputError("the model has no float32 weights stored as raw bytes", where=str(source))
    # the tensor's bytes appear verbatim in the protobuf; they must appear exactly once to be located safely
    offset = data.find(best.raw_data)
    if offset < 0 or data.find(best.raw_data, offset + 1) >= 0:
        raise InvalidInputError(f"cannot locate tensor {best.name!r} uniquely in the file", where=str(source))
    return best.name, offset, len(best.raw_data)


def corrupt_one_bit(source: Path, target: Path) -> str:
    """Copy the ONNX model ``source`` to ``target`` with one bit flipped -- the exponent's top bit of the middle
    element of its largest weight tensor -- and return a description of where."""
    data = bytearray(source.read_bytes())
    name, offset, nbytes = _largest_weight(bytes(data), source)
    element = nbytes // 8  # the middle one of nbytes // 4 float32 elements
    byte = offset + 4 * element + 3  # little endian: byte 3 holds the sign and the exponent's top bits
    data[byte] ^= 0x40  # bit 30, the exponent's top bit: a weight of ~0.1 becomes ~3e37
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return f"bit 30 of element {element} of tensor {name!r} (file byte {byte})"


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InvalidInputError(
            "the folder exists and is not a goldwatch demo folder", where=str(out),
            hint="pass --out NEW_FOLDER (the demo only overwrites its own folders)",
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `goldwatch demo`; safe to delete\n")


def run_demo(
    out: str | os.PathLike[str] = "goldwatch-demo", *, kind: str = "tabular", seed: int = 0,
    thresholds: GateThresholds | None = None, say: Callable[[str], None] = lambda _msg: None,
) -> DemoResult:
    """Build the example, golden set and manifest under ``out``, and run the gate twice (see the module doc)."""
    from goldwatch.examples import write_example
    from goldwatch.golden_sets import build_golden_set
    from goldwatch.integrity import build_manifest

    root = Path(out)
    _prepare(root)
    say(f"training the {kind!r} example model (seeded, a few seconds)...")
    model_dir = root / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    art = write_example(kind, model_dir, seed=seed, formats=("onnx", "torchscript"))
    candidate, baseline = art.models["onnx"], art.models["torchscript"]
    say("capturing the golden set and calibrating its tolerances...")
    golden = root / "golden"
    build_golden_set(candidate, art.inputs, golden, labels=art.labels, repeats=3, overwrite=True)
    manifest = root / "model.onnx.manifest.json"
    build_manifest(candidate).save(manifest)
    corrupted = root / "corrupted" / "model.onnx"
    flipped = corrupt_one_bit(candidate, corrupted)
    runs = []
    for label, cand, expected in (("candidate", candidate, "pass"), ("corrupted", corrupted, "fail")):
        say(f"gating the {label} model...")
        folder = root / "reports" / label
        folder.mkdir(parents=True, exist_ok=True)
        paths = ReportPaths(junit=folder / "gate.xml", markdown=folder / "gate.md", json=folder / "gate.json",
                            html=folder / "gate.html")
        verdict = run_gate(cand, [golden], baseline=baseline, manifest=manifest, thresholds=thresholds)
        failed = write_reports(verdict, paths)
        if failed:
            raise failed[0][1]
        command = (
            f"goldwatch gate --candidate {cand} --golden {golden} --baseline {baseline} --manifest {manifest} "
            f"--junit {paths.junit} --markdown {paths.markdown} --verdict {paths.json} --html {paths.html}"
        )
        runs.append(DemoRun(label, cand, verdict, paths, command, expected))
    return DemoResult(root, candidate, baseline, golden, manifest, flipped, tuple(runs))
