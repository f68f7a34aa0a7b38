"""Replaying a golden set through a model and checking every answer against the calibrated tolerances.

``replay`` runs the golden inputs through the model (a path/URL, loaded here, or a runtime you already hold) and
returns a :class:`ReplayReport` whose checks say, with their numbers, whether the model still gives the approved
answers. A golden set that does not fit the model (missing or extra inputs, dtype or shape mismatch) is a
:class:`~goldwatch.errors.GoldenSetError`; an unreachable server is a
:class:`~goldwatch.errors.ServerUnreachableError` -- both raise, neither is reported as "model wrong".

With ``cross_device=True`` the model is also loaded on the other device (CUDA when replaying on CPU), checked
against the golden set there, and the two devices' answers are compared with each other: a GPU that computes
wrongly fails even when the CPU is right. Without a GPU those checks are skipped, and say so.

>>> import tempfile
>>> from goldwatch.examples import write_example
>>> from goldwatch.golden_sets.build import build_golden_set
>>> tmp = tempfile.mkdtemp()
>>> art = write_example("tabular", tmp, formats=("onnx",))
>>> _ = build_golden_set(art.onnx, art.inputs, tmp + "/golden", labels=art.labels, repeats=2)
>>> report = replay(art.onnx, tmp + "/golden")
>>> report.ok, report.checks[0].name, report.checks[0].status
(True, 'golden:logits:max_abs_error', 'pass')
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch import progress
from goldwatch.checks import Check, CheckReport
from goldwatch.detectors.paired import DEFAULT_MIN_EFFECT
from goldwatch.errors import GoldenSetError
from goldwatch.golden_sets.build import ModelLike, run_batches
from goldwatch.golden_sets.calibrate import errors
from goldwatch.golden_sets.compare import compare_output
from goldwatch.golden_sets.format import GoldenSet, require_digest
from goldwatch.runtimes.base import (
    ModelIdentity,
    Runtime,
    Signature,
    cuda_available,
    normalize_device,
    shapes_compatible,
)
from goldwatch.runtimes.factory import load_model

__all__ = ["OutputMatch", "ReplayReport", "check_compatible", "match_outputs", "replay"]


@dataclasses.dataclass
class ReplayReport:
    """The outcome of one replay. ``outputs`` are the replayed answers (device -> output -> array in cross-device
    mode is in ``device_outputs``); ``to_dict`` leaves the arrays out."""

    checks: list[Check]
    outputs: dict[str, np.ndarray]
    device: str
    model: ModelIdentity
    golden: str
    n_samples: int
    inference_s: float
    duration_s: float
    same_model_digest: bool | None
    device_outputs: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    golden_digest: str | None = None  # sha256 of the golden set's manifest (see goldwatch.golden_sets.format)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_checks(self) -> list[Check]:
        return list(self.checks)

    def counts(self) -> dict[str, int]:
        return CheckReport(list(self.checks)).counts()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "device": self.device,
            "model": self.model.to_dict(),
            "golden": self.golden,
            "golden_digest": self.golden_digest,
            "n_samples": self.n_samples,
            "same_model_digest": self.same_model_digest,
            "inference_s": self.inference_s,
            "duration_s": self.duration_s,
            "checks": self.checks,
        }


_COMPATIBLE: dict[tuple[Any, ...], None] = {}  # (signature, golden layout) pairs already found compatible
_COMPATIBLE_MAX = 256


def check_compatible(golden: GoldenSet, signature: Signature, *, where: str,
                     outputs: Mapping[str, str] | None = None) -> None:
    """Raise :class:`GoldenSetError` unless ``golden``'s inputs/outputs fit the model's ``signature``.

    ``outputs`` maps golden output names to the model's (see :func:`match_outputs`; default: the same names).
    A pair found compatible is remembered by everything the check reads (the signature and the golden set's input
    and output names, dtypes and shapes), so replaying the same golden set through the same model checks once.
    """
    mapping = dict(outputs) if outputs is not None else {n: n for n in golden.expected}
    key = (
        signature,
        tuple((k, v.dtype, v.shape) for k, v in golden.inputs.items()),
        tuple((k, v.dtype, v.shape) for k, v in golden.expected.items()),
        tuple(golden.signature.input_names),
        tuple(sorted(mapping.items())),
    )
    if key in _COMPATIBLE:
        return
    _check_compatible(golden, signature, where=where, outputs=mapping)
    if len(_COMPATIBLE) >= _COMPATIBLE_MAX:
        _COMPATIBLE.clear()
    _COMPATIBLE[key] = None


def _check_compatible(golden: GoldenSet, signature: Signature, *, where: str, outputs: Mapping[str, str]) -> None:
    hint = "replay a golden set built for this model's signature, or rebuild it (goldwatch golden build)"
    if not signature.inputs:
        raise GoldenSetError(
            "the model publishes no input metadata (no input names, dtypes or shapes to check the golden set "
            "against)", where=where,
            hint="an OIP server's metadata lists no inputs: goldwatch then sends the golden set's inputs as recorded; "
                 "for another runtime, give the model a signature",
        )
    g_in, m_in = sorted(golden.signature.input_names), sorted(signature.input_names)
    if g_in != m_in:
        missing = sorted(set(m_in) - set(g_in))
        extra = sorted(set(g_in) - set(m_in))
        raise GoldenSetError(
            f"inputs do not match: the model takes {m_in}, the golden set has {g_in}"
            + (f" (missing {missing})" if missing else "")
            + (f" (extra {extra})" if extra else ""),
            where=where,
            hint=hint,
        )
    for spec in signature.inputs:
        array = golden.inputs[spec.name]
        if spec.dtype and spec.dtype != array.dtype.name:
            raise GoldenSetError(
                f"input {spec.name!r}: the model expects {spec.dtype}, the golden set holds {array.dtype.name}",
                where=where,
                hint=hint,
            )
        if spec.shape is not None and not shapes_compatible(spec.shape, array.shape):
            raise GoldenSetError(
                f"input {spec.name!r}: the model expects shape {spec.shape}, the golden set holds {array.shape}",
                where=where,
                hint=hint,
            )
    missing_out = [n for n in golden.expected if outputs.get(n, n) not in signature.output_names]
    if missing_out and signature.outputs:
        raise GoldenSetError(
            f"the model has no output(s) {missing_out} (it returns {signature.output_names})", where=where,
            hint=f"name the model's output for each golden one: --output-map MODEL_OUTPUT=GOLDEN_OUTPUT "
                 f"(e.g. {signature.output_names[0]}={missing_out[0]}), or rebuild the golden set from this model",
        )
    for name, array in golden.expected.items():
        if outputs.get(name, name) not in signature.output_names:
            continue  # a model that publishes no outputs: the response decides
        spec = signature.output(outputs.get(name, name))
        if spec.dtype and spec.dtype != array.dtype.name:
            raise GoldenSetError(
                f"output {name!r}: the model returns {spec.dtype}, the golden set expects {array.dtype.name}",
                where=where,
                hint=hint,
            )


@dataclasses.dataclass(frozen=True)
class OutputMatch:
    """Which model output answers for each golden output. ``by_position``: a single-output model matched to a
    single-output golden set whose output has another name (TorchScript and ``.pt2`` exports call it ``output``)."""

    mapping: dict[str, str]  # golden name -> model name
    by_position: bool = False

    def rename(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs under the golden set's names."""
        return {golden: outputs[model] for golden, model in self.mapping.items() if model in outputs}

    def note(self) -> Check | None:
        """An informational check saying how outputs were matched, when not by their own names."""
        renamed = {g: m for g, m in self.mapping.items() if g != m}
        if not renamed:
            return None
        how = "by position (one output each)" if self.by_position else "by --output-map"
        pairs = ", ".join(f"model {m!r} -> golden {g!r}" for g, m in renamed.items())
        return Check(name="golden:output_map", status="pass", summary=f"outputs matched {how}: {pairs}",
                     details={"mapping": renamed, "by_position": self.by_position})


