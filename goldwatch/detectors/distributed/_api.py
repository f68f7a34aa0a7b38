"""The distributed entry points: plan a strategy, gather exact counts on the cluster, finish with in-memory code."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from goldwatch import progress
from goldwatch.detectors._validation import (
    NanPolicy,
    _compact,
    check_some_finite,
    nonfinite_error,
)
from goldwatch.detectors.distributed import _blocks, _grid, _ranges
from goldwatch.detectors.distributed._execution import ClusterInfo, cluster_info, compute, tree_sum
from goldwatch.detectors.distributed._inputs import Operand, as_operand, check_features
from goldwatch.detectors.results import DriftReport, TestResult
from goldwatch.errors import ClusterError, DataError

__all__ = [
    "STRATEGIES",
    "Plan",
    "chi2_test",
    "cramervonmises_2samp",
    "detect_drift",
    "histogram_distance",
    "ks_2samp",
    "plan_strategy",
    "summary_test",
    "to_local",
    "wasserstein",
]

Strategy = Literal["auto", "broadcast", "feature-blocks", "ranges"]
STRATEGIES = ("auto", "broadcast", "feature-blocks", "ranges")
BINNED = ("psi", "js", "hellinger", "kl")
# which strategies compute each test exactly (broadcast needs only counts against the reference; feature blocks
# need whole columns; ranges need the rank/ECDF structure that a range task can finish with offsets)
SUPPORTED: dict[str, tuple[str, ...]] = {
    "ks": ("broadcast", "feature-blocks", "ranges"),
    "cvm": ("feature-blocks", "ranges"),
    "anderson": ("feature-blocks",),
    "wasserstein": ("feature-blocks",),
    "wasserstein_raw": ("feature-blocks",),
    **{name: ("broadcast",) for name in BINNED},
}
# bytes of working set per pooled float64 value when a worker merges whole columns (the merge's arrays)
_MERGE_BYTES_PER_VALUE = 128


@dataclasses.dataclass(frozen=True)
class Plan:
    """The strategy chosen for one run, and why."""

    name: str
    reason: str
    cluster: ClusterInfo
    blocks: int = 0  # feature-blocks: features per block; ranges: number of value ranges

    @property
    def label(self) -> str:
        return f"dask:{self.name}"


def _rows(op: Operand) -> int:
    """The row count of a side (a cheap pass over partition lengths when the metadata does not have it)."""
    if op.n_rows is not None:
        return op.n_rows
    n = int(compute(op.collection.shape[0] if hasattr(op.collection, "shape") else len(op.collection),
                    what=f"counting the rows of {op.name}")[0])
    if n == 0:
        raise DataError("expected at least 1 sample, got 0 rows", where=op.name, hint="pass a non-empty window")
    return n


def plan_strategy(test: str, reference: Operand, current: Operand, requested: str = "auto") -> Plan:
    """Pick the cheapest exact strategy for ``test`` that fits the workers' memory (or check the requested one).

    broadcast: the reference (its distinct values) fits comfortably in a worker -- the common case. feature-blocks:
    one feature's two samples fit in a worker. ranges: neither; every value moves once to its value range's task.
    """
    if requested not in STRATEGIES:
        raise DataError(f"expected one of {', '.join(STRATEGIES)}, got {requested!r}", where="strategy")
    supported = SUPPORTED.get(test)
    if supported is None:
        raise DataError(f"test {test!r} has no distributed implementation", where="test",
                        hint="use one of: " + ", ".join(sorted({*SUPPORTED, 'chi2'} - {'wasserstein_raw'})))
    info = cluster_info()
    if requested != "auto":
        if requested not in supported:
            raise DataError(f"test {test!r} cannot run exactly with strategy {requested!r}", where="strategy",
                            hint="use one of: " + ", ".join(supported))
        n = _rows(reference) + _rows(current) if requested != "broadcast" else 0
        return Plan(requested, "requested", info, _plan_size(requested, reference.n_features, n, info))
    budget = info.worker_memory
    n1 = _rows(reference)
    ref_bytes = n1 * reference.n_features * 8
    if "broadcast" in supported and ref_bytes <= budget // 8:
        return Plan("broadcast", f"reference ({ref_bytes / 2**20:.0f} MiB) fits in a worker: counts only", info)
    if supported == ("broadcast",):
        raise DataError(
            f"the reference ({ref_bytes / 2**20:.0f} MiB) is too large to broadcast to workers of "
            f"{budget / 2**20:.0f} MiB, and {test} needs its quantile edges",
            where="reference", hint="use a smaller reference sample (e.g. a uniform sample of it), or test 'ks'",
        )
    n = n1 + _rows(current)
    if "feature-blocks" in supported and n * _MERGE_BYTES_PER_VALUE <= budget // 2:
        return Plan("feature-blocks", f"one feature's {n} values fit in a worker", info,
                    _plan_size("feature-blocks", reference.n_features, n, info))
    if "ranges" in supported:
        return Plan("ranges", f"{n} values per feature exceed a worker: range partitioning", info,
                    _plan_size("ranges", reference.n_features, n, info))
    raise DataError(
        f"{test} needs every value of a feature on one worker, and {n} values do not fit in "
        f"{budget / 2**20:.0f} MiB", where="test", hint="use 'ks' or 'cvm' (range-partitioned), or larger workers",
    )


def _plan_size(name: str, n_features: int, n: int, info: ClusterInfo) -> int:
    per_feature = max(n, 1) * _MERGE_BYTES_PER_VALUE
    if name == "feature-blocks":
        fit = max(1, (info.worker_memory // 2) // per_feature)
        spread = max(1, -(-n_features // info.n_workers))  # every worker gets a block
        return int(min(fit, spread, n_features))
    if name == "ranges":
        need = -(-(per_feature * n_features) // max(info.worker_memory // 2, 1))
        return int(max(need, 2 * info.n_workers, 2))
    return 0


# ------------------------------------------------------------------------------------------------ the strategies


@dataclasses.dataclass(frozen=True)
class Gathered:
    """Exact per-feature results of one strategy: the statistic's sufficient number (KS D, CvM U, or the
    detector's own statistic and p-value), finite counts and dropped (non-finite) counts of each side."""

    statistic: np.ndarray
    pvalue: np.ndarray | None
    n_ref: np.ndarray
    n_cur: np.ndarray
    dropped_ref: np.ndarray
    dropped_cur: np.ndarray
    plan: Plan


