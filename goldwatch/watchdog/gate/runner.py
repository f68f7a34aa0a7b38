"""``run_gate``: verify the artifact, replay the golden sets, compare with the baseline, decide.

The runner never raises a goldwatch error to its caller: when the gate cannot run (a candidate that does not load,
a golden set for another model, an unknown baseline), the verdict is ``error`` and carries the message, so the
JUnit/Markdown/JSON/HTML reports still say why. Checks that could run before the error are kept.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goldwatch import progress
from goldwatch.checks import Check
from goldwatch.config import GateConfig, GoldenConfig
from goldwatch.errors import ArtifactError, GoldwatchError, InvalidInputError, from_unexpected
from goldwatch.logs import get_logger
from goldwatch.watchdog.gate import _adapters as areas
from goldwatch.watchdog.gate.metrics import (
    error_histogram,
    is_class_scores,
    measure_latency,
    metric_delta_check,
    nonfinite_check,
    task_metric,
    top1_agreement,
)
from goldwatch.watchdog.gate.verdict import BarPlot, ErrorInfo, GateVerdict, HistogramPlot, ModelRef, Promotion

__all__ = ["GateThresholds", "resolve_devices", "run_gate"]

log = get_logger(__name__)

# Bars in one drift chart; the rest are summarised in the note.
MAX_DRIFT_BARS = 40


@dataclasses.dataclass(frozen=True)
class GateThresholds:
    """The limits the gate holds a candidate to (``goldwatch.toml [gate]``, overridden by flags)."""

    min_top1_agreement: float = 0.99
    metric_min_absolute_change: float = 0.0
    metric_min_relative_change: float = 0.0
    drift_p_threshold: float = 0.01
    drift_correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    drift_min_effect: float = 0.01
    min_baseline_cosine: float = 0.99
    latency_budget_ms_p50: float | None = None
    latency_budget_ms_p95: float | None = None
    latency_repeats: int = 20
    min_device_top1_agreement: float = 1.0
    golden_min_top1_agreement: float = 1.0
    golden_min_cosine: float = 0.9999

    @classmethod
    def from_config(cls, config: GateConfig, golden: GoldenConfig | None = None, **overrides: Any) -> GateThresholds:
        """The config's values (``[gate]``, and ``[golden]`` for replay), with every non-None override on top.

        >>> GateThresholds.from_config(GateConfig(), min_top1_agreement=0.9, drift_p_threshold=None)
        ... # doctest: +ELLIPSIS
        GateThresholds(min_top1_agreement=0.9, ..., drift_p_threshold=0.01, ...)
        """
        golden = golden or GoldenConfig()
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if hasattr(config, f.name)}
        values["golden_min_top1_agreement"] = golden.min_top1_agreement
        values["golden_min_cosine"] = golden.min_cosine
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def resolve_devices(device: Literal["cpu", "cuda", "all"] | str) -> tuple[list[str], list[Check]]:
    """Devices to run on, and skip checks explaining any left out (``all`` without a GPU)."""
    from goldwatch.runtimes.base import DeviceUnavailableError, cuda_available

    if device == "cpu":
        return ["cpu"], []
    if device == "cuda":
        if not cuda_available():
            raise DeviceUnavailableError(
                "no CUDA GPU is available on this machine", where="--device cuda",
                hint="use --device cpu, or --device all to include CUDA only when present",
            )
        return ["cuda"], []
    if device == "all":
        if cuda_available():
            return ["cpu", "cuda"], []
        return ["cpu"], [Check(name="device:cuda", status="skip",
                               summary="--device all: no CUDA GPU on this machine, ran on CPU only")]
    raise InvalidInputError(f"unknown device {device!r}", where="--device", hint="use cpu, cuda or all")


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class _StopGate(Exception):
    """Internal: the evidence so far settles the verdict (``fail``) and nothing further can be checked."""


class _Run:
    """Mutable state of one gate run: the checks and plots collected so far."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.histograms: list[HistogramPlot] = []
        self.bars: list[BarPlot] = []

    def guarded_check(self, name: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one check; a goldwatch error inside it becomes an ``error`` check, and the gate goes on."""
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        except GoldwatchError as err:
            self.checks.append(Check(name=name, status="error", summary=str(err),
                                     duration_s=time.perf_counter() - start))
            return None


def _prefixed(checks: Sequence[Check], area: str, tag: str) -> list[Check]:
    """``golden:logits:max_abs_error`` -> ``golden:TAG:logits:max_abs_error``: one name per golden set/device."""
    out = []
    for c in checks:
        rest = c.name[len(area) + 1:] if c.name.startswith(f"{area}:") else c.name
        out.append(dataclasses.replace(c, name=f"{area}:{tag}:{rest}"))
    return out


def _own(output_map: Mapping[str, str] | None, runtime: Any) -> dict[str, str]:
    """The entries of ``output_map`` that name one of ``runtime``'s outputs (one map serves candidate and
    baseline, whose output names may differ)."""
    names = set(runtime.signature.output_names)
    return {m: g for m, g in (output_map or {}).items() if m in names}


def _baseline_outputs(runtime: Any, golden: areas.GoldenView, output_map: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The baseline's answers to the golden inputs, under the golden set's output names."""
    from goldwatch.golden_sets.replay import match_outputs
    from goldwatch.runtimes import run_batches

    names = list(golden.expected)
    match = match_outputs(names, runtime.signature.output_names, output_map, where=f"baseline {runtime!r}")
    n = len(next(iter(golden.inputs.values()))) if golden.inputs else None
    with progress.task(f"baseline on {golden.name}", total=n, unit="samples"):
        outputs = run_batches(runtime, dict(golden.inputs), batch_size=None)
    return {k: np.asarray(v) for k, v in match.rename(outputs).items()}


