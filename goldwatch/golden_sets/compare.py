"""Comparing replayed outputs with a golden set's expected outputs: every comparison is a :class:`Check`.

Per output:

* ``max_abs_error`` and ``max_rel_error`` against the calibrated tolerance;
* ``nonfinite``: NaN/Inf where the expected answer was finite;
* for class scores: ``top1_agreement`` and ``topk_containment`` (the expected class stays among the replayed top
  k), computed over the samples whose expected top-2 margin exceeds twice the tolerance -- a near-tie may flip on
  noise alone, so those samples are counted and reported, not held against the model -- and ``label_accuracy``
  against the labels when the golden set has them;
* for embeddings: ``cosine`` (the smallest per-sample cosine similarity). Class scores have none: their
  max abs error and top-1/top-k checks are stricter, and a cosine of logits is not a meaningful similarity;
* ``distribution``: when the answers are *not* all within tolerance, a two-sample test of the replayed vs
  expected output distributions (goldwatch.detectors) says whether the outputs as a whole moved. When every
  answer is within tolerance the test is skipped, and says so: paired answers that agree element by element
  have the same distribution up to the tolerance, and a KS test there could only flag tolerance-level noise
  (e.g. exact zeros against 1e-7s) -- a false alarm, at the price of a sort per column.

Cost. What the checks need from the expected answers (float64 copy, top-1, margins, norms) is computed once per
golden set and kept with its read-only arrays. Answers bit-identical to the expected ones -- the healthy case
when the golden set's own runtime replays it -- cost one byte comparison: their checks are kept from the first
replay. Other answers within tolerance cost five passes for the errors, and a ranking of only the samples whose
margin is within twice the max error (every other sample provably keeps its top-1). Each shortcut gives exactly
the numbers of the full computation; tests turn them off to prove it.

>>> from goldwatch.golden_sets.format import Tolerance, immutable
>>> e = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]], np.float32)
>>> checks = compare_output("logits", e.copy(), e, tolerance=Tolerance(1e-5, 1e-5), role="scores")
>>> [c.name.split(":")[-1] for c in checks], all(c.status == "pass" for c in checks)
(['max_abs_error', 'max_rel_error', 'nonfinite', 'top1_agreement', 'top2_containment'], True)
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import numpy as np

from goldwatch.checks import Check
from goldwatch.detectors.paired import DEFAULT_MIN_EFFECT
from goldwatch.golden_sets._drift import output_drift
from goldwatch.golden_sets.calibrate import errors, expected_row_scale
from goldwatch.golden_sets.format import Tolerance, immutable

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
    # derived lazily and kept: what the checks derive when the replayed answers are bit-identical to these (the
    # common, healthy case), computed by exactly the code the general path runs, so the results cannot differ;
    # denominators per floor; the margins in sorted order
    _self: dict[Any, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

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

    def denominators(self, floor: float) -> np.ndarray:
        """The relative error's denominator, ``max(row_scale, floor)`` per sample (see ``calibrate.errors``), repeated
        across each row: an elementwise division by it is several times faster than broadcasting a column."""
        key = ("denominators", floor)
        if key not in self._self:
            per_sample = np.maximum(self.row_scale, max(floor, _TINY))
            self._self[key] = np.ascontiguousarray(np.broadcast_to(per_sample[:, None], self.flat.shape))
        den: np.ndarray = self._self[key]
        return den

    def rows_with_margin_at_most(self, limit: float) -> np.ndarray:
        """Indices of the samples whose top-2 margin is ``<= limit``, in O(log n) from the sorted margins."""
        assert self.margin is not None
        if "margin_order" not in self._self:
            order = np.argsort(self.margin, kind="stable")
            self._self["margin_order"] = (order, self.margin[order])
        order, ordered = self._self["margin_order"]
        found: np.ndarray = order[: int(np.searchsorted(ordered, limit, side="right"))]
        return found

    @classmethod
    def of(cls, expected: np.ndarray) -> ExpectedView:
        n = expected.shape[0]
        flat = expected.reshape(n, -1).astype(np.float64, order="C")  # C order: einsum sums rows in one order
        top1 = margin = None
        all_finite = bool(np.isfinite(flat).all())
        if flat.shape[1] >= 2:
            # a NaN score is never the best class: ranked as -inf, as the replayed answers are
            ranked = flat if all_finite else np.where(np.isnan(flat), -np.inf, flat)
            top1 = ranked.argmax(axis=1)
            # partition, not sort: O(C) per row; the last column is the largest, the one before it the runner-up
            top2 = np.partition(ranked, ranked.shape[1] - 2, axis=1)[:, -2:]
            with np.errstate(invalid="ignore"):  # -inf - -inf: a row with no finite score has no margin (NaN)
                margin = top2[:, 1] - top2[:, 0]
        return cls(
            flat=flat,
            all_finite=all_finite,
            row_scale=expected_row_scale(flat),
            norm=_row_norm(flat),
            top1=top1,
            margin=margin,
        )


_TINY = float(np.finfo(np.float64).tiny)
#: answers up to this size are compared byte for byte through ``tobytes`` (below it, numpy's per-call overhead rules)
_SMALL_BYTES = 1 << 16
#: Rounding allowance for "this sample's top-1 cannot move": margin and error are each one rounded float64 operation
#: away from their exact values, so a relative 1e-12 is ample (the exact bound is (1 + 2^-53)^2).
_ROUNDING = 1.0 + 1e-12
#: The shortcuts below (cached checks for bit-identical answers; exact top-1 bounds for answers within tolerance)
#: give exactly the numbers of the general computation; tests turn them off to prove it.
_SHORTCUTS = True

_VIEWS: dict[int, ExpectedView] = {}


def expected_view(expected: np.ndarray) -> ExpectedView:
    """The (cached) view of ``expected``. Only immutable arrays are cached -- golden sets hold theirs so -- so a
    cached view can never go stale; the entry is dropped when the array is garbage-collected."""
    if not immutable(expected):
        return ExpectedView.of(expected)
    key = id(expected)
    view = _VIEWS.get(key)
    if view is None:
        view = _VIEWS[key] = ExpectedView.of(expected)
        weakref.finalize(expected, _VIEWS.pop, key, None)
    return view


def _row_norm(x: np.ndarray) -> np.ndarray:
    """Per-row L2 norm (einsum: half the time of ``np.linalg.norm(x, axis=1)``, which squares into a temporary)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _row_cosine(a: np.ndarray, e: np.ndarray, ne: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", a, e)
    na = _row_norm(a)
    both_zero = (na == 0) & (ne == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * ne)
    cos = np.where(both_zero, 1.0, np.where((na == 0) | (ne == 0), 0.0, cos))
    return np.where(np.isfinite(cos), cos, -1.0)  # non-finite outputs: worst possible similarity


def _row_cosine_finite(a: np.ndarray, e: np.ndarray, ne: np.ndarray) -> np.ndarray:
    """:func:`_row_cosine` for finite answers: the same arithmetic, and its corrections only where they apply."""
    dot = np.einsum("ij,ij->i", a, e)
    na = _row_norm(a)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cos = dot / (na * ne)
    if np.isfinite(cos).all() and na.all() and ne.all():
        return cos
    return _row_cosine(a, e, ne)
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
    if actual.flags.c_contiguous and expected.flags.c_contiguous:
        head = slice(0, 1024)  # answers that differ usually differ early: a look at the head saves the full pass
        if actual.reshape(-1)[head].tobytes() != expected.reshape(-1)[head].tobytes():
            return False
        if actual.nbytes <= _SMALL_BYTES:
            return actual.tobytes() == expected.tobytes()  # two small copies and a memcmp: a few times cheaper
    if actual.dtype.kind == "f":
        if actual.dtype.itemsize not in (2, 4, 8):  # long double: compare its bytes (padding may differ: then "no")
            return np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes()
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
    drift_min_effect: float = DEFAULT_MIN_EFFECT,
    prefix: str = "golden",
) -> list[Check]:
    """All checks of one output. ``actual`` must have ``expected``'s shape (the caller checks and reports)."""
    view = expected_view(expected)
    args = (name, actual, expected, view, tolerance, role, labels, baseline_accuracy, min_top1_agreement,
            min_topk_containment, min_cosine, drift_alpha, drift_min_effect, prefix)
    # the healthy case: the replay reproduced the approved answers bit for bit. Every check is then a function of
    # the expected answers and the options alone, so it is computed once per golden set and kept with its view.
    if not (view.all_finite and expected.shape[0] > 0 and _bit_identical(actual, expected)):
        return _compare(*args, identical=False)
    if not _SHORTCUTS or (labels is not None and not immutable(labels)) or not immutable(expected):
        return _compare(*args, identical=True)
    key = ("checks", name, prefix, role, tolerance.atol, tolerance.rtol, _denominator(tolerance),
           None if labels is None else id(labels), baseline_accuracy, min_top1_agreement, min_topk_containment,
           min_cosine, drift_alpha, drift_min_effect)
    cached = view._self.get(key)
    if cached is None or cached[0] is not labels:
        # the entry holds the (read-only) labels themselves: their id cannot be reused while it lives
        cached = view._self[key] = (labels, tuple(_compare(*args, identical=True)))
    return list(cached[1])