def match_outputs(golden_outputs: Sequence[str], model_outputs: Sequence[str],
                  output_map: Mapping[str, str] | None = None, *, where: str) -> OutputMatch:
    """Match the golden set's outputs to the model's: ``output_map`` (model name -> golden name) first, then equal
    names, then -- for one output on each side -- by position. A map naming an output neither side has is an
    input error; anything left unmatched is reported by :func:`check_compatible`.

    >>> match_outputs(["embedding"], ["output"], where="x").mapping
    {'embedding': 'output'}
    >>> match_outputs(["a", "b"], ["b", "x"], {"x": "a"}, where="x").mapping
    {'a': 'x', 'b': 'b'}
    """
    output_map = dict(output_map or {})
    bad_model = [m for m in output_map if model_outputs and m not in model_outputs]
    bad_golden = [g for g in output_map.values() if g not in golden_outputs]
    if bad_model or bad_golden:
        raise GoldenSetError(
            "--output-map names "
            + (f"model output(s) {bad_model} the model does not have (it returns {list(model_outputs)})"
               if bad_model else "")
            + ("; " if bad_model and bad_golden else "")
            + (f"golden output(s) {bad_golden} the golden set does not have (it holds {list(golden_outputs)})"
               if bad_golden else ""),
            where=where, hint="write --output-map MODEL_OUTPUT=GOLDEN_OUTPUT",
        )
    mapping = {golden: model for model, golden in output_map.items()}
    for name in golden_outputs:
        mapping.setdefault(name, name)
    if (not output_map and len(golden_outputs) == 1 and len(model_outputs) == 1
            and golden_outputs[0] not in model_outputs):
        return OutputMatch({golden_outputs[0]: model_outputs[0]}, by_position=True)
    return OutputMatch({g: mapping[g] for g in golden_outputs})


