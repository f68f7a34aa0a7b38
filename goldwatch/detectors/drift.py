"""``detect_drift``: one call from two datasets to a dataset-level verdict with per-feature evidence.

Steps: validate shapes and dtypes; apply the NaN policy (``raise`` refuses non-finite values, ``omit`` drops them
per feature and reports the counts); run the named detector on all features at once; correct the p-values for
multiple testing (``bonferroni`` by default, ``bh`` or ``none``); apply the effect-size floor.

The effect-size floor matters at scale: with a million rows, a KS distance of 0.003 is "significant" yet harmless.
``min_effect`` (a number, or ``"auto"`` for the detector's recommended floor, e.g. KS D >= 0.1) is required *in
addition to* significance. It is off (None) by default so that small windows keep their full power.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(1000, 4))
>>> cur = rng.normal(size=(800, 4)); cur[:, 2] += 0.5
>>> report = detect_drift(ref, cur)
>>> report.drifted, report.drifted_features.tolist()
(True, [False, False, True, False])
>>> cur[5, 0] = np.nan
>>> detect_drift(ref, cur, nan_policy="omit").n_dropped_current.tolist()
[1, 0, 0, 0]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from goldwatch import progress
from goldwatch.detectors._backend import any_dask
from goldwatch.detectors._validation import NanPolicy, as_samples, check_pair, feature_names_of, finite_groups
from goldwatch.detectors.multiple_testing import CORRECTIONS, adjust_pvalues
from goldwatch.detectors.registry import get_detector
from goldwatch.detectors.results import DriftReport, TestResult
from goldwatch.errors import DataError

__all__ = ["detect_drift", "finish_report"]


def _check_options(alpha: float, correction: str, min_effect: Any) -> None:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise DataError(f"expected a level in (0, 1), got {alpha!r}", where="alpha", hint="e.g. alpha=0.05")
    if correction not in CORRECTIONS:
        raise DataError(f"expected one of {', '.join(CORRECTIONS)}, got {correction!r}", where="correction")
    if min_effect is not None and min_effect != "auto" and not (
        isinstance(min_effect, (int, float)) and min_effect >= 0
    ):
        raise DataError(f"expected None, 'auto' or a number >= 0, got {min_effect!r}", where="min_effect")


def finish_report(
    result: TestResult,
    *,
    alpha: float,
    correction: str,
    min_effect: float | None,
    n_dropped_reference: np.ndarray,
    n_dropped_current: np.ndarray,
) -> DriftReport:
    """Turn per-feature results into a :class:`DriftReport`: correction, thresholds, effect-size floor."""
    stat = result.statistic
    if result.pvalue is not None:
        adjusted = adjust_pvalues(result.pvalue, correction)
        # NaN never reads as "no drift": a NaN p-value cannot pass the comparison, so mark it drifted
        drifted = ~(adjusted >= alpha)
        threshold, kind = alpha, "pvalue"
    else:
        adjusted = None
        drifted = ~(stat <= result.threshold)
        threshold, kind = result.threshold, "statistic"
    if min_effect is not None:
        drifted &= ~(stat < min_effect)
    return DriftReport(
        test=result.test, alpha=alpha, correction=correction if result.pvalue is not None else "none",
        min_effect=min_effect, feature_names=result.feature_names, statistic=stat, pvalue=result.pvalue,
        adjusted_pvalue=adjusted, drifted_features=drifted, threshold=threshold, threshold_kind=kind,  # type: ignore[arg-type]
        n_dropped_reference=n_dropped_reference, n_dropped_current=n_dropped_current, strategy=result.strategy,
    )


@progress.stage(lambda *_, test="ks", **__: f"drift test ({test})")
def detect_drift(
    reference: Any,
    current: Any,
    *,
    test: str = "ks",
    alpha: float = 0.05,
    correction: Literal["bonferroni", "bh", "none"] = "bonferroni",
    min_effect: float | Literal["auto"] | None = None,
    nan_policy: NanPolicy = "raise",
    threshold: float | None = None,
) -> DriftReport:
    """Test every feature of ``current`` against ``reference`` and return the dataset-level verdict.

    ``reference``/``current``: (n_samples, n_features) or 1-D arrays, DataFrames (column names are kept) or lists;
    dask arrays and dataframes run on the current Dask client, exactly (:mod:`goldwatch.detectors.distributed`).
    ``threshold`` overrides a distance detector's default threshold.
    """
    spec = get_detector(test)
    _check_options(alpha, correction, min_effect)
    if any_dask(reference, current):
        from goldwatch.detectors.distributed import detect_drift as distributed_detect_drift

        return distributed_detect_drift(reference, current, test=test, alpha=alpha, correction=correction,
                                        min_effect=min_effect, nan_policy=nan_policy, threshold=threshold)
    floor = spec.recommended_min_effect if min_effect == "auto" else min_effect
    numeric = spec.kind == "numeric"
    ref = as_samples(reference, name="reference", numeric=numeric)
    cur = as_samples(current, name="current", numeric=numeric)
    check_pair(ref, cur)
    names = feature_names_of(reference, ref.shape[1])
    n_features = ref.shape[1]
    if not numeric:
        # categorical: a missing value is its own category, nothing is dropped
        result = spec.run(ref, cur, alpha=alpha, threshold=threshold)
        zeros = np.zeros(n_features, dtype=np.int64)
        result = _renamed(result, names)
        return finish_report(result, alpha=alpha, correction=correction, min_effect=floor,
                             n_dropped_reference=zeros, n_dropped_current=zeros)
    groups, dropped_ref, dropped_cur = finite_groups(ref, cur, nan_policy=nan_policy)
    stat = np.full(n_features, np.nan)
    pvalue: np.ndarray | None = None
    limit = np.nan
    for group in groups:
        part = spec.run(group.reference, group.current, alpha=alpha, threshold=threshold)
        stat[group.features] = part.statistic
        limit = part.threshold
        if part.pvalue is not None:
            if pvalue is None:
                pvalue = np.full(n_features, np.nan)
            pvalue[group.features] = part.pvalue
    combined = TestResult(
        test=spec.name, statistic=stat, pvalue=pvalue,
        drifted=np.zeros(n_features, dtype=bool), threshold=float(limit),
        threshold_kind="pvalue" if pvalue is not None else "statistic", feature_names=names,
    )
    return finish_report(combined, alpha=alpha, correction=correction, min_effect=floor,
                         n_dropped_reference=dropped_ref, n_dropped_current=dropped_cur)


def _renamed(result: TestResult, names: list[str]) -> TestResult:
    import dataclasses

    return dataclasses.replace(result, feature_names=names)
