"""``goldwatch demo``: the first command to run -- the whole story. ``goldwatch demo gate`` gates a good candidate
(exit 0) and a corrupted copy (caught, exit 1), writing all four reports for each; ``goldwatch demo sidecar`` starts
MLServer, the sidecar and a PagerDuty stand-in, corrupts the served model and prints how the sidecar heals it.
``goldwatch demo`` runs both, in that order."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from goldwatch.cli._common import EXIT_FAIL, EXIT_OK, guarded, state

_OUT = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("goldwatch-demo"),
                    show_default=True, help="Folder to write the models, golden sets, registry and reports into.")
_SEED = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the examples' data and training.")
_KIND = click.option("--kind", type=click.Choice(["tabular", "conv"]), default="tabular", show_default=True,
                     help="Example model of the gate demo: a tabular MLP classifier or a small CNN.")


def _say(msg: str) -> None:
    click.echo(f"goldwatch demo: {msg}", err=True)


def _gate(out: Path, kind: str, seed: int) -> bool:
    from goldwatch.watchdog.gate.demo import run_demo
    from goldwatch.watchdog.gate.runner import GateThresholds

    config = state().config
    thresholds = GateThresholds.from_config(config.gate, config.golden)
    result = run_demo(out, kind=kind, seed=seed, thresholds=thresholds, say=_say)
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
    return result.as_expected


def _pages(events: tuple[tuple[str, str], ...]) -> str:
    """PagerDuty's events grouped by incident: a second trigger with the same dedup_key updates the open incident
    (here it carries the rollback), it does not open another.

    >>> _pages((("trigger", "k"), ("trigger", "k"), ("resolve", "k")))
    'trigger k, trigger k (same incident, updated), resolve k -- 1 incident'
    >>> _pages(())
    'none'
    """
    if not events:
        return "none"
    seen: set[str] = set()
    words = []
    for action, key in events:
        again = action == "trigger" and key in seen
        seen.add(key)
        words.append(f"{action} {key}" + (" (same incident, updated)" if again else ""))
    return ", ".join(words) + f" -- {len(seen)} incident" + ("s" if len(seen) != 1 else "")


def _sidecar(out: Path, seed: int, *, number: int) -> bool:
    from goldwatch.watchdog.sidecar.demo import run_sidecar_demo

    click.echo("")
    click.echo(f"{number}. the sidecar heals a corrupted served model (MLServer + goldwatch serve + PagerDuty "
               "stand-in, all on 127.0.0.1)")

    def show(entry: object) -> None:
        click.echo(f"   t = {entry.t:6.2f} s  {entry.what}")  # type: ignore[attr-defined]

    result = run_sidecar_demo(out, seed=seed, say=_say, on_event=show)
    click.echo(f"   PagerDuty received: {_pages(result.pagerduty)}")
    if result.ttd_s is not None:
        click.echo(f"   time to detect: {result.ttd_s:.2f} s after the flip (files checked every 1 s in this demo)")
    if result.ttr_s is not None:
        inc = result.incident or {}
        click.echo(f"   time to recover: {result.ttr_s:.2f} s from detection to every check passing on the "
                   f"rolled-back version (RTO {inc.get('rto_s'):g} s: {'met' if inc.get('within_rto') else 'MISSED'})")
    click.echo(f"   sidecar stopped on SIGTERM in {result.exit_s:.2f} s; its journal, config and log are in "
               f"{result.out}/")
    for command in result.commands:
        click.echo(f"   try: {command}")
    click.echo("")
    if result.as_expected:
        click.echo("goldwatch demo: as designed -- the corruption was detected, rolled back, verified and resolved "
                   "without a human.")
    else:
        click.echo(f"goldwatch demo: UNEXPECTED outcome -- see {result.out}/sidecar.log", err=True)
    return result.as_expected


@click.group(invoke_without_command=True)
@_OUT
@_KIND
@_SEED
@click.pass_context
@guarded
def demo(ctx: click.Context, out: Path, kind: str, seed: int) -> None:
    """The whole story on embedded examples (nothing downloaded): the CI gate, then the sidecar healing a model.

    Exit 0 when everything behaved as designed, else 1. Run one part with `goldwatch demo gate` or
    `goldwatch demo sidecar`.
    """
    if ctx.invoked_subcommand is not None:
        return
    ok = _gate(out, kind, seed)
    ok = _sidecar(out / "sidecar", seed, number=3) and ok
    sys.exit(EXIT_OK if ok else EXIT_FAIL)


@demo.command("gate")
@_OUT
@_KIND
@_SEED
@guarded
def gate(out: Path, kind: str, seed: int) -> None:
    """The CI gate on a passing candidate and on a corrupted copy it catches (exit 0 when it behaves so)."""
    sys.exit(EXIT_OK if _gate(out, kind, seed) else EXIT_FAIL)


@demo.command("sidecar")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("goldwatch-demo/sidecar"),
              show_default=True, help="Folder for the registry, served files, config, journal and log.")
@_SEED
@guarded
def sidecar(out: Path, seed: int) -> None:
    """MLServer serving a model, the sidecar watching it, one bit flipped in the served file: the timeline of
    detection, rollback, reload, verification and resolution (exit 0 when it heals as designed)."""
    sys.exit(EXIT_OK if _sidecar(out, seed, number=1) else EXIT_FAIL)
