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
    # what the checks derive when the replayed answers are bit-identical to these (the common, healthy case);
    # computed lazily by exactly the code the general path runs, so the results cannot differ
    _self: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def self_cosine(self) -> np.ndarray:
        """Per-sample cosine of the expected answers with themselves (what ``_row_cosine`` gives them)."""
        if "cosine" not in self._self:
            self._self["cosine"] = _row_cosine(self.flat, self.flat, self.norm)
        cos: np.ndarray = self._self["cosine"]
        return cos

    def self_topk_contained(self, k: int) -> np.ndarray:
        """Per-sample: the expected top-1 is among the top ``k`` of the expected answers themselves."""
        key = f"top{k}"
        if key not in self._self:
            assert self.top1 is not None
            self._self[key] = _topk_contained(self.flat, self.top1, k)
        contained: np.ndarray = self._self[key]
        return contained

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


def _topk_contained(scores: np.ndarray, top1: np.ndarray, k: int) -> np.ndarray:
    """Per sample: is ``top1`` among the ``k`` best ``scores``, as ``np.argpartition(-scores, k - 1)[:, :k]`` picks
    them? Decided by counting for every sample whose answer does not hinge on how ties at the k-th place are broken
    (two vectorised comparisons instead of a selection per row); only the rest go through argpartition itself, row by
    row exactly as before (argpartition treats each row on its own), so the result is the same in every case."""
    value = scores[np.arange(scores.shape[0]), top1][:, None]
    greater = np.count_nonzero(scores > value, axis=1)
    at_least = np.count_nonzero(scores >= value, axis=1)
    contained = (greater < k) & (at_least <= k)  # it and everything above it fit in the top k
    tied = (greater < k) & (at_least > k)  # ties straddle the k-th place: argpartition's own choice decides
    if tied.any():
        rows = np.flatnonzero(tied)
        topk = np.argpartition(-scores[rows], k - 1, axis=1)[:, :k]
        contained[rows] = (topk == top1[rows, None]).any(axis=1)
    return contained


def _bit_identical(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Same dtype, shape and bytes (``-0.0`` vs ``0.0`` and NaN payloads included): every derived number is equal."""
    if actual.dtype != expected.dtype or actual.shape != expected.shape or actual.dtype.kind not in "fiub":
        return False
    if actual.dtype.kind == "f":
        as_int = np.dtype(f"u{actual.dtype.itemsize}")
        return bool(np.array_equal(actual.view(as_int), expected.view(as_int)))
    return bool(np.array_equal(actual, expected))


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
    flat_e = view.flat
    # the healthy case: the replay reproduced the approved answers bit for bit. Everything the checks derive is then
    # known from the expected answers alone (zero error everywhere; cached per golden set), with the same numbers.
    identical = view.all_finite and n > 0 and _bit_identical(actual, expected)
    if identical:
        flat_a = flat_e
        max_abs, max_rel, size = 0.0, 0.0, int(expected.size)
        worst: tuple[Any, ...] = (0,) * expected.ndim if size else ()
        over = size if tolerance.atol < 0.0 else 0  # what count_nonzero(zeros > atol) gives
    else:
        # one float64 copy of the answers, shared by every check below (the checks are cheap; copies are not)
        flat_a = actual.reshape(n, -1).astype(np.float64)
        max_abs, max_rel, diff = errors(flat_a, flat_e, denominator_floor=denominator, row_scale=view.row_scale)
        diff = diff.reshape(expected.shape)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        over, size = int(np.count_nonzero(diff > tolerance.atol)), int(diff.size)
    checks = [
        _check(
            f"{base}:max_abs_error", max_abs, tolerance.atol, worse_high=True, unit="abs",
            worst_index=[int(i) for i in worst], elements_over=over, elements=size,
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
        n_keep = int(np.count_nonzero(keep))
        exp_top1 = view.top1
        act_scores = flat_a if act_all_finite else np.where(np.isnan(flat_a), -np.inf, flat_a)
        act_top1 = exp_top1 if identical else act_scores.argmax(axis=1)
        # identical answers: every kept sample agrees, and the mean of all-True is exactly 1.0
        agree = (1.0 if identical else float(np.mean(exp_top1[keep] == act_top1[keep]))) if n_keep else 1.0
        checks.append(
            _check(
                f"{base}:top1_agreement", agree, min_top1_agreement, worse_high=False, unit="fraction",
                samples=n_keep, ambiguous_samples=n - n_keep,
                changed_samples=0 if identical else int(np.count_nonzero(exp_top1 != act_top1)),
            )
        )
        k = min(MAX_TOP_K, expected.shape[1] - 1)
        if k >= 2:
            contained = view.self_topk_contained(k) if identical else _topk_contained(act_scores, exp_top1, k)
            frac = float(np.mean(contained[keep])) if n_keep else 1.0
            checks.append(
                _check(f"{base}:top{k}_containment", frac, min_topk_containment, worse_high=False, unit="fraction", k=k)
            )
        if labels is not None:
            accuracy = float(np.mean(act_top1 == labels))
            reference = float(baseline_accuracy) if baseline_accuracy is not None else float(
                np.mean(exp_top1 == labels)
            )
            # each near-tie sample may legitimately flip; allow exactly that many
            limit = reference - float(n - n_keep) / n
            checks.append(
                _check(f"{base}:label_accuracy", accuracy, limit, worse_high=False, unit="accuracy",
                       golden_accuracy=reference)
            )
    if role in ("scores", "embedding") and flat_e.shape[1] >= 2:
        cos = view.self_cosine() if identical else _row_cosine(flat_a, flat_e, view.norm)
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
