"""``goldwatch drift``: test a current window against a reference, every feature at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state

if TYPE_CHECKING:
    from goldwatch.detectors.results import DriftReport


@click.command()
@click.argument("reference")
@click.argument("current")
@click.option("--test", "test_name", default=None,
              help="Detector: ks, cvm, anderson, chi2, wasserstein, psi, js, hellinger, kl (each feature), or mmd "
                   "(whole rows: sees joint changes such as a flipped correlation) (default: config, ks).")
@click.option("--alpha", type=float, default=None, help="Significance level after correction (default: config, 0.05).")
@click.option("--correction", type=click.Choice(["bonferroni", "bh", "none"]), default=None,
              help="Multiple-testing correction across features (default: config, bonferroni).")
@click.option("--min-effect", type=str, default=None,
              help="Effect-size floor the statistic must also reach: a number, or 'auto' (the detector's floor).")
@click.option("--threshold", type=float, default=None, help="Distance detectors: drift above this value.")
@click.option("--key", default=None, metavar="NAME",
              help="Array to read from an .npz holding several (REFERENCE and CURRENT alike; other types ignore it).")
@click.option("--nan-policy", type=click.Choice(["raise", "omit"]), default=None,
              help="NaN/inf: refuse (raise) or drop per feature (omit; mmd drops whole rows) (default: config, raise).")
@click.option("--permutations", type=click.IntRange(min=1), default=200, show_default=True,
              help="mmd: permutations for the p-value.")
@click.option("--seed", type=int, default=0, show_default=True, help="mmd: seed of the permutations.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local:N",
              help="Run on a Dask cluster (tcp://HOST:PORT) or N local worker processes; exact counts there, "
                   "p-values here (default: $GOLDWATCH_DASK, then [dask] address; else in memory).")
@click.option("--strategy", type=click.Choice(["auto", "broadcast", "feature-blocks", "ranges"]), default=None,
              help="With Dask: how exact counts are gathered (default: config, auto).")
@json_option
@guarded
def drift(
    reference: str,
    current: str,
    test_name: str | None,
    alpha: float | None,
    correction: str | None,
    min_effect: str | None,
    threshold: float | None,
    nan_policy: str | None,
    key: str | None,
    permutations: int,
    seed: int,
    dask_address: str | None,
    strategy: str | None,
    as_json: bool,
) -> None:
    """Test CURRENT against REFERENCE (.npy, .npz, .csv or .parquet; rows are samples, columns features).

    A directory or a glob of Parquet (or CSV) files is read partition by partition (needs goldwatch[dask]); with
    --dask the work runs on a cluster, exactly. Exit 0: no drift; 1: drift in at least one feature; 2: bad input.
    """
    from goldwatch.cluster import resolve_cluster_spec

    config = state().config
    spec = resolve_cluster_spec(dask_address, config.dask.address)
    if spec is None:
        _drift(reference, current, test_name, alpha, correction, min_effect, threshold, nan_policy, key,
               permutations, seed, strategy, as_json, lazy=False, where=None)
        return
    from goldwatch.cluster import connect

    with connect(spec, memory_limit=config.dask.local_memory_limit, timeout_s=config.dask.connect_timeout_s) as client:
        _drift(reference, current, test_name, alpha, correction, min_effect, threshold, nan_policy, key,
               permutations, seed, strategy, as_json, lazy=True, where=str(client.scheduler.address))


def _drift(reference: str, current: str, test_name: str | None, alpha: float | None, correction: str | None,
           min_effect: str | None, threshold: float | None, nan_policy: str | None, key: str | None,
           permutations: int, seed: int, strategy: str | None, as_json: bool, *, lazy: bool,
           where: str | None) -> None:
    from goldwatch.detectors._backend import any_dask
    from goldwatch.detectors.drift import detect_drift
    from goldwatch.detectors.io import open_table
    from goldwatch.detectors.registry import available_detectors
    from goldwatch.errors import DataError, InvalidInputError

    config = state().config
    cfg = config.detectors
    floor: float | str | None
    if min_effect is None:
        floor = cfg.min_effect if cfg.min_effect is not None else ("auto" if cfg.auto_min_effect else None)
    elif min_effect == "auto":
        floor = "auto"
    else:
        try:
            floor = float(min_effect)
        except ValueError:
            raise DataError(f"expected a number or 'auto', got {min_effect!r}", where="--min-effect") from None
    test = test_name or cfg.test
    if test == "mmd":
        given = [flag for flag, value in (("--correction", correction), ("--min-effect", min_effect),
                                          ("--threshold", threshold)) if value is not None]
        if given:
            raise InvalidInputError(
                f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --test mmd",
                where="--test mmd",
                hint="mmd gives one permutation p-value for whole rows: set --alpha (and --permutations) instead",
            )
        ref_table, cur_table = open_table(reference, key=key), open_table(current, key=key)
        if any_dask(ref_table, cur_table):
            raise InvalidInputError("mmd compares whole rows in memory; it has no distributed implementation",
                                    where="--test mmd", hint="pass files (not directories or globs), or test per "
                                    "feature (ks, cvm, psi, ...) on the cluster")
        _mmd(ref_table, cur_table,
             alpha=alpha if alpha is not None else cfg.p_threshold, nan_policy=nan_policy or cfg.nan_policy,
             permutations=permutations, seed=seed, as_json=as_json)
        return
    if test not in available_detectors():
        raise InvalidInputError(
            f"unknown test {test!r}", where="--test", hint="use one of: " + ", ".join([*available_detectors(), "mmd"])
        )
    ref_table, cur_table = open_table(reference, key=key, lazy=lazy), open_table(current, key=key, lazy=lazy)
    options: dict[str, Any] = {}
    run: Callable[..., DriftReport] = detect_drift
    if any_dask(ref_table, cur_table):  # partition by partition, on the cluster (or dask's local scheduler)
        from goldwatch.detectors.distributed import detect_drift as run

        options["strategy"] = strategy or config.dask.strategy
    report = run(
        ref_table,
        cur_table,
        test=test,
        alpha=alpha if alpha is not None else cfg.p_threshold,
        correction=correction or cfg.correction,
        min_effect=floor,
        nan_policy=nan_policy or cfg.nan_policy,
        threshold=threshold if threshold is not None else cfg.threshold,
        **options,
    )
    if as_json:
        emit_json(report)
    else:
        checks = report.to_checks()
        for check in checks[:-1]:
            if check.status == "fail":
                click.echo(f"DRIFT  {check.name}: {check.summary}")
        ran = f" [{report.strategy}{' on ' + where if where else ''}]" if report.strategy else ""
        click.echo(f"{'DRIFT' if report.drifted else 'OK'}  {checks[-1].summary}{ran}")
    finish(not report.drifted)


def _mmd(reference: object, current: object, *, alpha: float, nan_policy: str, permutations: int, seed: int,
         as_json: bool) -> None:
    """The multivariate test: one verdict for whole rows (a permutation p-value; no per-feature correction)."""
    import numpy as np

    from goldwatch.detectors._validation import as_samples, check_pair
    from goldwatch.detectors.mmd import mmd_test
    from goldwatch.errors import DataError

    ref = as_samples(reference, name="reference", numeric=True)
    cur = as_samples(current, name="current", numeric=True)
    check_pair(ref, cur)
    dropped: dict[str, int] = {}
    usable: dict[str, np.ndarray] = {}
    for name, rows in (("reference", ref), ("current", cur)):
        finite = np.isfinite(rows).all(axis=1)
        bad = len(rows) - int(np.count_nonzero(finite))
        if bad and nan_policy == "raise":
            raise DataError(
                f"{bad} row(s) with NaN/inf", where=name,
                hint="clean the data, or pass --nan-policy omit to drop those rows",
            )
        if bad:
            dropped[name] = bad
        usable[name] = rows[finite] if bad else rows
    ref, cur = usable["reference"], usable["current"]
    for name, rows in usable.items():
        if len(rows) < 2:
            raise DataError(
                f"{len(rows)} usable row(s): a two-sample test needs at least 2 a side", where=name,
                hint="pass more rows" + (" or fewer with NaN/inf" if dropped else ""),
            )
    result = mmd_test(ref, cur, n_permutations=permutations, alpha=alpha, seed=seed)
    if as_json:
        emit_json({"test": "mmd", "drifted": result.drifted, "result": result, "dropped_rows": dropped})
    else:
        check = result.to_checks()[0]
        click.echo(f"{'DRIFT' if result.drifted else 'OK'}  {check.summary} "
                   f"({result.n_reference} vs {result.n_current} rows, {ref.shape[1]} features"
                   + (f"; dropped rows with NaN/inf: {dropped}" if dropped else "") + ")")
    finish(not result.drifted)