def _golden_outputs(run: _Run, runtime: Any, golden: areas.GoldenView, device: str, tag: str,
                    th: GateThresholds, output_map: Mapping[str, str]) -> tuple[dict[str, np.ndarray], float]:
    """Replay ``golden`` on ``runtime``: its checks and plots go into ``run``; returns (outputs, inference s)."""
    checks, outputs, inference_s = areas.replay_golden(
        runtime, golden, device=device, min_top1_agreement=th.golden_min_top1_agreement,
        min_cosine=th.golden_min_cosine, output_map=output_map,
    )
    run.checks.extend(_prefixed(checks, "golden", tag))
    for name, actual in outputs.items():
        expected = golden.expected.get(name)
        if expected is None or np.shape(expected) != np.shape(actual):
            continue
        tol = golden.tolerance(name)
        run.histograms.append(error_histogram(
            actual, expected, tolerance=tol, title=f"{golden.name} · {name} · {device}", group="golden",
            note=f"|{device} output − golden expected| per element; tolerance "
                 + (f"{tol:.3g} (calibrated)" if tol is not None else "not set"),
        ))
    run.checks.append(nonfinite_check(outputs, name=f"finite:{tag}"))
    return outputs, inference_s


def _latency(run: _Run, runtime: Any, inputs: Mapping[str, np.ndarray], tag: str, th: GateThresholds,
             replay_s: float) -> None:
    """Time ``latency_repeats`` batches against the budgets -- only when a budget is set: timing costs a multiple of
    the replay and, with nothing to hold it against, proves nothing. Without one, the replay's own time is
    reported (a skip that says how to turn the measurement on)."""
    batch = int(next(iter(inputs.values())).shape[0]) if inputs else 0
    if th.latency_budget_ms_p50 is None and th.latency_budget_ms_p95 is None:
        replay_ms = replay_s * 1000.0
        run.checks.append(Check(
            name=f"latency:{tag}", status="skip",
            summary=f"no latency budget set: not timed (the replay of {batch} samples took {replay_ms:.3g} ms once); "
                    f"set [gate] latency_budget_ms_p95 or --latency-budget-ms-p95 to time {th.latency_repeats} "
                    "batches against it",
            measured={"replay_ms": replay_ms, "batch_size": batch, "repeats": 1},
        ))
        run.bars.append(BarPlot(
            title=f"latency · {tag}", group="latency", labels=["replay, 1 run"], values=[replay_ms],
            flagged=[False], y_label="ms", note="no budget set: the golden replay's own time, not a measurement",
        ))
        return
    stats = measure_latency(lambda: runtime.run(inputs), batch_size=batch, repeats=th.latency_repeats)
    budgets = {"p50_ms": th.latency_budget_ms_p50, "p95_ms": th.latency_budget_ms_p95}
    over = [k for k, b in budgets.items() if b is not None and getattr(stats, k) > b]
    set_budgets = {k: b for k, b in budgets.items() if b is not None}
    text = f"batch of {batch}: p50 {stats.p50_ms:.3g} ms, p95 {stats.p95_ms:.3g} ms over {stats.repeats} runs"
    if set_budgets:
        text += " (budget " + ", ".join(f"{k.split('_')[0]} {v:g} ms" for k, v in set_budgets.items()) + ")"
    else:
        text += " (no budget set)"
    run.checks.append(Check(
        name=f"latency:{tag}", status="fail" if over else "pass", summary=text,
        measured={"p50_ms": stats.p50_ms, "p95_ms": stats.p95_ms, "mean_ms": stats.mean_ms,
                  "batch_size": batch, "repeats": stats.repeats},
        threshold={f"max_{k}": v for k, v in set_budgets.items()},
    ))
    limit = th.latency_budget_ms_p95
    run.bars.append(BarPlot(
        title=f"latency per batch · {tag}", group="latency", labels=["p50", "p95", "mean"],
        values=[stats.p50_ms, stats.p95_ms, stats.mean_ms],
        flagged=[k in over for k in ("p50_ms", "p95_ms", "mean")], y_label="ms", limit=limit,
        note=f"{stats.repeats} timed runs of a batch of {batch}",
    ))


