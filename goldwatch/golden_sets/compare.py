"""Comparing replayed outputs with a golden set's expected outputs: every comparison is a :class:`Check`.

Per output:

* ``max_abs_error`` and ``max_rel_error`` against the calibrated tolerance;
* ``nonfinite``: NaN/Inf where the expected answer was finite;
* for class scores: ``top1_agreement`` and ``topk_containment`` (the expected class stays among the replayed top
  k), computed over the samples whose expected top-2 margin exceeds twice the tolerance -- a near-tie may flip on
  noise alone, so those samples are counted and reported, not held against the model -- and ``label_accuracy``
  against the labels when the golden set has them;
* for class scores and embeddings: ``cosine`` (the smallest per-sample cosine similarity);
* ``distribution``: a two-sample test of the replayed vs expected output distributions (goldwatch.detectors).

>>> from goldwatch.golden_sets.format import Tolerance
>>> e = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]], np.float32)
>>> checks = compare_output("logits", e.copy(), e, tolerance=Tolerance(1e-5, 1e-5), role="scores")
>>> [c.name.split(":")[-1] for c in checks], all(c.status == "pass" for c in checks)
(['max_abs_error', 'max_rel_error', 'nonfinite', 'top1_agreement', 'top2_containment', 'cosine'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goldwatch.checks import Check
from goldwatch.golden_sets._drift import output_drift
from goldwatch.golden_sets.calibrate import errors
from goldwatch.golden_sets.format import Tolerance

__all__ = ["compare_output", "top1_ambiguous"]

MAX_TOP_K = 5


def _check(name: str, measured: float, limit: float, *, worse_high: bool, unit: str, **details: Any) -> Check:
    return Check.from_comparison(
        name, measured=measured, threshold=limit, higher_is_worse=worse_high, unit=unit, details=details
    )


def top1_ambiguous(expected: np.ndarray, atol: float) -> np.ndarray:
    """Samples whose two best expected scores are within ``2 * atol``: their top-1 may legitimately flip.

    >>> top1_ambiguous(np.array([[1.0, 1.0 + 1e-7], [0.0, 5.0]]), 1e-6).tolist()
    [True, False]
    """
    if expected.shape[1] < 2:
        return np.zeros(expected.shape[0], dtype=bool)
    # partition, not sort: O(C) per row; the last column is the largest, the one before it the runner-up
    top2 = np.partition(expected, expected.shape[1] - 2, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) <= 2 * atol


def _row_cosine(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", a, e)
    na, ne = np.linalg.norm(a, axis=1), np.linalg.norm(e, axis=1)
    both_zero = (na == 0) & (ne == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * ne)
    cos = np.where(both_zero, 1.0, np.where((na == 0) | (ne == 0), 0.0, cos))
    return np.where(np.isfinite(cos), cos, -1.0)  # non-finite outputs: worst possible similarity


def compare_output(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    tolerance: Tolerance,
    role: str,
    labels: np.ndarray | None = None,
    baseline_accuracy: float | None = None,
    min_top1_agreement: float = 1.0,
    min_topk_containment: float = 1.0,
    min_cosine: float = 0.9999,
    drift_alpha: float | None = 0.01,
    prefix: str = "golden",
) -> list[Check]:
    """All checks of one output. ``actual`` must have ``expected``'s shape (the caller checks and reports)."""
    base = f"{prefix}:{name}"
    floor_abs = float(tolerance.derivation.get("floor_abs", 0.0))
    n = expected.shape[0]
    # one float64 copy of each, shared by every check below (the checks are cheap; copies are not)
    flat_a = actual.reshape(n, -1).astype(np.float64)
    flat_e = expected.reshape(n, -1).astype(np.float64)
    max_abs, max_rel, diff = errors(flat_a, flat_e, floor_abs=floor_abs)
    diff = diff.reshape(expected.shape)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    checks = [
        _check(
            f"{base}:max_abs_error", max_abs, tolerance.atol, worse_high=True, unit="abs",
            worst_index=[int(i) for i in worst], elements_over=int(np.count_nonzero(diff > tolerance.atol)),
            elements=int(diff.size),
        ),
        _check(f"{base}:max_rel_error", max_rel, tolerance.rtol, worse_high=True, unit="rel (per sample)"),
    ]
    exp_finite = np.isfinite(expected) if expected.dtype.kind == "f" else np.ones(expected.shape, bool)
    act_finite = np.isfinite(actual) if actual.dtype.kind == "f" else np.ones(actual.shape, bool)
    new_nonfinite = int(np.count_nonzero(exp_finite & ~act_finite))
    checks.append(
        Check(
            name=f"{base}:nonfinite",
            status="fail" if new_nonfinite else "pass",
            summary=f"{new_nonfinite} NaN/Inf value(s) where the golden answer is finite",
            measured={"value": new_nonfinite, "nan": int(np.isnan(actual).sum()) if actual.dtype.kind == "f" else 0},
            threshold={"limit": 0, "direction": "max"},
        )
    )
    if role == "scores" and expected.ndim == 2 and expected.shape[1] >= 2:
        ambiguous = top1_ambiguous(flat_e, tolerance.atol)
        keep = ~ambiguous
        exp_top1 = flat_e.argmax(axis=1)
        act_scores = flat_a if act_finite.all() else np.where(np.isnan(flat_a), -np.inf, flat_a)
        act_top1 = act_scores.argmax(axis=1)
        agree = float(np.mean(exp_top1[keep] == act_top1[keep])) if keep.any() else 1.0
        checks.append(
            _check(
                f"{base}:top1_agreement", agree, min_top1_agreement, worse_high=False, unit="fraction",
                samples=int(keep.sum()), ambiguous_samples=int(ambiguous.sum()),
                changed_samples=int(np.count_nonzero(exp_top1 != act_top1)),
            )
        )
        k = min(MAX_TOP_K, expected.shape[1] - 1)
        if k >= 2:
            topk = np.argpartition(-act_scores, k - 1, axis=1)[:, :k]
            contained = (topk == exp_top1[:, None]).any(axis=1)
            frac = float(np.mean(contained[keep])) if keep.any() else 1.0
            checks.append(
                _check(f"{base}:top{k}_containment", frac, min_topk_containment, worse_high=False, unit="fraction", k=k)
            )
        if labels is not None:
            accuracy = float(np.mean(act_top1 == labels))
            reference = float(baseline_accuracy) if baseline_accuracy is not None else float(
                np.mean(exp_top1 == labels)
            )
            # each near-tie sample may legitimately flip; allow exactly that many
            limit = reference - float(ambiguous.sum()) / n
            checks.append(
                _check(f"{base}:label_accuracy", accuracy, limit, worse_high=False, unit="accuracy",
                       golden_accuracy=reference)
            )
    if role in ("scores", "embedding") and flat_e.shape[1] >= 2:
        cos = _row_cosine(flat_a, flat_e)
        checks.append(
            _check(f"{base}:cosine", float(cos.min()), min_cosine, worse_high=False, unit="min per-sample cosine",
                   worst_sample=int(np.argmin(cos)))
        )
    if drift_alpha is not None and expected.dtype.kind in "fiu" and n >= 8:
        checks.append(output_drift(f"{base}:distribution", flat_e, flat_a, alpha=drift_alpha))
    return checks