def _adopt_golden_signature(runtime: Runtime, golden: GoldenSet) -> Check | None:
    """A remote model whose server publishes no input metadata (KServe's default) gets the golden set's inputs as
    recorded; the check returned says so. Any other runtime keeps its own signature."""
    adopt = getattr(runtime, "adopt_signature", None)
    if runtime.signature.inputs or not callable(adopt):
        return None
    adopt(golden.signature)
    return Check(
        name="golden:signature", status="pass",
        summary="the server publishes no input metadata for this model: inputs sent as the golden set records "
                f"them ({', '.join(f'{t.name} {t.dtype}' for t in golden.signature.inputs)})",
    )


def _compare_all(
    golden: GoldenSet, outputs: Mapping[str, np.ndarray], *, prefix: str, where: str, options: dict[str, Any]
) -> list[Check]:
    checks: list[Check] = []
    for name, expected in golden.expected.items():
        actual = np.asarray(outputs[name])
        if actual.shape != expected.shape:
            raise GoldenSetError(
                f"output {name!r} has shape {actual.shape}, the golden set expects {expected.shape}",
                where=where,
                hint="the model's output layout changed: rebuild the golden set if that is intended",
            )
        baseline = (golden.baseline.get(name) or {}).get("label_accuracy")
        checks += compare_output(
            name, actual, expected, tolerance=golden.tolerances[name], role=golden.roles.get(name, "tensor"),
            labels=golden.labels, baseline_accuracy=baseline, prefix=prefix, **options,
        )
    return checks


def _require_outputs(golden: GoldenSet, outputs: Mapping[str, np.ndarray], *, where: str) -> None:
    missing = [n for n in golden.expected if n not in outputs]
    if missing:
        raise GoldenSetError(f"the model answered without output(s) {missing} (it returned {sorted(outputs)})",
                             where=where, hint="name the model's output with --output-map MODEL_OUTPUT=GOLDEN_OUTPUT")


def _cross_checks(
    golden: GoldenSet, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], devs: str
) -> list[Check]:
    """Each device against the other, held to the golden tolerance (which covers cross-device noise when the
    golden set was calibrated on both)."""
    out = []
    for name in golden.expected:
        tol = golden.tolerances[name]
        max_abs, _, _ = errors(np.asarray(a[name]), np.asarray(b[name]), denominator_floor=1.0)
        out.append(
            Check.from_comparison(
                f"golden:{name}:cross_device_max_abs_error", measured=max_abs, threshold=tol.atol,
                higher_is_worse=True, unit=f"abs ({devs})",
            )
        )
    return out


