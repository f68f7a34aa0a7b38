"""``goldwatch drift``: test a current window against a reference, every feature at once."""

from __future__ import annotations

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state


@click.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("current", type=click.Path(dir_okay=False))
@click.option("--test", "test_name", default=None,
              help="Detector: ks, cvm, anderson, chi2, wasserstein, psi, js, hellinger, kl (default: config, ks).")
@click.option("--alpha", type=float, default=None, help="Significance level after correction (default: config, 0.05).")
@click.option("--correction", type=click.Choice(["bonferroni", "bh", "none"]), default=None,
              help="Multiple-testing correction across features (default: config, bonferroni).")
@click.option("--min-effect", type=str, default=None,
              help="Effect-size floor the statistic must also reach: a number, or 'auto' (the detector's floor).")
@click.option("--threshold", type=float, default=None, help="Distance detectors: drift above this value.")
@click.option("--key", default=None, metavar="NAME",
              help="Array to read from an .npz holding several (REFERENCE and CURRENT alike; other types ignore it).")
@click.option("--nan-policy", type=click.Choice(["raise", "omit"]), default=None,
              help="NaN/inf: refuse (raise) or drop per feature (omit) (default: config, raise).")
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
    as_json: bool,
) -> None:
    """Test CURRENT against REFERENCE (.npy, .npz, .csv or .parquet; rows are samples, columns features).

    Exit 0: no drift; 1: drift in at least one feature; 2: bad input.
    """
    from goldwatch.detectors.drift import detect_drift
    from goldwatch.detectors.io import load_table
    from goldwatch.errors import DataError

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
    report = detect_drift(
        load_table(reference, key=key),
        load_table(current, key=key),
        test=test_name or cfg.test,
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
