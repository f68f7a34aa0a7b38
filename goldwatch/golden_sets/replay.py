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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

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

__all__ = ["ReplayReport", "check_compatible", "replay"]


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


def check_compatible(golden: GoldenSet, signature: Signature, *, where: str) -> None:
    """Raise :class:`GoldenSetError` unless ``golden``'s inputs/outputs fit the model's ``signature``.

    A pair found compatible is remembered by everything the check reads (the signature and the golden set's input
    and output names, dtypes and shapes), so replaying the same golden set through the same model checks once.
    """
    key = (
        signature,
        tuple((k, v.dtype, v.shape) for k, v in golden.inputs.items()),
        tuple((k, v.dtype, v.shape) for k, v in golden.expected.items()),
        tuple(golden.signature.input_names),
    )
    if key in _COMPATIBLE:
        return
    _check_compatible(golden, signature, where=where)
    if len(_COMPATIBLE) >= _COMPATIBLE_MAX:
        _COMPATIBLE.clear()
    _COMPATIBLE[key] = None


def _check_compatible(golden: GoldenSet, signature: Signature, *, where: str) -> None:
    hint = "replay a golden set built for this model's signature, or rebuild it (goldwatch golden build)"
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
    missing_out = [n for n in golden.expected if n not in signature.output_names]
    if missing_out:
        raise GoldenSetError(
            f"the model has no output(s) {missing_out} (it returns {signature.output_names})", where=where, hint=hint
        )
    for name, array in golden.expected.items():
        spec = signature.output(name)
        if spec.dtype and spec.dtype != array.dtype.name:
            raise GoldenSetError(
                f"output {name!r}: the model returns {spec.dtype}, the golden set expects {array.dtype.name}",
                where=where,
                hint=hint,
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
) -> ReplayReport:
    """Replay ``golden`` through the model; see the module docstring. A given runtime keeps its own device.

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
    try:
        check_compatible(golden, runtime.signature, where=where)
        t0 = time.perf_counter()
        outputs = run_batches(runtime, golden.inputs, batch_size=batch_size)
        inference_s = time.perf_counter() - t0
        checks = _compare_all(golden, outputs, prefix="golden", where=where, options=options)
        device_outputs[runtime.device] = outputs
    finally:
        if is_spec:
            runtime.close()
    if cross_device:
        checks += _cross_device(model_or_runtime, golden, runtime.device, outputs, device_outputs, where, options,
                                batch_size)
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
        second = run_batches(runtime, golden.inputs, batch_size=batch_size)
    finally:
        runtime.close()
    device_outputs[other] = second
    checks = _compare_all(golden, second, prefix=f"golden[{other}]", where=where, options=options)
    return checks + _cross_checks(golden, outputs, second, f"{first} vs {other}")