def to_local(op: Operand) -> np.ndarray:
    """The whole side as one in-memory float64 array, read chunk by chunk (for a reference that is broadcast)."""
    if op.local is not None:
        return op.local
    from goldwatch.detectors.distributed._inputs import as_block

    blocks = compute(*op.chunks, what=f"reading {op.name}")
    arr = np.concatenate([as_block(b) for b in blocks], axis=0) if blocks else np.empty((0, op.n_features))
    if arr.shape[0] == 0:
        raise DataError("expected at least 1 sample, got 0 rows", where=op.name, hint="pass a non-empty window")
    return arr


def _share(obj: Any) -> Any:
    """Ship ``obj`` to every worker once (a scattered future), or a single graph node without a cluster."""
    from goldwatch.detectors.distributed._execution import active_client

    client = active_client()
    if client is not None:
        return client.scatter(obj, broadcast=True, hash=False)
    import dask

    return dask.delayed(obj, pure=True)


def _current_chunks(op: Operand) -> tuple[Any, ...]:
    if op.local is not None:
        import dask.array as da

        arr = da.from_array(op.local, chunks=(max(1, min(len(op.local), 1 << 18)), -1))
        return tuple(arr.to_delayed().ravel())
    return op.chunks


def _check_rows(op: Operand, counted: int) -> None:
    if counted == 0:
        raise DataError("expected at least 1 sample, got 0 rows", where=op.name, hint="pass a non-empty window")
    if op.n_rows is not None and counted != op.n_rows:
        raise ClusterError(f"counted {counted} rows of {op.name}, expected {op.n_rows}",
                           hint="a chunk was lost or counted twice; run again -- no partial result was returned")


