"""Comparing replayed outputs with a golden set's expected outputs: every comparison is a :class:`Check`.

Per output:

* ``max_abs_error`` and ``max_rel_error`` against the calibrated tolerance;
* ``nonfinite``: NaN/Inf where the expected answer was finite;
* for class scores: ``top1_agreement`` and ``topk_containment`` (the expected class stays among the replayed top
  k), computed over the samples whose expected top-2 margin exceeds twice the tolerance -- a near-tie may flip on
  noise alone, so those samples are counted and reported, not held against the model -- and ``label_accuracy``
  against the labels when the golden set has them;
* for class scores and embeddings: ``cosine`` (the smallest per-sample cosine similarity);
* ``distribution``: when the answers are *not* all within tolerance, a two-sample test of the replayed vs
  expected output distributions (goldwatch.detectors) says whether the outputs as a whole moved. When every
  answer is within tolerance the test is skipped, and says so: paired answers that agree element by element
  have the same distribution up to the tolerance, and a KS test there could only flag tolerance-level noise
  (e.g. exact zeros against 1e-7s) -- a false alarm, at the price of a sort per column.

>>> from goldwatch.golden_sets.format import Tolerance
>>> e = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]], np.float32)
>>> checks = compare_output("logits", e.copy(), e, tolerance=Tolerance(1e-5, 1e-5), role="scores")
>>> [c.name.split(":")[-1] for c in checks], all(c.status == "pass" for c in checks)
(['max_abs_error', 'max_rel_error', 'nonfinite', 'top1_agreement', 'top2_containment', 'cosine'], True)
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import numpy as np

from goldwatch.checks import Check
from goldwatch.golden_sets._drift import output_drift
from goldwatch.golden_sets.calibrate import errors, expected_row_scale
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
    margin = ExpectedView.of(np.asarray(expected)).margin
    return np.zeros(len(expected), dtype=bool) if margin is None else margin <= 2 * atol


@dataclasses.dataclass(frozen=True)
class ExpectedView:
    """What the checks need from one expected output, computed once per golden set rather than once per replay."""

    flat: np.ndarray  # (n, k) float64
    all_finite: bool
    row_scale: np.ndarray  # per-sample max |e|
    norm: np.ndarray  # per-sample L2 norm
    top1: np.ndarray | None  # per-sample argmax (2-D outputs)
    margin: np.ndarray | None  # per-sample gap between the best and second-best score

    @classmethod
    def of(cls, expected: np.ndarray) -> ExpectedView:
        n = expected.shape[0]
        flat = expected.reshape(n, -1).astype(np.float64)
        top1 = margin = None
        if flat.shape[1] >= 2:
            top1 = flat.argmax(axis=1)
            # partition, not sort: O(C) per row; the last column is the largest, the one before it the runner-up
            top2 = np.partition(flat, flat.shape[1] - 2, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
        return cls(
            flat=flat,
            all_finite=bool(np.isfinite(flat).all()),
            row_scale=expected_row_scale(flat),
            norm=np.linalg.norm(flat, axis=1),
            top1=top1,
            margin=margin,
        )


_VIEWS: dict[int, ExpectedView] = {}


def expected_view(expected: np.ndarray) -> ExpectedView:
    """The (cached) view of ``expected``. Only read-only arrays are cached -- golden sets make theirs read-only --
    so a cached view can never go stale; the entry is dropped when the array is garbage-collected."""
    if expected.flags.writeable:
        return ExpectedView.of(expected)
    key = id(expected)
    view = _VIEWS.get(key)
    if view is None:
        view = _VIEWS[key] = ExpectedView.of(expected)
        weakref.finalize(expected, _VIEWS.pop, key, None)
    return view


def _row_cosine(a: np.ndarray, e: np.ndarray, ne: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", a, e)
    na = np.linalg.norm(a, axis=1)
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
    denominator = float(tolerance.derivation.get("rel_denominator_floor", tolerance.derivation.get("floor_abs", 0.0)))
    n = expected.shape[0]
    view = expected_view(expected)
    # one float64 copy of the answers, shared by every check below (the checks are cheap; copies are not)
    flat_a = actual.reshape(n, -1).astype(np.float64)
    flat_e = view.flat
    max_abs, max_rel, diff = errors(flat_a, flat_e, denominator_floor=denominator, row_scale=view.row_scale)
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
    if view.all_finite and np.isfinite(max_abs):
        # finite expected answers and finite errors imply finite replayed answers: no masks needed
        act_all_finite, new_nonfinite, nan_count = True, 0, 0
    else:
        act_finite = np.isfinite(flat_a)
        act_all_finite = bool(act_finite.all())
        new_nonfinite = int(np.count_nonzero(np.isfinite(flat_e) & ~act_finite))
        nan_count = int(np.isnan(flat_a).sum())
    checks.append(
        Check(
            name=f"{base}:nonfinite",
            status="fail" if new_nonfinite else "pass",
            summary=f"{new_nonfinite} NaN/Inf value(s) where the golden answer is finite",
            measured={"value": new_nonfinite, "nan": nan_count},
            threshold={"limit": 0, "direction": "max"},
        )
    )
    if role == "scores" and expected.ndim == 2 and view.top1 is not None and view.margin is not None:
        ambiguous = view.margin <= 2 * tolerance.atol  # see top1_ambiguous
        keep = ~ambiguous
        exp_top1 = view.top1
        act_scores = flat_a if act_all_finite else np.where(np.isnan(flat_a), -np.inf, flat_a)
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
        cos = _row_cosine(flat_a, flat_e, view.norm)
        checks.append(
            _check(f"{base}:cosine", float(cos.min()), min_cosine, worse_high=False, unit="min per-sample cosine",
                   worst_sample=int(np.argmin(cos)))
        )
    if drift_alpha is not None and expected.dtype.kind in "fiu" and n >= 8:
        if max_abs <= tolerance.atol and max_rel <= tolerance.rtol:
            checks.append(
                Check(
                    name=f"{base}:distribution",
                    status="skip",
                    summary="every answer is within tolerance: the distributions match to within it (no test needed)",
                )
            )
        else:
            checks.append(output_drift(f"{base}:distribution", flat_e, flat_a, alpha=drift_alpha))
    return checks