def replay(
    model_or_runtime: ModelLike,
    golden: GoldenSet | str | os.PathLike[str],
    *,
    device: str = "cpu",
    cross_device: bool = False,
    batch_size: int | None = None,
    min_top1_agreement: float = 1.0,
    min_cosine: float = 0.9999,
    drift_alpha: float | None = 0.01,
    drift_min_effect: float = DEFAULT_MIN_EFFECT,
    golden_digest: str | None = None,
    output_map: Mapping[str, str] | None = None,
) -> ReplayReport:
    """Replay ``golden`` through the model; see the module docstring. A given runtime keeps its own device.

    ``output_map`` names the model output (key) that answers for a golden output (value) when their names differ;
    a single-output model needs none (it is matched by position, and a ``golden:output_map`` check says so).

    ``golden_digest`` pins the golden set (``sha256:<hex>``, printed when it was built): one whose manifest --
    tolerances, answers, inputs -- differs is refused with a :class:`GoldenSetError` before anything runs.
    """
    started = time.perf_counter()
    if not isinstance(golden, GoldenSet):
        golden = GoldenSet.load(golden, expected_digest=golden_digest)
    elif golden_digest is not None:
        require_digest(golden.digest, golden_digest, where=str(golden.path or "<in-memory golden set>"))
    options = {"min_top1_agreement": min_top1_agreement, "min_cosine": min_cosine, "drift_alpha": drift_alpha,
               "drift_min_effect": drift_min_effect}
    is_spec = isinstance(model_or_runtime, (str, os.PathLike))
    runtime: Runtime = (
        load_model(model_or_runtime, device=device)
        if isinstance(model_or_runtime, (str, os.PathLike))
        else model_or_runtime
    )
    where = f"{golden.path or 'golden set'} vs {runtime.identity.source}"
    device_outputs: dict[str, dict[str, np.ndarray]] = {}
    notes: list[Check] = []
    try:
        adopted = _adopt_golden_signature(runtime, golden)
        notes += [adopted] if adopted is not None else []
        match = match_outputs(golden.output_names, runtime.signature.output_names, output_map, where=where)
        check_compatible(golden, runtime.signature, where=where, outputs=match.mapping)
        note = match.note()
        notes += [note] if note is not None else []
        t0 = time.perf_counter()
        label = "golden replay" + (f" {golden.path.name}" if golden.path else "") + f" on {runtime.device}"
        with progress.task(label, total=golden.n_samples, unit="samples"):
            outputs = match.rename(run_batches(runtime, golden.inputs, batch_size=batch_size))
        inference_s = time.perf_counter() - t0
        _require_outputs(golden, outputs, where=where)
        checks = notes + _compare_all(golden, outputs, prefix="golden", where=where, options=options)
        device_outputs[runtime.device] = outputs
    finally:
        if is_spec:
            runtime.close()
    if cross_device:
        checks += _cross_device(model_or_runtime, golden, runtime.device, outputs, device_outputs, where, options,
                                batch_size, match)
    digest = golden.model.digest
    return ReplayReport(
        checks=checks,
        outputs=outputs,
        device=runtime.device,
        model=runtime.identity,
        golden=str(golden.path) if golden.path else "<in-memory>",
        n_samples=golden.n_samples,
        inference_s=inference_s,
        duration_s=time.perf_counter() - started,
        same_model_digest=None if not (digest and runtime.identity.digest) else digest == runtime.identity.digest,
        device_outputs=device_outputs,
        golden_digest=golden.digest,
    )


def _cross_device(
    model: ModelLike,
    golden: GoldenSet,
    first: str,
    outputs: Mapping[str, np.ndarray],
    device_outputs: dict[str, dict[str, np.ndarray]],
    where: str,
    options: dict[str, Any],
    batch_size: int | None,
    match: OutputMatch,
) -> list[Check]:
    other = "cuda" if normalize_device(first) == "cpu" else "cpu"
    name = "golden:cross_device"
    if not isinstance(model, (str, os.PathLike)):
        return [Check(name=name, status="skip", summary="cross-device replay needs a model path to load twice")]
    if str(model).startswith(("http://", "https://")):
        return [Check(name=name, status="skip", summary="a remote model runs on the server's device only")]
    if other == "cuda" and not cuda_available():
        return [Check(name=name, status="skip", summary="no CUDA GPU on this machine: cross-device replay skipped")]
    runtime = load_model(Path(model), device=other)
    try:
        with progress.task(f"golden replay on {other}", total=golden.n_samples, unit="samples"):
            second = match.rename(run_batches(runtime, golden.inputs, batch_size=batch_size))
    finally:
        runtime.close()
    device_outputs[other] = second
    checks = _compare_all(golden, second, prefix=f"golden[{other}]", where=where, options=options)
    return checks + _cross_checks(golden, outputs, second, f"{first} vs {other}")