def _broadcast_ks(ref: np.ndarray, current: Operand, plan: Plan) -> Gathered:
    import dask

    grid = _grid.ReferenceGrid.from_array(ref)
    shared = _share(grid.values)
    parts = [dask.delayed(_grid.count_chunk, pure=True)(chunk, shared) for chunk in _current_chunks(current)]
    (counts,) = compute(tree_sum(parts, _grid.add_counts), what="counting current chunks against the reference")
    _check_rows(current, counts.n_rows)
    stat = _grid.ks_statistic_from_counts(grid, counts)
    return Gathered(stat, None, grid.n_finite, counts.n_finite, grid.n_nonfinite, counts.n_rows - counts.n_finite,
                    plan)


def _finite_edges(ref: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior edges (bins - 1, F) and reference probabilities (F, bins) from each feature's finite values, as
    detect_drift computes them per group of features with equal finite counts."""
    from goldwatch.detectors.distances import bin_edges, histograms

    finite = np.isfinite(ref)
    n_finite = np.count_nonzero(finite, axis=0)
    if finite.all():
        edges = bin_edges(ref, bins=bins)
        return edges, histograms(ref, edges), n_finite
    edges = np.empty((bins - 1, ref.shape[1]))
    hist = np.empty((ref.shape[1], bins))
    for n in np.unique(n_finite):  # groups of features with equal finite counts (usually one)
        cols = np.flatnonzero(n_finite == n)
        if n == 0:
            edges[:, cols] = np.nan
            hist[cols] = np.nan
            continue
        values = _compact(ref[:, cols], int(n))
        edges[:, cols] = bin_edges(values, bins=bins)
        hist[cols] = histograms(values, edges[:, cols])
    return edges, hist, n_finite


def _broadcast_histograms(
    ref: np.ndarray, current: Operand, plan: Plan, *, bins: int, test: str,
    edges: np.ndarray | None = None, ref_hist: np.ndarray | None = None,
) -> Gathered:
    import dask

    from goldwatch.detectors.reference import _BINNED

    if bins < 2:
        raise DataError(f"expected at least 2 bins, got {bins}", where="bins")
    n_ref = np.count_nonzero(np.isfinite(ref), axis=0)
    if edges is None or ref_hist is None:
        edges, ref_hist, n_ref = _finite_edges(ref, bins)
    shared = _share(edges)
    parts = [dask.delayed(_grid.histogram_chunk, pure=True)(chunk, shared) for chunk in _current_chunks(current)]
    (counts,) = compute(tree_sum(parts, _grid.add_histograms), what="counting current chunks into bins")
    _check_rows(current, counts.n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        cur_hist = _grid.probabilities(counts.le, counts.n_finite)
        stat = _BINNED[test](ref_hist, cur_hist)
    return Gathered(stat, None, n_ref, counts.n_finite, ref.shape[0] - n_ref, counts.n_rows - counts.n_finite, plan)


def _feature_blocks(test: str, reference: Operand, current: Operand, plan: Plan) -> Gathered:
    import dask

    ref_arr = reference.to_dask_array()
    cur_arr = current.to_dask_array()
    width = max(1, plan.blocks)
    ref_cols = ref_arr.rechunk({0: -1, 1: width}).to_delayed().ravel()
    cur_cols = cur_arr.rechunk({0: -1, 1: width}).to_delayed().ravel()
    parts = [dask.delayed(_blocks.block_statistics, pure=True)(test, a, b) for a, b in zip(ref_cols, cur_cols)]
    results = compute(*parts, what=f"{test} on feature blocks")
    stat = np.concatenate([r.statistic for r in results])
    pvalue = None if results[0].pvalue is None else np.concatenate([r.pvalue for r in results])
    n_ref = np.concatenate([r.n_ref for r in results])
    n_cur = np.concatenate([r.n_cur for r in results])
    return Gathered(stat, pvalue, n_ref, n_cur, ref_arr.shape[0] - n_ref, cur_arr.shape[0] - n_cur, plan)


def _ranges_run(test: str, reference: Operand, current: Operand, plan: Plan) -> Gathered:
    import dask

    ref_chunks, cur_chunks = _current_chunks(reference), _current_chunks(current)
    samples = compute(*[dask.delayed(_ranges.sample_chunk, pure=True)(c) for c in (*ref_chunks, *cur_chunks)],
                      what="sampling splitters")
    splitters = _ranges.pick_splitters(list(samples), max(plan.blocks, 1))
    shared = _share(splitters)
    n_ranges = splitters.shape[1] + 1
    ref_split = [dask.delayed(_ranges.split_chunk, pure=True)(c, shared) for c in ref_chunks]
    cur_split = [dask.delayed(_ranges.split_chunk, pure=True)(c, shared) for c in cur_chunks]
    # one graph: the finite totals (n1, n2) are summed from the splits and fed to every range task, which needs
    # them for its exact KS extremes; nothing is computed twice
    n1 = tree_sum([dask.delayed(_ranges.finite_of, pure=True)(s) for s in ref_split], _sum)
    n2 = tree_sum([dask.delayed(_ranges.finite_of, pure=True)(s) for s in cur_split], _sum)
    r1 = tree_sum([dask.delayed(_ranges.rows_of, pure=True)(s) for s in ref_split], _sum)
    r2 = tree_sum([dask.delayed(_ranges.rows_of, pure=True)(s) for s in cur_split], _sum)
    tasks = []
    for r in range(n_ranges):  # one task per value range
        pieces = [dask.delayed(_ranges.piece_of, pure=True)(s, r) for s in (*ref_split, *cur_split)]
        tasks.append(dask.delayed(_ranges.range_statistics, pure=True)(n1, n2, test == "cvm", len(ref_split),
                                                                        *pieces))
    n1, n2, r1, r2, *results = compute(n1, n2, r1, r2, *tasks, what=f"{test} on value ranges")
    _check_rows(reference, int(r1))
    _check_rows(current, int(r2))
    got1 = sum(res.n_ref for res in results)
    got2 = sum(res.n_cur for res in results)
    if not (np.array_equal(got1, n1) and np.array_equal(got2, n2)):
        raise ClusterError("the value ranges do not add up to the samples",
                           hint="a chunk was lost or counted twice; run again -- no partial result was returned")
    stat = _ranges.cvm_u_from_ranges(results, n1, n2) if test == "cvm" else _ranges.ks_from_ranges(results, n1, n2)
    return Gathered(stat, None, n1, n2, int(r1) - n1, int(r2) - n2, plan)


def _sum(*parts: Any) -> Any:
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def gather(test: str, reference: Operand, current: Operand, *, strategy: str = "auto", bins: int = 10) -> Gathered:
    """Run ``test``'s exact counting on the cluster with the planned strategy."""
    check_features(reference, current)
    plan = plan_strategy(test, reference, current, strategy)
    if plan.name == "broadcast":
        ref = to_local(reference)
        if test in BINNED:
            return _broadcast_histograms(ref, current, plan, bins=bins, test=test)
        return _broadcast_ks(ref, current, plan)
    if plan.name == "feature-blocks":
        return _feature_blocks(test, reference, current, plan)
    return _ranges_run(test, reference, current, plan)


# ------------------------------------------------------------------------------------------------ p-values


def _pvalues(test: str, g: Gathered, *, method: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(statistic as reported, p-value, method) per feature, by groups of equal (n1, n2) -- the in-memory code."""
    if test not in ("ks", "cvm"):
        return g.statistic, g.pvalue, ""
    from goldwatch.detectors.cvm import cvm_from_u
    from goldwatch.detectors.ks import ks_pvalue

    stat = np.full(g.statistic.shape, np.nan)
    pvalue = np.full(g.statistic.shape, np.nan)
    methods = set()
    pairs = np.stack([g.n_ref, g.n_cur], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    for k, (n1, n2) in enumerate(uniq):  # one group per distinct pair of finite counts (usually one)
        cols = np.flatnonzero(inverse.reshape(-1) == k)
        if n1 == 0 or n2 == 0:
            continue
        if test == "ks":
            p, s, used = ks_pvalue(g.statistic[cols], int(n1), int(n2), method=method)  # type: ignore[arg-type]
        else:
            if n1 < 2 or n2 < 2:
                raise DataError(f"expected at least 2 finite samples per side, got {n1} and {n2}",
                                where="cramervonmises_2samp", hint="pass more rows")
            s, p, used = cvm_from_u(g.statistic[cols], int(n1), int(n2), method=method)  # type: ignore[arg-type]
        stat[cols], pvalue[cols] = s, p
        methods.add(used)
    return stat, pvalue, "+".join(sorted(methods))


def _refuse_nonfinite(g: Gathered, where: str) -> None:
    if g.dropped_ref.any() or g.dropped_cur.any():
        raise DataError("NaN or inf in the input", where=where, hint="use detect_drift(..., nan_policy='omit')")


def _result(test: str, g: Gathered, names: list[str], stat: np.ndarray, pvalue: np.ndarray | None, *,
            alpha: float, threshold: float | None, method: str) -> TestResult:
    if pvalue is not None:
        drifted = ~(pvalue >= alpha)
        limit, kind = alpha, "pvalue"
    else:
        limit = float(threshold if threshold is not None else np.inf)
        drifted = stat > limit
        kind = "statistic"
    return TestResult(test=test, statistic=stat, pvalue=pvalue, drifted=drifted, threshold=limit,
                      threshold_kind=kind, feature_names=names, method=method,  # type: ignore[arg-type]
                      n_reference=g.n_ref, n_current=g.n_cur, strategy=g.plan.label)


def ks_2samp(reference: Any, current: Any, *, method: str = "auto", alpha: float = 0.05,
             strategy: str = "auto") -> TestResult:
    """:func:`goldwatch.detectors.ks_2samp` for dask inputs: exact counts on the cluster, scipy's p-value here."""
    ref, cur = as_operand(reference, name="reference"), as_operand(current, name="current")
    g = gather("ks", ref, cur, strategy=strategy)
    _refuse_nonfinite(g, "ks_2samp")
    stat, pvalue, used = _pvalues("ks", g, method=method)
    return _result("ks", g, ref.feature_names, stat, pvalue, alpha=alpha, threshold=None, method=used)


def cramervonmises_2samp(reference: Any, current: Any, *, method: str = "auto", alpha: float = 0.05,
                         strategy: str = "auto") -> TestResult:
    """:func:`goldwatch.detectors.cramervonmises_2samp` for dask inputs (feature blocks, or value ranges)."""
    ref, cur = as_operand(reference, name="reference"), as_operand(current, name="current")
    g = gather("cvm", ref, cur, strategy=strategy)
    _refuse_nonfinite(g, "cramervonmises_2samp")
    stat, pvalue, used = _pvalues("cvm", g, method=method)
    return _result("cvm", g, ref.feature_names, stat, pvalue, alpha=alpha, threshold=None, method=used)


def histogram_distance(test: str, reference: Any, current: Any, *, bins: int = 10,
                       threshold: float | None = None) -> TestResult:
    """PSI, Jensen-Shannon, Hellinger or KL on reference-quantile bins: current chunks counted per bin."""
    from goldwatch.detectors.distances import DEFAULT_THRESHOLDS

    if test not in BINNED:
        raise DataError(f"expected one of {', '.join(BINNED)}, got {test!r}", where="test")
    ref, cur = as_operand(reference, name="reference"), as_operand(current, name="current")
    g = gather(test, ref, cur, bins=bins)
    _refuse_nonfinite(g, {"js": "jensen_shannon", "kl": "kl_divergence"}.get(test, test))
    limit = DEFAULT_THRESHOLDS[test] if threshold is None else threshold
    return _result(test, g, ref.feature_names, g.statistic, None, alpha=0.05, threshold=limit, method="")


def wasserstein(reference: Any, current: Any, *, normed: bool = False, threshold: float | None = None,
                strategy: str = "auto") -> TestResult:
    """Wasserstein-1 per feature in feature blocks (each block runs the in-memory code)."""
    from goldwatch.detectors.distances import DEFAULT_THRESHOLDS

    ref, cur = as_operand(reference, name="reference"), as_operand(current, name="current")
    g = gather("wasserstein" if normed else "wasserstein_raw", ref, cur, strategy=strategy)
    _refuse_nonfinite(g, "wasserstein")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS["wasserstein"] if normed else np.inf
    res = _result("wasserstein_normed" if normed else "wasserstein", g, ref.feature_names, g.statistic, None,
                  alpha=0.05, threshold=threshold, method="")
    return res


@progress.stage(lambda *_, test="ks", **__: f"drift test ({test}) on Dask")
def detect_drift(
    reference: Any,
    current: Any,
    *,
    test: str = "ks",
    alpha: float = 0.05,
    correction: str = "bonferroni",
    min_effect: float | str | None = None,
    nan_policy: NanPolicy = "raise",
    threshold: float | None = None,
    strategy: str = "auto",
    bins: int = 10,
) -> DriftReport:
    """:func:`goldwatch.detectors.detect_drift` for dask inputs: the same report, plus the strategy used."""
    from goldwatch.detectors.drift import _check_options, finish_report
    from goldwatch.detectors.registry import get_detector

    spec = get_detector(test)
    _check_options(alpha, correction, min_effect)
    if nan_policy not in ("raise", "omit"):
        raise DataError(f"expected 'raise' or 'omit', got {nan_policy!r}", where="nan_policy")
    floor = spec.recommended_min_effect if min_effect == "auto" else min_effect
    if spec.kind != "numeric":
        result = chi2_test(reference, current, alpha=alpha).result
        zeros = np.zeros(len(result.feature_names), dtype=np.int64)
        return finish_report(result, alpha=alpha, correction=correction, min_effect=floor,  # type: ignore[arg-type]
                             n_dropped_reference=zeros, n_dropped_current=zeros)
    ref, cur = as_operand(reference, name="reference"), as_operand(current, name="current")
    g = gather(test, ref, cur, strategy=strategy, bins=bins)
    if nan_policy == "raise" and (g.dropped_ref.any() or g.dropped_cur.any()):
        raise nonfinite_error(g.dropped_ref, g.dropped_cur)
    check_some_finite(g.n_ref, g.n_cur)
    stat, pvalue, used = _pvalues(test, g, method="auto")
    limit = threshold
    if pvalue is None and limit is None:
        limit = spec.default_threshold
    combined = _result(spec.name, g, ref.feature_names, stat, pvalue, alpha=alpha, threshold=limit, method=used)
    return finish_report(combined, alpha=alpha, correction=correction, min_effect=floor,  # type: ignore[arg-type]
                         n_dropped_reference=g.dropped_ref, n_dropped_current=g.dropped_cur)


def chi2_test(reference: Any, current: Any, *, alpha: float = 0.05) -> Any:
    """:func:`goldwatch.detectors.chi2_test` for dask inputs: category counts per chunk, summed."""
    from goldwatch.detectors.distributed._categorical import chi2_counts

    return chi2_counts(reference, current, alpha=alpha)


def summary_test(
    summary: Any,
    current: Any,
    *,
    test: str = "ks",
    alpha: float = 0.05,
    correction: str = "bonferroni",
    min_effect: float | str | None = None,
    nan_policy: NanPolicy = "raise",
    threshold: float | None = None,
    strategy: str = "auto",
) -> DriftReport:
    """:meth:`ReferenceSummary.test` for a dask ``current``: the summary's sorted values are the broadcast grid,
    its edges and histogram the bins (nothing about the reference is recomputed)."""
    from goldwatch.detectors.drift import _check_options, finish_report
    from goldwatch.detectors.registry import get_detector

    spec = get_detector(test)
    if spec.kind != "numeric":
        raise DataError(f"a reference summary holds numeric features; {test!r} is categorical", where="test",
                        hint="use detect_drift on the raw categorical data")
    _check_options(alpha, correction, min_effect)
    floor = spec.recommended_min_effect if min_effect == "auto" else min_effect
    cur = as_operand(current, name="current")
    ref = Operand(name="reference", feature_names=list(summary.feature_names), n_features=summary.n_features,
                  n_rows=int(summary.sorted_values.shape[0]), local=summary.sorted_values)
    check_features(ref, cur)
    ref_clean = bool((summary.n_finite == summary.sorted_values.shape[0]).all())
    if test == "ks" or (test in BINNED and ref_clean):
        plan = plan_strategy(test, ref, cur, "broadcast" if strategy == "auto" else strategy)
        if plan.name != "broadcast":
            g = gather(test, ref, cur, strategy=plan.name)
        elif test == "ks":
            g = _broadcast_ks(summary.sorted_values, cur, plan)
        else:
            g = _broadcast_histograms(summary.sorted_values, cur, plan, bins=summary.histogram.shape[1], test=test,
                                      edges=summary.edges, ref_hist=summary.histogram)
    else:
        g = gather(test, ref, cur, strategy=strategy, bins=summary.histogram.shape[1])
    if g.dropped_cur.any() and nan_policy == "raise":
        raise DataError(f"current has {int(g.dropped_cur.sum())} non-finite value(s) (NaN/inf)",
                        where="nan_policy='raise'", hint="clean the data, or pass nan_policy='omit'")
    if test in BINNED and ref_clean and g.dropped_cur.any():
        # in memory, a current with NaN takes detect_drift's path: reference probabilities from its finite values
        g = _broadcast_histograms(summary.sorted_values, cur, g.plan, bins=summary.histogram.shape[1], test=test)
    check_some_finite(g.n_ref, g.n_cur)
    stat, pvalue, used = _pvalues(test, g, method="auto")
    limit = threshold
    if pvalue is None and limit is None:
        limit = spec.default_threshold
    result = _result(spec.name, g, list(summary.feature_names), stat, pvalue, alpha=alpha, threshold=limit,
                     method=used)
    # the reference's NaN (a summary fitted with nan_policy="omit") are reported as dropped, as in memory
    return finish_report(result, alpha=alpha, correction=correction, min_effect=floor,  # type: ignore[arg-type]
                         n_dropped_reference=np.asarray(g.dropped_ref, dtype=np.int64),
                         n_dropped_current=g.dropped_cur)


def fit_summary(cls: Any, reference: Any, **options: Any) -> Any:
    """:meth:`ReferenceSummary.fit` of a dask reference: read it chunk by chunk, then the in-memory fit (a summary
    holds the sorted reference, so it lives in memory by design)."""
    op = as_operand(reference, name="reference")
    names = options.pop("feature_names", None)
    return cls.fit(to_local(op), feature_names=names if names is not None else op.feature_names, **options)
