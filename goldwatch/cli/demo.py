"""``goldwatch demo``: the first command to run. Builds an example model, golden set and manifest, then gates a
good candidate (exit 0) and a corrupted copy (caught, exit 1), writing all four reports for each."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from goldwatch.cli._common import EXIT_FAIL, EXIT_OK, guarded, state


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("goldwatch-demo"),
              show_default=True, help="Folder to write the models, golden set, manifest and reports into.")
@click.option("--kind", type=click.Choice(["tabular", "conv"]), default="tabular", show_default=True,
              help="Example model: a tabular MLP classifier or a small CNN.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the example's data and training.")
@guarded
def demo(out: Path, kind: str, seed: int) -> None:
    """Run the CI gate on embedded defaults: a passing candidate and a corrupted copy it catches.

    Exit 0 when the demo behaved as designed (good candidate passed, corrupted copy failed), else 1.
    """
    from goldwatch.watchdog.gate.demo import run_demo
    from goldwatch.watchdog.gate.runner import GateThresholds

    config = state().config
    thresholds = GateThresholds.from_config(config.gate, config.golden)
    result = run_demo(out, kind=kind, seed=seed, thresholds=thresholds,
                      say=lambda msg: click.echo(f"goldwatch demo: {msg}", err=True))
    click.echo(f"goldwatch demo: everything is in {result.out}/")
    click.echo(f"  candidate  {result.candidate}  (ONNX, the version to promote)")
    click.echo(f"  baseline   {result.baseline}  (TorchScript, the same weights as served in production)")
    click.echo(f"  golden set {result.golden}/   manifest {result.manifest}")
    for i, run in enumerate(result.runs, 1):
        v = run.verdict
        title = ("a good candidate" if run.label == "candidate"
                 else f"a CORRUPTED copy: one flipped bit, {result.flipped}")
        click.echo("")
        click.echo(f"{i}. gate on {title}")
        click.echo(f"   {v.headline()}  -> exit code {v.exit_code}"
                   + ("  (expected: the gate caught it)" if run.expected == "fail" and v.verdict == "fail" else ""))
        for c in [c for c in v.checks if c.status in ("fail", "error")][:4]:
            click.echo(f"     {c.status.upper():5} {c.name}: {c.summary}")
        click.echo(f"   reports: {run.reports.html}  (open in a browser)")
        click.echo(f"            {run.reports.junit}, {run.reports.markdown}, {run.reports.json}")
        click.echo(f"   same as: {run.command}")
    click.echo("")
    if result.as_expected:
        click.echo("goldwatch demo: as designed -- the good candidate passed and the corrupted copy was stopped.")
    else:
        click.echo("goldwatch demo: UNEXPECTED outcome -- see the reports above.", err=True)
    sys.exit(EXIT_OK if result.as_expected else EXIT_FAIL)
