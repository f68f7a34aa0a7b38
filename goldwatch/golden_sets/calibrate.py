"""Tolerance calibration: numeric noise is measured, not guessed.

For each output, the build runs the model ``repeats`` times on every device present and measures how far any run
strays from the expected answer (the first run on the primary device):

* ``observed_max_abs = max |run - expected|`` over every run and element;
* ``observed_max_rel = max_i max_j |run_ij - expected_ij| / max(max_j |expected_ij|, floor_abs / floor_rel)``
  (per sample; a sample much smaller than the output's scale is judged by the absolute error alone, because its
  noise comes from the magnitudes of the sums that cancelled into it, not from its own size).

The tolerances are these, times a safety factor, but never below a dtype-aware floor::

    atol = max(observed_max_abs x safety_factor, floor_abs),  floor_abs = 64 ulp(dtype) x max(1, max |expected|)
    rtol = max(observed_max_rel x safety_factor, floor_rel),  floor_rel = 256 ulp(dtype)

The floor exists because a deterministic CPU measures zero spread, yet the same model on another CPU, thread
count or BLAS build reorders floating-point sums; a few dozen ulps of the output's magnitude absorb that while
still catching a 0.1 % weight change. Integer and boolean outputs get zero tolerance (exact).

>>> e = {"y": np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)}
>>> runs = [("cpu", {"y": e["y"] + np.float32(1e-6)})]
>>> tol = calibrate(e, runs, safety_factor=4.0)["y"]
>>> round(tol.atol, 9), tol.derivation["observed_max_abs"] > 0
(2.2888e-05, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from goldwatch.golden_sets.format import Tolerance

__all__ = ["FLOOR_ULPS_ABS", "FLOOR_ULPS_REL", "calibrate", "dtype_floor", "errors", "rel_denominator_floor"]

FLOOR_ULPS_ABS = 64
FLOOR_ULPS_REL = 256


def dtype_floor(dtype: np.dtype[Any], scale: float) -> tuple[float, float]:
    """(floor_abs, floor_rel) for outputs of ``dtype`` whose largest magnitude is ``scale``.

    >>> dtype_floor(np.dtype("int64"), 10.0)
    (0.0, 0.0)
    """
    if np.issubdtype(dtype, np.floating):
        eps = float(np.finfo(dtype).eps)
        return FLOOR_ULPS_ABS * eps * max(1.0, scale), FLOOR_ULPS_REL * eps
    return 0.0, 0.0


def _scale(expected: np.ndarray) -> float:
    finite = expected[np.isfinite(expected)] if expected.dtype.kind == "f" else expected
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def expected_row_scale(expected: np.ndarray) -> np.ndarray:
    """Per-sample max of the finite ``|expected|`` values (0 for a sample with none)."""
    e = expected.reshape(expected.shape[0] if expected.ndim else 1, -1)
    return np.where(np.isfinite(e), np.abs(e), 0.0).max(axis=1) if e.size else np.zeros(e.shape[0])


def rel_denominator_floor(floor_abs: float, floor_rel: float) -> float:
    """Smallest per-sample magnitude a relative error is taken against: below it, the absolute floor rules.

    With it, an error within ``floor_abs`` is always within ``floor_rel`` too: the two floors never disagree.
    """
    return floor_abs / floor_rel if floor_rel > 0 else 1.0


def errors(
    actual: np.ndarray, expected: np.ndarray, *, denominator_floor: float, row_scale: np.ndarray | None = None
) -> tuple[float, float, np.ndarray]:
    """(max abs error, max per-sample relative error, per-element abs error) of ``actual`` against ``expected``.

    Positions where both are the same non-finite value (NaN and NaN, +inf and +inf) count as equal; any other
    non-finite difference makes the errors NaN, which every check treats as a failure. ``row_scale`` (per-sample
    max of the finite ``|expected|``) may be passed when already known.
    """
    a = actual.astype(np.float64, copy=False)
    e = expected.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
    if not np.isfinite(diff).all():  # rare path: only pay for the masks when something is not finite
        same = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
        diff = np.where(same, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)  # a new NaN is as bad as an infinite error
    if diff.size == 0:
        return 0.0, 0.0, diff
    n = diff.shape[0] if diff.ndim else 1
    per_sample = diff.reshape(n, -1).max(axis=1)
    finite_e = row_scale if row_scale is not None else expected_row_scale(e)
    with np.errstate(invalid="ignore"):
        rel = per_sample / np.maximum(finite_e, max(denominator_floor, np.finfo(np.float64).tiny))
    return float(diff.max()), float(rel.max()), diff


def calibrate(
    expected: Mapping[str, np.ndarray],
    runs: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    *,
    safety_factor: float,
) -> dict[str, Tolerance]:
    """Per-output tolerances from ``runs`` (``(device, outputs)`` pairs) against ``expected``."""
    out: dict[str, Tolerance] = {}
    devices = sorted({d for d, _ in runs})
    for name, exp in expected.items():
        scale = _scale(exp)
        floor_abs, floor_rel = dtype_floor(exp.dtype, scale)
        denominator = rel_denominator_floor(floor_abs, floor_rel)
        per_device: dict[str, dict[str, float | int]] = {}
        for device, outputs in runs:
            abs_err, rel_err, _ = errors(np.asarray(outputs[name]), exp, denominator_floor=denominator)
            stats = per_device.setdefault(device, {"runs": 0, "max_abs": 0.0, "max_rel": 0.0})
            stats["runs"] = int(stats["runs"]) + 1
            stats["max_abs"] = max(float(stats["max_abs"]), abs_err)
            stats["max_rel"] = max(float(stats["max_rel"]), rel_err)
        obs_abs = max((float(s["max_abs"]) for s in per_device.values()), default=0.0)
        obs_rel = max((float(s["max_rel"]) for s in per_device.values()), default=0.0)
        atol = max(obs_abs * safety_factor, floor_abs)
        rtol = max(obs_rel * safety_factor, floor_rel)
        out[name] = Tolerance(
            atol=atol,
            rtol=rtol,
            derivation={
                "rule": (
                    "atol = max(observed_max_abs x safety_factor, floor_abs); "
                    "rtol = max(observed_max_rel x safety_factor, floor_rel); "
                    f"floor_abs = {FLOOR_ULPS_ABS} ulp x max(1, scale), floor_rel = {FLOOR_ULPS_REL} ulp; "
                    "relative error per sample = max |a - e| / max(max |e|, floor_abs / floor_rel); "
                    "observed = worst deviation of any repeat on any device from the expected answer"
                ),
                "dtype": exp.dtype.name,
                "ulp": float(np.finfo(exp.dtype).eps) if np.issubdtype(exp.dtype, np.floating) else 0.0,
                "scale": scale,
                "observed_max_abs": obs_abs,
                "observed_max_rel": obs_rel,
                "safety_factor": safety_factor,
                "floor_abs": floor_abs,
                "rel_denominator_floor": denominator,
                "floor_rel": floor_rel,
                "bound_by": "measured noise" if obs_abs * safety_factor > floor_abs else "dtype floor",
                "devices": devices,
                "per_device": per_device,
            },
        )
    return out
