"""``goldwatch drift``: test a current window against a reference, every feature at once."""

from __future__ import annotations

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state


@click.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("current", type=click.Path(dir_okay=False))
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
    as_json: bool,
) -> None:
    """Test CURRENT against REFERENCE (.npy, .npz, .csv or .parquet; rows are samples, columns features).

    Exit 0: no drift; 1: drift in at least one feature; 2: bad input.
    """
    from goldwatch.detectors.drift import detect_drift
    from goldwatch.detectors.io import load_table
    from goldwatch.detectors.registry import available_detectors
    from goldwatch.errors import DataError, InvalidInputError

    cfg = state().config.detectors
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
        _mmd(load_table(reference, key=key), load_table(current, key=key),
             alpha=alpha if alpha is not None else cfg.p_threshold, nan_policy=nan_policy or cfg.nan_policy,
             permutations=permutations, seed=seed, as_json=as_json)
        return
    if test not in available_detectors():
        raise InvalidInputError(
            f"unknown test {test!r}", where="--test", hint="use one of: " + ", ".join([*available_detectors(), "mmd"])
        )
    report = detect_drift(
        load_table(reference, key=key),
        load_table(current, key=key),
        test=test,
        alpha=alpha if alpha is not None else cfg.p_threshold,
        correction=correction or cfg.correction,  # type: ignore[arg-type]
        min_effect=floor,  # type: ignore[arg-type]
        nan_policy=nan_policy or cfg.nan_policy,  # type: ignore[arg-type]
        threshold=threshold if threshold is not None else cfg.threshold,
    )
    if as_json:
        emit_json(report)
    else:
        checks = report.to_checks()
        for check in checks[:-1]:
            if check.status == "fail":
                click.echo(f"DRIFT  {check.name}: {check.summary}")
        click.echo(f"{'DRIFT' if report.drifted else 'OK'}  {checks[-1].summary}")
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
