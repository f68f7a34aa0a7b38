"""``goldwatch gate``: the CI gate before promotion. Exit 0 pass, 1 a check failed, 2 the gate could not run.

Reports: ``--junit`` (CI test view), ``--markdown`` (e.g. append to ``$GITHUB_STEP_SUMMARY``), ``--verdict`` (the
JSON verdict, schema in docs/gate.md; ``--json`` prints it on stdout) and ``--html`` (self-contained, with plots).
When the gate cannot run, the reports that can be written still are, recording the error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from goldwatch.cli._common import EXIT_ERROR, guarded, state
from goldwatch.cli._grammar import JsonOrLegacyFile, deprecated_alias

if TYPE_CHECKING:  # the gate's modules are imported inside the command, keeping `goldwatch --help` fast
    from goldwatch.watchdog.gate.reports import ReportPaths
    from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["gate"]

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--candidate", required=True, metavar="MODEL",
              help="Model to gate: .onnx, .pt, .pt2, a goldwatch-model.json folder or an OIP v2 URL.")
@click.option("--golden", "golden", multiple=True, required=True, metavar="DIR",
              help="Golden set folder to replay (repeatable); DIR@sha256:HEX also pins its digest.")
@click.option("--baseline", metavar="MODEL", help="Model to compare with (e.g. the one in production).")
@click.option("--baseline-registry", metavar="NAME",
              help="Compare with NAME's newest known-good version in the registry.")
@click.option("--registry-root", "registry_root", type=click.Path(file_okay=False, path_type=Path),
              envvar="GOLDWATCH_REGISTRY_ROOT", help="Registry directory (default: registry.root from the config).")
@deprecated_alias("--registry", target="registry_root", replacement="--registry-root DIR",
                  type=click.Path(file_okay=False, path_type=Path))
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Integrity manifest to verify the candidate's bytes against.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "all"]), default="cpu", show_default=True,
              help="all: CPU, plus CUDA and CPU/CUDA agreement when a GPU is present.")
@click.option("--junit", type=_PATH, help="Write JUnit XML here.")
@click.option("--markdown", type=_PATH, help="Write a Markdown summary here.")
@click.option("--verdict", "verdict_path", type=_PATH, help="Write the JSON verdict here (schema in docs/gate.md).")
@click.option("--json", "json_path", cls=JsonOrLegacyFile, replacement="--verdict", legacy_type=_PATH,
              help="Print the JSON verdict on stdout (the human summary then goes to stderr).")
@click.option("--html", type=_PATH, help="Write the self-contained HTML report here.")
@click.option("--evidently", is_flag=True,
              help="Embed an Evidently drift report of the outputs in the HTML (needs goldwatch[reports]).")
@click.option("--promote", is_flag=True, help="On pass, register the candidate and promote it to known-good.")
@click.option("--model-name", metavar="NAME", help="Registry model name for --promote (default: --baseline-registry).")
@click.option("--min-top1-agreement", type=click.FloatRange(0, 1), help="Candidate vs baseline top-1 agreement.")
@click.option("--metric-min-absolute-change", type=float, help="Required metric gain over the baseline (abs).")
@click.option("--metric-min-relative-change", type=float, help="Required metric gain over the baseline (fraction).")
@click.option("--drift-p-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Significance level of the output drift test.")
@click.option("--latency-budget-ms-p50", type=click.FloatRange(0, min_open=True), help="p50 budget per batch.")
@click.option("--latency-budget-ms-p95", type=click.FloatRange(0, min_open=True), help="p95 budget per batch.")
@click.option("--latency-repeats", type=click.IntRange(1, 10000), help="Timed batches per device.")
@click.option("--drift-min-effect", type=click.FloatRange(0), help="Effect floor of output drift, as a fraction of "
              "the output's scale (its std): smaller shifts are reported, never failed.")
@click.option("--min-baseline-cosine", type=click.FloatRange(-1, 1),
              help="Embeddings: min per-sample cosine of candidate vs baseline.")
@click.option("--output-map", "output_map", multiple=True, metavar="MODEL_OUTPUT=GOLDEN_OUTPUT",
              help="The model output that answers for a golden output of another name (repeatable; candidate and "
                   "baseline). A single-output model needs none: it is matched by position.")
@guarded
def gate(
    candidate: str, golden: tuple[str, ...], baseline: str | None, baseline_registry: str | None,
    registry_root: Path | None, manifest: Path | None, device: str, junit: Path | None, markdown: Path | None,
    verdict_path: Path | None, json_path: str | Path | None, html: Path | None, evidently: bool, promote: bool,
    model_name: str | None,
    min_top1_agreement: float | None, metric_min_absolute_change: float | None,
    metric_min_relative_change: float | None, drift_p_threshold: float | None,
    latency_budget_ms_p50: float | None, latency_budget_ms_p95: float | None, latency_repeats: int | None,
    drift_min_effect: float | None, min_baseline_cosine: float | None, output_map: tuple[str, ...],
) -> None:
    """Gate a model version before promotion: verify, replay golden sets, compare with the baseline.

    Exit codes: 0 pass, 1 a check failed, 2 the gate could not run (the reports still say why).
    """
    from goldwatch.watchdog.gate.reports import ReportPaths, write_reports
    from goldwatch.watchdog.gate.runner import GateThresholds, run_gate
    from goldwatch.watchdog.gate.verdict import ErrorInfo, GateVerdict, ModelRef

    config = state().config
    thresholds = GateThresholds.from_config(
        config.gate, min_top1_agreement=min_top1_agreement, metric_min_absolute_change=metric_min_absolute_change,
        metric_min_relative_change=metric_min_relative_change, drift_p_threshold=drift_p_threshold,
        latency_budget_ms_p50=latency_budget_ms_p50, latency_budget_ms_p95=latency_budget_ms_p95,
        latency_repeats=latency_repeats, drift_min_effect=drift_min_effect, min_baseline_cosine=min_baseline_cosine,
    )
    from goldwatch.cli.golden import output_map_option

    outputs = output_map_option(output_map)
    to_stdout = json_path == "-"
    if json_path not in (None, "-") and verdict_path is None:  # the deprecated `--json FILE`
        verdict_path = Path(json_path)
    paths = ReportPaths(junit=junit, markdown=markdown, json=verdict_path, html=html)
    problems = paths.problems()
    if problems:
        # Do no work, but record the error in every report that can be written, so the CI job shows why.
        _kind, err = problems[0]
        verdict = GateVerdict.from_checks([], error=ErrorInfo.from_exception(err), candidate=ModelRef(candidate),
                                          golden_sets=list(golden))
        write_reports(verdict, paths, skip=frozenset(k for k, _ in problems))
        raise err
    from goldwatch.watchdog.gate.evidently_report import OutputCollector, drift_report_html

    if evidently and html is None:
        raise click.UsageError("--evidently needs --html FILE (the Evidently report is embedded there)")
    collector = OutputCollector() if evidently else None
    root = registry_root
    if root is None and (baseline_registry or promote):
        root = config.registry.root
    from goldwatch.runtimes.torch import trusting_factories

    with trusting_factories(config.runtimes.trusted_factories):  # model directories name only trusted factories
        verdict = run_gate(
            candidate, list(golden), baseline=baseline, baseline_registry=baseline_registry, registry_root=root,
            manifest=manifest, device=device, thresholds=thresholds, promote=promote, promote_model=model_name,
            on_compare=collector, output_map=outputs,
        )
    evidently_html = drift_report_html(collector) if collector is not None and verdict.error is None else None
    failed = write_reports(verdict, paths, evidently_html=evidently_html)
    if to_stdout:
        click.echo(verdict.to_json(), nl=False)
    _print_summary(verdict, paths, to_stdout=to_stdout)
    if verdict.error is not None:
        click.echo(f"goldwatch: error: {verdict.error.message()}", err=True)
        sys.exit(EXIT_ERROR)
    if verdict.verdict == "error":
        broken = [c for c in verdict.checks if c.status == "error"]
        click.echo(f"goldwatch: error: check {broken[0].name} could not run: {broken[0].summary}", err=True)
        sys.exit(EXIT_ERROR)
    if failed:
        raise failed[0][1]
    sys.exit(verdict.exit_code)


def _print_summary(verdict: GateVerdict, paths: ReportPaths, *, to_stdout: bool) -> None:
    # With the JSON on stdout, the human summary goes to stderr so the JSON stays parseable.
    err = to_stdout
    click.echo(verdict.headline(), err=err)
    for c in verdict.checks:
        if c.status in ("fail", "error"):
            click.echo(f"  {c.status.upper():5} {c.name}: {c.summary}", err=err)
    for kind, path in paths.items():
        click.echo(f"  {kind}: {path}", err=err)