def _agreement(
    run: _Run, candidate: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *, tag: str,
    min_agreement: float, group: str, what: str, roles: Mapping[str, str] | None = None,
    th: GateThresholds | None = None,
) -> None:
    """Candidate vs ``what``, by each output's role in the golden set: top-1 agreement for class scores; cosine
    and nearest-neighbour agreement for embeddings (when ``th`` is given: the baseline comparison); for any other
    output only the largest difference, reported."""
    labels, values, flagged = [], [], []
    roles = roles or {}
    for name, ref in reference.items():
        cand = candidate.get(name)
        check_name = f"{group}:{tag}:{name}:top1_agreement"
        if cand is None or cand.shape != ref.shape:
            run.checks.append(Check(
                name=check_name, status="fail",
                summary=f"output {name!r}: candidate shape {None if cand is None else cand.shape}, {what} "
                        f"{ref.shape}", details={"candidate_outputs": sorted(candidate)},
            ))
            continue
        role = roles.get(name) or ("scores" if is_class_scores(ref) else "tensor")
        if role == "embedding" and th is not None and ref.ndim >= 2 and ref.shape[0] >= 1:
            _embedding_agreement(run, name, cand, ref, tag=tag, group=group, what=what, th=th)
            continue
        if role != "scores" or not is_class_scores(ref):
            diff = float(np.max(np.abs(cand.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            run.checks.append(Check(
                name=check_name, status="skip",
                summary=f"output {name!r} is not class scores (role {role}, shape {ref.shape}): no top-1 to compare; "
                        f"max |diff| vs {what} {diff:.3g}",
                measured={"max_abs_diff": diff},
            ))
            continue
        agree = top1_agreement(cand, ref)
        check = Check.from_comparison(check_name, measured=agree, threshold=min_agreement, higher_is_worse=False)
        run.checks.append(dataclasses.replace(check, summary=f"top-1 agreement with {what}: {check.summary}"))
        labels.append(f"{tag}:{name}")
        values.append(agree)
        flagged.append(check.status == "fail")
    if labels:
        run.bars.append(BarPlot(
            title=f"top-1 agreement with {what} · {tag}", group=group, labels=labels, values=values,
            flagged=flagged, y_label="agreement", limit=min_agreement, y_max=1.0,
            note=f"fraction of golden inputs where candidate and {what} pick the same class",
        ))


#: neighbour rankings whose top-2 similarity margin is below this (in cosine units) are near-ties: reported,
#: not held against the candidate (a harmless numeric change may order them either way)
NEIGHBOR_TIE_MARGIN = 1e-4
#: samples taken into the nearest-neighbour comparison (n^2 similarities): evenly spaced beyond this
MAX_NEIGHBOR_SAMPLES = 2048


def _unit_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", flat, flat))
    return flat / np.where(norms == 0, 1.0, norms)[:, None]


def _nearest_neighbors(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each row's most similar other row, margin of its similarity over the runner-up)."""
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    top2 = np.argpartition(-sims, 1, axis=1)[:, :2]
    rows = np.arange(len(unit))[:, None]
    best_two = sims[rows, top2]
    first = np.where(best_two[:, 0] >= best_two[:, 1], top2[:, 0], top2[:, 1])
    return first, np.abs(best_two[:, 0] - best_two[:, 1])


def _embedding_agreement(run: _Run, name: str, cand: np.ndarray, ref: np.ndarray, *, tag: str, group: str,
                         what: str, th: GateThresholds) -> None:
    """Embeddings vs the baseline: per-sample cosine similarity, and whether each golden input keeps its nearest
    neighbour among the others (what a retrieval system built on the embeddings would notice)."""
    c, r = _unit_rows(cand), _unit_rows(ref)
    cos = np.einsum("ij,ij->i", c, r)
    worst = int(np.argmin(cos))
    check = Check.from_comparison(f"{group}:{tag}:{name}:cosine", measured=float(cos[worst]),
                                  threshold=th.min_baseline_cosine, higher_is_worse=False,
                                  unit="min per-sample cosine")
    run.checks.append(dataclasses.replace(
        check, summary=f"cosine similarity with {what}: min {cos[worst]:.7g} (sample {worst}), mean "
                       f"{cos.mean():.7g}; limit >= {th.min_baseline_cosine:g}",
        measured={**check.measured, "mean": float(cos.mean()), "worst_sample": worst},
    ))
    n = len(c)
    if n < 3:
        return
    pick = np.arange(n) if n <= MAX_NEIGHBOR_SAMPLES else np.unique(
        np.linspace(0, n - 1, MAX_NEIGHBOR_SAMPLES).astype(np.int64))
    cand_nn, _ = _nearest_neighbors(c[pick])
    ref_nn, margin = _nearest_neighbors(r[pick])
    decided = margin >= NEIGHBOR_TIE_MARGIN
    kept = int(np.count_nonzero(decided))
    same = int(np.count_nonzero((cand_nn == ref_nn) & decided))
    agree = same / kept if kept else 1.0
    check = Check.from_comparison(f"{group}:{tag}:{name}:neighbor_agreement", measured=agree,
                                  threshold=th.min_top1_agreement, higher_is_worse=False, unit="fraction")
    run.checks.append(dataclasses.replace(
        check, summary=f"nearest neighbour among the golden inputs kept in {same} of {kept} samples "
                       f"({agree:.4g}; {len(pick) - kept} near-ties left out); limit >= {th.min_top1_agreement:g}",
        measured={**check.measured, "samples": kept, "near_ties": len(pick) - kept},
    ))


def _baseline_histograms(run: _Run, cand: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray],
                         golden: areas.GoldenView) -> None:
    """|candidate - baseline| per element: how far the new version moved, drawn against the golden tolerance."""
    for name, ref in base.items():
        cur = cand.get(name)
        if cur is None or cur.shape != ref.shape or not np.issubdtype(ref.dtype, np.number):
            continue
        tol = golden.tolerance(name)
        run.histograms.append(error_histogram(
            cur, ref, tolerance=tol, group="baseline", title=f"{golden.name} · {name} · |candidate − baseline|",
            note="element-wise difference from the baseline; the line marks the golden set's replay tolerance "
                 "(for scale: a retrained model is expected to cross it)",
        ))


def _metrics(run: _Run, cand: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], golden: areas.GoldenView,
             th: GateThresholds) -> None:
    if golden.labels is None:
        return
    # the labelled output: the only one, or the first with class scores
    names = [n for n in cand if n in base]
    scored = [n for n in names if is_class_scores(cand[n])] or names
    if not scored:
        return
    out = scored[0]
    metric, c_val, better = task_metric(cand[out], golden.labels)
    _, b_val, _ = task_metric(base[out], golden.labels)
    run.checks.append(metric_delta_check(
        metric, candidate=c_val, baseline=b_val, greater_is_better=better,
        min_absolute_change=th.metric_min_absolute_change, min_relative_change=th.metric_min_relative_change,
        name=f"baseline:{golden.name}:{out}:{metric}",
    ))


def _drift(run: _Run, cand: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], tag: str,
           th: GateThresholds) -> None:
    """Per output: did any column move vs the baseline beyond the effect floor? Candidate and baseline answer the
    same golden inputs, so the test is paired (see :mod:`goldwatch.detectors.paired`); the check says how far each
    flagged column moved, in the output's units."""
    for name, ref in base.items():
        cur = cand.get(name)
        if cur is None or cur.shape != ref.shape or ref.ndim == 0 or not np.issubdtype(ref.dtype, np.number):
            continue
        if not (np.isfinite(cur).all() and np.isfinite(ref).all()):
            run.checks.append(Check(
                name=f"drift:{tag}:{name}", status="skip",
                summary=f"output {name!r} holds NaN/Inf: the finite check reports it; drift not tested",
            ))
            continue
        if ref.shape[0] < 2:
            run.checks.append(Check(name=f"drift:{tag}:{name}", status="skip",
                                    summary=f"output {name!r}: one sample, nothing to compare distributions on"))
            continue
        shift = areas.output_shift(ref, cur, alpha=th.drift_p_threshold, correction=th.drift_correction,
                                   min_effect=th.drift_min_effect)
        cols = shift.columns
        run.checks.append(Check(
            name=f"drift:{tag}:{name}", status="fail" if shift.n_drifted else "pass",
            summary=f"output {name!r} vs baseline: {shift.describe()}",
            measured={"drifted_columns": shift.n_drifted, "tested_columns": len(cols),
                      "min_adjusted_pvalue": shift.min_adjusted_pvalue,
                      "max_effect": float(shift.effect.max()) if shift.effect.size else 0.0,
                      "negligible_columns": int(np.count_nonzero(shift.negligible))},
            threshold={"alpha": th.drift_p_threshold, "correction": th.drift_correction,
                       "min_effect": th.drift_min_effect, "effect_floor": shift.effect_floor,
                       "output_scale": shift.scale},
            details={"drifted_columns": [s["column"] for s in shift.shifts(shift.drifted)],
                     "shifts": shift.shifts(shift.drifted),
                     "negligible_shifts": shift.shifts(shift.negligible, limit=20),
                     "method": "paired t-test and two-sample KS (asymptotic) per column, the smaller p doubled, "
                               f"{th.drift_correction} across columns; drift = significant and Wasserstein-1 "
                               "shift > effect floor"},
        ))
        order = np.argsort(-shift.effect, kind="stable")[:MAX_DRIFT_BARS]
        order = np.sort(order)
        note = (f"shift per output column (Wasserstein-1, output units); the line is the effect floor "
                f"{shift.effect_floor:.3g}; red: significant ({th.drift_correction}) and beyond the floor")
        if len(order) < len(cols):
            note += f" (showing the {len(order)} largest of {len(cols)})"
        run.bars.append(BarPlot(
            title=f"drift vs baseline · {tag} · {name}", group="drift",
            labels=[str(int(cols[i])) for i in order], values=[float(shift.effect[i]) for i in order],
            flagged=[bool(shift.drifted[i]) for i in order], y_label="shift (output units)",
            limit=shift.effect_floor, note=note,
        ))


def _device_agreement(run: _Run, outputs: Mapping[str, Mapping[str, np.ndarray]], golden: areas.GoldenView,
                      th: GateThresholds) -> None:
    cpu, cuda = outputs.get("cpu"), outputs.get("cuda")
    if cpu is None or cuda is None:
        return
    _agreement(run, cuda, cpu, tag=golden.name, min_agreement=th.min_device_top1_agreement, group="device",
               what="CPU", roles=golden.golden.roles)
    for name, ref in cpu.items():
        if name not in cuda or cuda[name].shape != ref.shape:
            continue
        tol = golden.tolerance(name)
        diff = np.abs(cuda[name].astype(np.float64) - ref.astype(np.float64))
        max_diff = float(np.max(diff)) if diff.size else 0.0
        if tol is not None:
            check = Check.from_comparison(f"device:{golden.name}:{name}:max_abs_diff", measured=max_diff,
                                          threshold=tol, higher_is_worse=True, unit="abs (cuda vs cpu)")
            run.checks.append(check)
        run.histograms.append(error_histogram(
            cuda[name], ref, tolerance=tol, group="device",
            title=f"{golden.name} · {name} · |cuda − cpu|", note="element-wise CPU/CUDA difference; "
            "tolerance: the golden set's calibrated one",
        ))


def _provenance(golden: areas.GoldenView, runtime: Any, checks: Sequence[Check]) -> list[Check]:
    """Say so when ``golden`` was built from another model than the candidate.

    A golden set belongs to the version it was built from: it holds that version's exact answers. A retrained
    candidate is held to its *own* golden set (built from it on the same frozen inputs) and compared with the old
    version through ``--baseline``; replaying the old version's set fails it on answers it was never meant to
    reproduce. With the digests of both known and different, this check fails along with the golden checks and
    names the workflow, or passes when the candidate reproduces the answers anyway (a re-export, the same weights
    in another format).
    """
    recorded, current = golden.golden.model.digest, runtime.identity.digest
    if not recorded or not current or recorded == current:
        return []
    prefix = f"golden:{golden.name}:"
    failed = [c.name for c in checks if c.name.startswith(prefix) and c.status == "fail"]
    built_from = f"{golden.golden.model.source} ({recorded[:19]}...)"
    corrupted = [c.name for c in checks if c.name.startswith("artifact:") and c.status == "fail"]
    if corrupted:
        # The manifest already proved that the candidate's bytes are not the approved ones: the golden failures
        # are more evidence of that, and advice to build a new golden set from these bytes would be wrong.
        return [Check(name=f"{prefix}built_from", status="skip",
                      summary=f"not applicable: the candidate's bytes differ from its manifest ({', '.join(corrupted)})"
                              f", so its digest differs from the model golden set {golden.name!r} was built from",
                      measured={"golden_model_digest": recorded, "candidate_digest": current},
                      details={"golden_model": golden.golden.model.to_dict()})]
    if failed:
        summary = (
            f"golden set {golden.name!r} was built from another model, {built_from}, not this candidate "
            f"({current[:19]}...): its answers are that model's. A golden set belongs to the version it was built "
            f"from: build the candidate's own on the same inputs (goldwatch golden build --model CANDIDATE --inputs "
            f"{golden.path}/inputs.npz --out DIR) and compare the two versions with --baseline"
        )
    else:
        summary = (f"golden set {golden.name!r} was built from another file, {built_from}; the candidate "
                   f"({current[:19]}...) reproduces its answers within tolerance")
    return [Check(name=f"{prefix}built_from", status="fail" if failed else "pass", summary=summary,
                  measured={"golden_model_digest": recorded, "candidate_digest": current,
                            "failed_golden_checks": len(failed)},
                  details={"golden_model": golden.golden.model.to_dict()})]


def _unique_names(goldens: list[areas.GoldenView]) -> list[areas.GoldenView]:
    """Golden sets are named by their folder; two folders of the same name get ``#2``, ``#3`` so checks differ."""
    seen: dict[str, int] = {}
    out = []
    for g in goldens:
        seen[g.name] = seen.get(g.name, 0) + 1
        out.append(g if seen[g.name] == 1 else dataclasses.replace(g, name=f"{g.name}#{seen[g.name]}"))
    return out


def _model_ref(spec: str | os.PathLike[str], runtime: Any = None, *, name: str | None = None,
               version: str | None = None) -> ModelRef:
    kind = getattr(runtime, "kind", None) if runtime is not None else None
    return ModelRef(spec=os.fspath(spec), name=name, version=version, runtime=kind)


def run_gate(
    candidate: str | os.PathLike[str],
    golden: Sequence[str | os.PathLike[str]],
    *,
    baseline: str | os.PathLike[str] | None = None,
    baseline_registry: str | None = None,
    registry_root: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    thresholds: GateThresholds | None = None,
    promote: bool = False,
    promote_model: str | None = None,
    actor: str = "goldwatch gate",
    latency: bool = True,
    on_compare: Callable[[str, Mapping[str, np.ndarray], Mapping[str, np.ndarray]], None] | None = None,
    output_map: Mapping[str, str] | None = None,
) -> GateVerdict:
    """Run every gate check on ``candidate`` and return the verdict (never raises a goldwatch error).

    ``golden``: one or more golden-set folders. ``baseline``: a model spec, or ``baseline_registry``: the name
    of a model whose newest known-good version in the registry at ``registry_root`` is the baseline.
    ``promote``: when the verdict is ``pass``, register the candidate under ``promote_model`` (default: the
    baseline's registry name) and promote it to known-good with the verdict as evidence. ``latency``: time
    batches (turn off for quick library use). ``on_compare(golden, candidate_outputs, baseline_outputs)`` is
    called for each golden set compared with the baseline (e.g. to build an Evidently report from them).
    ``output_map`` (model output -> golden output) names outputs whose names differ between the golden set and the
    candidate or baseline; a single-output model is matched by position without it.
    """
    from goldwatch.runtimes import load_model
    from goldwatch.runtimes.base import DeviceUnavailableError

    th = thresholds or GateThresholds()
    started, t0 = _now(), time.perf_counter()
    run = _Run()
    cand_ref = _model_ref(candidate)
    base_ref: ModelRef | None = None
    devices: list[str] = [device]
    error: ErrorInfo | None = None
    runtimes: list[Any] = []
    golden_digests: dict[str, str] = {}
    root = Path(registry_root) if registry_root is not None else None
    try:
        if baseline is not None and baseline_registry is not None:
            raise InvalidInputError("--baseline and --baseline-registry both given", where="gate",
                                    hint="compare with one baseline: a model file, or the registry's known-good")
        if not golden:
            raise InvalidInputError("no golden set given", where="--golden", hint="pass --golden DIR (repeatable)")
        devices, skipped = resolve_devices(device)
        run.checks.extend(skipped)
        loaded = [(os.fspath(g), areas.load_golden(g)) for g in golden]
        golden_digests.update((spec, view.golden.digest) for spec, view in loaded if view.golden.digest)
        goldens = _unique_names([view for _spec, view in loaded])
        base_spec: str | os.PathLike[str] | None = baseline
        if baseline_registry is not None:
            if root is None:
                raise InvalidInputError("--baseline-registry needs a registry", where="--baseline-registry",
                                        hint="set [registry] root in goldwatch.toml or pass --registry-root DIR")
            mv = areas.known_good(root, baseline_registry)
            base_spec = mv.path
            base_ref = ModelRef(spec=f"registry:{baseline_registry}", name=mv.model, version=str(mv.version))
        if manifest is not None:
            start = time.perf_counter()
            found = areas.artifact_checks(Path(candidate), Path(manifest))
            elapsed = time.perf_counter() - start
            run.checks.extend(
                dataclasses.replace(
                    c, name=c.name if c.name.startswith("artifact") else f"artifact:{c.name}",
                    duration_s=c.duration_s if c.duration_s is not None else elapsed / max(len(found), 1),
                )
                for c in found
            )
        else:
            run.checks.append(Check(name="artifact:manifest", status="skip",
                                    summary="no --manifest given: the artifact's bytes were not verified"))
        cand_rts = {}
        for dev in list(devices):
            try:
                cand_rts[dev] = load_model(candidate, device=dev)
            except DeviceUnavailableError as err:
                if device != "all" or dev == "cpu":
                    raise
                # --device all: a GPU is present but this model's runtime cannot use it (e.g. onnxruntime
                # without the CUDA provider, a remote model): say so and go on with CPU
                devices.remove(dev)
                run.checks.append(Check(name=f"device:{dev}", status="skip",
                                        summary=f"--device all: the candidate cannot run on {dev} here ({err})"))
                continue
            except ArtifactError as err:
                if not any(c.status == "fail" and c.name.startswith("artifact:") for c in run.checks):
                    raise  # nothing proves corruption: a model that does not load is bad input (exit 2)
                # the manifest already proved the bytes changed; that they no longer load is more evidence
                run.checks.append(Check(
                    name="artifact:loadable", status="fail",
                    summary=f"the candidate no longer loads ({err.what}); its bytes differ from the manifest",
                ))
                raise _StopGate from None
            runtimes.append(cand_rts[dev])
        cand_ref = _model_ref(candidate, cand_rts[devices[0]])
        base_rt = None
        if base_spec is not None:
            base_rt = load_model(base_spec, device="cpu")
            runtimes.append(base_rt)
            base_ref = dataclasses.replace(base_ref or _model_ref(base_spec), runtime=base_rt.kind)
        for g in goldens:
            outputs: dict[str, dict[str, np.ndarray]] = {}
            for dev in devices:
                tag = f"{g.name}:{dev}"
                outputs[dev], replay_s = _golden_outputs(run, cand_rts[dev], g, dev, tag, th,
                                                         _own(output_map, cand_rts[dev]))
                if latency:
                    run.guarded_check(f"latency:{tag}", _latency, run, cand_rts[dev], g.inputs, tag, th, replay_s)
            run.checks.extend(_provenance(g, cand_rts[devices[0]], run.checks))
            _device_agreement(run, outputs, g, th)
            if base_rt is not None:
                cand_out = outputs["cpu"] if "cpu" in outputs else outputs[devices[0]]
                base_out = _baseline_outputs(base_rt, g, _own(output_map, base_rt))
                run.guarded_check(f"baseline:{g.name}", _agreement, run, cand_out, base_out, tag=g.name,
                                  min_agreement=th.min_top1_agreement, group="baseline", what="baseline",
                                  roles=g.golden.roles, th=th)
                run.guarded_check(f"baseline:{g.name}:metric", _metrics, run, cand_out, base_out, g, th)
                _baseline_histograms(run, cand_out, base_out, g)
                run.guarded_check(f"drift:{g.name}", _drift, run, cand_out, base_out, g.name, th)
                if on_compare is not None:
                    on_compare(g.name, cand_out, base_out)
        if base_rt is None:
            run.checks.append(Check(name="baseline:agreement", status="skip",
                                    summary="no baseline given: agreement, metric deltas and drift not compared"))
    except _StopGate:
        pass
    except GoldwatchError as err:
        log.debug("gate stopped: %s", err)
        error = ErrorInfo.from_exception(err)
    except Exception as exc:  # a crash inside a runtime or library: still a verdict (error) and still reports
        log.debug("gate stopped by an unexpected error", exc_info=True)
        error = ErrorInfo.from_exception(from_unexpected(exc))
    finally:
        for rt in runtimes:
            try:
                rt.close()
            except Exception as exc:  # closing must not hide the verdict
                log.warning("closing %s failed: %s", getattr(rt, "kind", "runtime"), exc)
    verdict = GateVerdict.from_checks(
        run.checks, error=error, candidate=cand_ref, baseline=base_ref,
        golden_sets=[os.fspath(g) for g in golden], golden_digests=golden_digests,
        manifest=None if manifest is None else os.fspath(manifest),
        devices=devices, thresholds=dataclasses.asdict(th), histograms=run.histograms, bars=run.bars,
        started_at=started,
    )
    if promote:
        _promote(verdict, candidate, golden, root=root, model=promote_model or baseline_registry, actor=actor)
    verdict.finished_at = _now()
    verdict.duration_s = time.perf_counter() - t0
    return verdict


def _promote(verdict: GateVerdict, candidate: str | os.PathLike[str], golden: Sequence[str | os.PathLike[str]],
             *, root: Path | None, model: str | None, actor: str) -> None:
    """Record a passing verdict in the registry; a failed promotion turns the verdict into an error."""
    if not verdict.ok:
        return
    try:
        if root is None or model is None:
            raise InvalidInputError(
                "--promote needs a registry and a model name", where="--promote",
                hint="pass --registry-root DIR and --baseline-registry NAME (or --model-name NAME)",
            )
        evidence = {"gate_verdict": verdict.to_dict()}
        mv = areas.promote(root, model, Path(candidate), golden=[Path(g) for g in golden], actor=actor,
                           reason=f"goldwatch gate: {verdict.headline()}", evidence=evidence)
        verdict.promotion = Promotion(registry=str(root), model=mv.model, version=str(mv.version),
                                      state=str(mv.state))
        verdict.candidate = dataclasses.replace(verdict.candidate or ModelRef(spec=os.fspath(candidate)),
                                                name=mv.model, version=str(mv.version))
    except GoldwatchError as err:
        verdict.error = ErrorInfo.from_exception(err)
        verdict.verdict = "error"