def _denominator(tolerance: Tolerance) -> float:
    return float(tolerance.derivation.get("rel_denominator_floor", tolerance.derivation.get("floor_abs", 0.0)))


class _Answers:
    """The replayed answers as (n, k): in their own dtype, and as float64 only once a check needs all of them."""

    __slots__ = ("_f64", "raw")

    def __init__(self, raw: np.ndarray, f64: np.ndarray | None = None) -> None:
        self.raw = raw
        self._f64 = f64

    @property
    def f64(self) -> np.ndarray:
        if self._f64 is None:
            self._f64 = self.raw.astype(np.float64, order="C")  # as ExpectedView.flat: same summation order
        return self._f64

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Some samples as float64, without converting the rest."""
        return self._f64[index] if self._f64 is not None else self.raw[index].astype(np.float64)


def _error_numbers(
    answers: _Answers, view: ExpectedView, shape: tuple[int, ...], atol: float, denominator: float
) -> tuple[float, float, tuple[Any, ...], int]:
    """(max abs error, max per-sample rel error, index of the worst element, elements over ``atol``), exactly as
    :func:`calibrate.errors` computes them."""
    raw = answers.raw
    if _SHORTCUTS and view.all_finite and raw.size and raw.dtype.kind in "fiu":
        # five passes: the subtraction widens to float64 as it goes (exactly as astype would), no float64 copy
        diff = np.subtract(raw, view.flat, dtype=np.float64)
        np.abs(diff, out=diff)
        flat_worst = int(np.argmax(diff))
        max_abs = float(diff.flat[flat_worst])
        if np.isfinite(max_abs):  # the largest error is finite, so every answer is: no masks needed
            over = int(np.count_nonzero(diff > atol)) if max_abs > atol else 0
            # max_ij d_ij / den_i == max_i (max_j d_ij) / den_i: rounding is monotone, so the per-sample reduction
            # errors() does first can be skipped
            np.divide(diff, view.denominators(denominator), out=diff)
            return max_abs, float(diff.max()), np.unravel_index(flat_worst, shape), over
    max_abs, max_rel, diff = errors(answers.f64, view.flat, denominator_floor=denominator, row_scale=view.row_scale)
    diff = diff.reshape(shape)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return max_abs, max_rel, worst, int(np.count_nonzero(diff > atol))


def _compare(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    view: ExpectedView,
    tolerance: Tolerance,
    role: str,
    labels: np.ndarray | None,
    baseline_accuracy: float | None,
    min_top1_agreement: float,
    min_topk_containment: float,
    min_cosine: float,
    drift_alpha: float | None,
    drift_min_effect: float,
    prefix: str,
    *,
    identical: bool,
) -> list[Check]:
    base = f"{prefix}:{name}"
    n = expected.shape[0]
    flat_e = view.flat
    size = int(expected.size)
    if identical:
        answers = _Answers(actual.reshape(n, -1), flat_e)
        max_abs, max_rel = 0.0, 0.0
        worst: tuple[Any, ...] = (0,) * expected.ndim if size else ()
        over = size if tolerance.atol < 0.0 else 0  # what count_nonzero(zeros > atol) gives
    else:
        answers = _Answers(actual.reshape(n, -1))
        max_abs, max_rel, worst, over = _error_numbers(
            answers, view, expected.shape, tolerance.atol, _denominator(tolerance)
        )
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
        act_finite = np.isfinite(answers.f64)
        act_all_finite = bool(act_finite.all())
        new_nonfinite = int(np.count_nonzero(np.isfinite(flat_e) & ~act_finite))
        nan_count = int(np.isnan(answers.f64).sum())
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
        checks += _class_checks(
            base, answers, view, tolerance.atol, max_abs, labels, baseline_accuracy, min_top1_agreement,
            min_topk_containment, identical=identical, finite=act_all_finite,
        )
    if role == "embedding" and flat_e.shape[1] >= 2:
        if identical:
            cos = view.self_cosine()
        else:
            cos = (_row_cosine_finite if act_all_finite else _row_cosine)(answers.f64, flat_e, view.norm)
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
            checks.append(output_drift(f"{base}:distribution", flat_e, answers.f64, alpha=drift_alpha,
                                       min_effect=drift_min_effect))
    return checks


def _class_checks(
    base: str,
    answers: _Answers,
    view: ExpectedView,
    atol: float,
    max_abs: float,
    labels: np.ndarray | None,
    baseline_accuracy: float | None,
    min_top1_agreement: float,
    min_topk_containment: float,
    *,
    identical: bool,
    finite: bool,
) -> list[Check]:
    """top-1 agreement, top-k containment and label accuracy of class scores.

    Samples whose expected top-2 margin is ``<= 2 * atol`` are near-ties (see :func:`top1_ambiguous`): counted and
    reported, not held against the model. When every answer is within ``max_abs`` of the expected one, a sample
    whose margin exceeds ``2 * max_abs`` provably keeps its top-1 (the best expected score, lowered by at most
    ``max_abs``, still beats every other score, raised by at most ``max_abs``), so only the others -- usually none --
    are ranked; the numbers are those of ranking every sample.
    """
    assert view.top1 is not None
    assert view.margin is not None
    n = answers.raw.shape[0]
    exp_top1, margin = view.top1, view.margin
    two_atol = 2 * atol
    n_keep = n - view.rows_with_margin_at_most(two_atol).size  # == count_nonzero(margin > 2 * atol)
    k = min(MAX_TOP_K, answers.raw.shape[1] - 1)
    if identical:
        act_top1, changed, not_agree_kept = exp_top1, 0, 0
        contained = view.self_topk_contained(k) if k >= 2 else None
        not_contained_kept = -1 if contained is None else int(np.count_nonzero(~contained & ~(margin <= two_atol)))
    elif _SHORTCUTS and finite and np.isfinite(max_abs):
        rows = view.rows_with_margin_at_most(2 * max_abs * _ROUNDING)  # the only samples whose top-1 may move
        act_top1, changed, not_agree_kept, not_contained_kept = exp_top1, 0, 0, 0
        if rows.size:
            ranked = answers.rows(rows)
            act_top1 = exp_top1.copy()
            act_top1[rows] = ranked.argmax(axis=1)
            moved = act_top1[rows] != exp_top1[rows]
            kept = ~(margin[rows] <= two_atol)  # a NaN margin is not a near-tie: kept, as n_keep counts it
            changed, not_agree_kept = int(np.count_nonzero(moved)), int(np.count_nonzero(moved & kept))
            if k >= 2:
                not_contained_kept = int(np.count_nonzero(~_topk_contained(ranked, exp_top1[rows], k) & kept))
    else:
        flat_a = answers.f64
        act_scores = flat_a if finite else np.where(np.isnan(flat_a), -np.inf, flat_a)
        act_top1 = act_scores.argmax(axis=1)
        keep = ~(margin <= two_atol)
        moved = exp_top1 != act_top1
        changed, not_agree_kept = int(np.count_nonzero(moved)), int(np.count_nonzero(moved & keep))
        not_contained_kept = -1
        if k >= 2:
            not_contained_kept = int(np.count_nonzero(~_topk_contained(act_scores, exp_top1, k) & keep))
    # fractions as count / total: what np.mean of the boolean array gives, bit for bit
    checks = [
        _check(
            f"{base}:top1_agreement", (n_keep - not_agree_kept) / n_keep if n_keep else 1.0, min_top1_agreement,
            worse_high=False, unit="fraction", samples=n_keep, ambiguous_samples=n - n_keep, changed_samples=changed,
        )
    ]
    if k >= 2:
        frac = (n_keep - not_contained_kept) / n_keep if n_keep else 1.0
        checks.append(
            _check(f"{base}:top{k}_containment", frac, min_topk_containment, worse_high=False, unit="fraction", k=k)
        )
    if labels is not None:
        accuracy = int(np.count_nonzero(act_top1 == labels)) / n
        reference = (
            float(baseline_accuracy)
            if baseline_accuracy is not None
            else int(np.count_nonzero(exp_top1 == labels)) / n
        )
        # each near-tie sample may legitimately flip; allow exactly that many
        limit = reference - float(n - n_keep) / n
        checks.append(
            _check(f"{base}:label_accuracy", accuracy, limit, worse_high=False, unit="accuracy",
                   golden_accuracy=reference)
        )
    return checks
