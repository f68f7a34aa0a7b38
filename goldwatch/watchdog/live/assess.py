"""One window against its reference: every feature at once, corrected for multiple testing, and data quality.

:func:`assess_part` tests the numeric columns with the configured test -- KS counted against the pre-sorted
reference by default (:func:`~goldwatch.detectors.ks.ks_statistic_sorted` on the reference's grid: the reference is
not read again), or a binned distance (``psi``, ``js``, ``hellinger``, ``kl``) -- and the categorical columns with
the chi-squared test on category counts (:func:`~goldwatch.detectors.categorical.chi2_from_table`). All p-values of
the part are corrected together (Bonferroni or Benjamini-Hochberg); a feature drifts when its corrected p-value is
below ``alpha`` *and* its effect (the KS statistic; the total variation distance of the category frequencies)
reaches the effect-size floor, so that large windows do not page on harmless differences. NaN and inf values are
left out of the drift tests (each feature keeps its finite values) and counted by the data-quality checks instead.

Data quality compares rates with the reference's own: NaN and inf shares, values outside the reference's
0.1%-99.9% range, missing values and categories the reference never saw, and events of the window rejected as
schema violations. A rate breaks when it is significantly higher (one-sided exact binomial test, Bonferroni over
all quality tests of the part) *and* higher by at least ``quality_min_increase`` (2 percentage points by default).

>>> import numpy as np
>>> from goldwatch.watchdog.live.payload import Frame
>>> from goldwatch.watchdog.live.reference import PartReference
>>> rng = np.random.default_rng(0)
>>> ref = PartReference.fit(Frame(rng.normal(size=(20000, 3)), np.empty((20000, 0), dtype=object)),
...                         numeric_names=["a", "b", "c"], categorical_names=[])
>>> window = rng.normal(size=(5000, 3)); window[:, 1] += 0.2; window[:500, 2] = np.nan
>>> a = assess_part("inputs", Frame(window, np.empty((5000, 0), dtype=object)), ref, TestSettings())
>>> [f.drifted for f in a.result.features], [q.describe() for q in a.result.quality if q.failed]
([False, True, False], ['c: nan 10.0% (reference 0.00%)'])
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from goldwatch.detectors.categorical import chi2_from_table
from goldwatch.detectors.drift import detect_drift
from goldwatch.detectors.ks import ks_pvalue, ks_statistic_sorted
from goldwatch.detectors.multiple_testing import adjust_pvalues
from goldwatch.watchdog.live.payload import Frame
from goldwatch.watchdog.live.reference import PartReference
from goldwatch.watchdog.live.results import FeatureDrift, PartResult, QualityFinding

__all__ = ["PartAssessment", "TestSettings", "assess_part"]

NumericTest = Literal["ks", "psi", "js", "hellinger", "kl"]


@dataclasses.dataclass(frozen=True)
class TestSettings:
    """The window tests' settings (see :class:`~goldwatch.config.LiveDriftConfig` for the defaults' reasons)."""

    __test__ = False  # not a pytest class

    test: NumericTest = "ks"
    alpha: float = 0.01
    correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    min_effect: float | None = 0.05
    threshold: float | None = None
    quality_alpha: float = 0.001
    quality_min_increase: float = 0.02
    min_values: int = 20


@dataclasses.dataclass(frozen=True)
class PartAssessment:
    """The part's result, and per feature (numeric, then categorical) the raw p-value and the effect, which feed
    the streaming detectors."""

    result: PartResult
    pvalue: np.ndarray
    effect: np.ndarray


def assess_part(part: Literal["inputs", "outputs"], frame: Frame, ref: PartReference, settings: TestSettings, *,
                violations: int = 0, events: int = 0) -> PartAssessment:
    """Test one window's part against the reference (``violations``: events rejected as schema violations while
    the window was open, out of ``events + violations``)."""
    x, cats = frame.numeric, frame.categorical
    num_stat, num_p, num_n = _numeric_drift(x, ref, settings)
    cat = _categorical_drift(cats, ref)
    names = ref.numeric_names + ref.categorical_names
    stat = np.concatenate([num_stat, cat["stat"]])
    effect = np.concatenate([num_stat, cat["tvd"]])
    pvalue = np.concatenate([num_p if num_p is not None else np.full(num_stat.size, np.nan), cat["p"]])
    n_cur = np.concatenate([num_n, cat["n"]]).astype(np.int64)
    adjusted = adjust_pvalues(pvalue, settings.correction)
    with np.errstate(invalid="ignore"):
        drifted = adjusted < settings.alpha
        if num_p is None:  # a distance: its own threshold, no p-value
            limit = settings.threshold if settings.threshold is not None else _default_threshold(settings.test)
            drifted[: num_stat.size] = num_stat > limit
        elif settings.min_effect is not None:
            drifted &= effect >= settings.min_effect
    kinds = ["numeric"] * num_stat.size + ["categorical"] * cat["stat"].size
    tests = [settings.test] * num_stat.size + ["chi2"] * cat["stat"].size
    features = tuple(
        FeatureDrift(name=names[j], part=part, kind=kinds[j], test=tests[j],  # type: ignore[arg-type]
                     statistic=float(stat[j]), pvalue=_opt(pvalue[j]), adjusted_pvalue=_opt(adjusted[j]),
                     effect=float(effect[j]), drifted=bool(drifted[j]), n_current=int(n_cur[j]))
        for j in range(len(names)))
    quality = _quality(part, x, cats, ref, settings, cat=cat, violations=violations, events=events)
    result = PartResult(part=part, n_rows=frame.n_rows, tested=True, features=features, quality=quality)
    return PartAssessment(result=result, pvalue=pvalue, effect=effect)


def _opt(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def _default_threshold(test: str) -> float:
    from goldwatch.detectors.distances import DEFAULT_THRESHOLDS

    return float(DEFAULT_THRESHOLDS[test])


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers in a sorted array: [(start index, stop index), ...]."""
    if not values.size:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    bounds = np.concatenate([[0], breaks, [values.size]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _numeric_drift(x: np.ndarray, ref: PartReference, settings: TestSettings
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Statistic and raw p-value (None for a distance) per numeric column, and the finite values tested."""
    n_features = x.shape[1]
    stat = np.full(n_features, np.nan)
    finite = np.isfinite(x)
    n_finite = finite.sum(axis=0)
    if not n_features or ref.summary is None:
        return stat, np.full(n_features, np.nan), n_finite
    enough = n_finite >= settings.min_values
    if settings.test != "ks":
        report = ref.summary.test(x, test=settings.test, nan_policy="omit", correction="none",
                                  threshold=settings.threshold)
        return np.where(enough, report.statistic, np.nan), None, n_finite
    pvalue = np.full(n_features, np.nan)
    clean_ref = np.zeros(n_features, dtype=bool)
    clean_ref[ref.clean_columns] = True
    fast = finite.all(axis=0) & clean_ref & enough
    position = np.full(n_features, -1)
    position[ref.clean_columns] = np.arange(ref.clean_columns.size)
    cols = np.flatnonzero(fast)
    n1, n2 = ref.n_rows, x.shape[0]
    # the common case is every column at once; a column with a NaN in this window (rare) splits the pre-sorted
    # reference into runs of consecutive columns, each counted on its slice of the grid (no copy of the reference)
    for lo, hi in _runs(position[cols]):
        a, b = int(position[cols[lo]]), int(position[cols[hi - 1]]) + 1
        block = cols[lo:hi]
        current = x if block.size == n_features else x[:, block]
        d = ks_statistic_sorted(ref.clean_sorted[:, a:b], current, grid=ref.grid.block(slice(a, b)))
        pvalue[block], stat[block], _ = ks_pvalue(d, n1, n2)
    slow = np.flatnonzero(enough & ~fast)
    if slow.size:
        report = detect_drift(ref.summary.sorted_values[:, slow], x[:, slow], test="ks", nan_policy="omit",
                              correction="none")
        stat[slow] = report.statistic
        assert report.pvalue is not None
        pvalue[slow] = report.pvalue
    return stat, pvalue, n_finite


def _categorical_drift(cats: np.ndarray, ref: PartReference) -> dict[str, Any]:
    """chi-squared p-value, statistic, total variation distance, non-missing count and unseen-category count per
    categorical column (missing values left out)."""
    n_features = cats.shape[1]
    zeros = np.zeros(n_features)
    if not n_features:
        return {"stat": zeros, "p": zeros, "tvd": zeros, "n": zeros, "unseen": zeros}
    import pandas as pd

    long = pd.DataFrame(cats).melt(var_name="feature", value_name="category").dropna()
    current = long.groupby(["feature", "category"], sort=True).size()
    table = pd.concat({"ref": ref.category_table, "cur": current}, axis=1).fillna(0)
    feature = table.index.get_level_values(0).to_numpy(dtype=np.int64)
    o_ref = table["ref"].to_numpy(dtype=np.float64)
    o_cur = table["cur"].to_numpy(dtype=np.float64)
    stat, p, _, _ = chi2_from_table(feature, o_ref, o_cur, n_features)
    n_ref = np.bincount(feature, weights=o_ref, minlength=n_features)
    n_cur = np.bincount(feature, weights=o_cur, minlength=n_features)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(o_ref / n_ref[feature] - o_cur / n_cur[feature])
    tvd = 0.5 * np.bincount(feature, weights=np.nan_to_num(diff), minlength=n_features)
    p = np.where(n_cur > 0, p, np.nan)
    unseen = np.bincount(feature, weights=o_cur * (o_ref == 0), minlength=n_features)
    return {"stat": stat, "p": p, "tvd": np.where(n_cur > 0, tvd, np.nan), "n": n_cur, "unseen": unseen}


def _quality(part: Literal["inputs", "outputs"], x: np.ndarray, cats: np.ndarray, ref: PartReference,
             settings: TestSettings, *, cat: dict[str, Any], violations: int, events: int
             ) -> tuple[QualityFinding, ...]:
    from scipy.stats import binom

    n = x.shape[0] if x.size or not cats.size else cats.shape[0]
    nan = np.isnan(x)
    inf = np.isinf(x)
    finite = ~(nan | inf)
    n_finite = finite.sum(axis=0)
    outside = (finite & ((x < ref.low) | (x > ref.high))).sum(axis=0) if x.shape[1] else np.zeros(0)
    rows: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]] = [
        ("nan", "numeric", nan.sum(axis=0), np.full(x.shape[1], n), ref.nan_rate),
        ("inf", "numeric", inf.sum(axis=0), np.full(x.shape[1], n), ref.inf_rate),
        ("out_of_range", "numeric", outside, n_finite, ref.out_rate),
        ("missing", "categorical", n - cat["n"], np.full(cats.shape[1], n), ref.missing_rate),
        ("unseen_category", "categorical", cat["unseen"], cat["n"], ref.unseen_rate),
    ]
    names = {"numeric": ref.numeric_names, "categorical": ref.categorical_names}
    blocks = [(check, names[kind], k, m, base) for check, kind, k, m, base in rows if len(names[kind])]
    total = events + violations
    if total:
        blocks.append(("schema", ["*"], np.array([violations]), np.array([total]), np.zeros(1)))
    if not blocks:
        return ()
    check_of = [c for c, cols, *_ in blocks for _ in cols]
    name_of = [n for _, cols, *_ in blocks for n in cols]
    count = np.concatenate([np.asarray(b[2], dtype=np.int64) for b in blocks]).tolist()
    trials = np.concatenate([np.asarray(b[3], dtype=np.int64) for b in blocks]).tolist()
    r0 = np.concatenate([np.asarray(b[4], dtype=np.float64) for b in blocks])
    k_arr, n_arr, r0_arr = np.array(count), np.array(trials), r0
    floor = 0.5 / max(ref.n_rows, 1)  # a rate of 0 in the reference is not a proven 0
    p = np.where(k_arr > 0, binom.sf(k_arr - 1, np.maximum(n_arr, 1), np.maximum(r0_arr, floor)), 1.0)
    adjusted = np.minimum(p * p.size, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n_arr > 0, k_arr / np.maximum(n_arr, 1), 0.0)
    failed = (adjusted < settings.quality_alpha) & (rate - r0_arr >= settings.quality_min_increase)
    return tuple(
        QualityFinding(name=name_of[i], part=part, check=check_of[i], count=count[i],  # type: ignore[arg-type]
                       n=trials[i], rate=float(rate[i]), reference_rate=float(r0_arr[i]), pvalue=float(adjusted[i]),
                       failed=bool(failed[i]))
        for i in range(len(count)))
