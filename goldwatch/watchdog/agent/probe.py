"""For runtimes whose resident weights cannot be read -- ONNX Runtime: verify the file at load, then replay a small
golden probe in-process on a schedule.

ONNX Runtime copies a model's initializers into its own arena (and may pre-pack, fuse or convert them at session
creation); its API exposes none of that memory, so no fingerprint of it can be taken from Python. What can be
proven is that the file was intact when the session was created (:func:`~goldwatch.watchdog.agent.verify_file`)
and that the session still gives the approved answers: the first ``samples`` rows of a golden set are replayed
through the same session the server uses, every ``interval_s``, and compared with the calibrated tolerances
(:func:`goldwatch.golden_sets.replay.replay`). A corrupted initializer that changes answers on the probe fails the
check; one that does not change them is not seen -- say so to whoever relies on it.

>>> import tempfile
>>> from goldwatch.examples import write_example
>>> from goldwatch.golden_sets.build import build_golden_set
>>> from goldwatch.runtimes import load_model
>>> d = tempfile.mkdtemp()
>>> art = write_example("tabular", d, formats=("onnx",))
>>> _ = build_golden_set(art.onnx, art.inputs, d + "/golden", repeats=2)
>>> agent = watch_onnx(load_model(art.onnx), golden=d + "/golden", model="fraud", samples=8, start=False)
>>> check = agent.check_now()
>>> check.name, check.status, check.measured["samples"]
('resident:golden_probe', 'pass', 8)
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from goldwatch.checks import Check
from goldwatch.errors import InvalidInputError
from goldwatch.golden_sets.format import GoldenSet
from goldwatch.golden_sets.replay import check_compatible, replay
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.runtimes.base import Runtime
from goldwatch.runtimes.factory import load_model
from goldwatch.watchdog.agent.agent import DEFAULT_INTERVAL_S, verify_file
from goldwatch.watchdog.agent.periodic import PeriodicAgent
from goldwatch.watchdog.agent.reporter import Reporter

__all__ = ["DEFAULT_PROBE_SAMPLES", "ProbeAgent", "probe_subset", "watch_onnx"]

DEFAULT_PROBE_SAMPLES = 16


def probe_subset(golden: GoldenSet, samples: int) -> GoldenSet:
    """The first ``samples`` rows of ``golden`` (all of it when it is smaller), with its tolerances."""
    n = min(samples, golden.n_samples)
    if n == golden.n_samples:
        return golden
    return dataclasses.replace(
        golden,
        inputs={k: v[:n] for k, v in golden.inputs.items()},
        expected={k: v[:n] for k, v in golden.expected.items()},
        labels=None if golden.labels is None else golden.labels[:n],
    )


class ProbeAgent(PeriodicAgent):
    """Replay the first ``samples`` rows of ``golden`` through ``runtime`` every ``interval_s``."""

    check_name = "resident:golden_probe"

    def __init__(self, runtime: Runtime, *, golden: GoldenSet | str | os.PathLike[str], model: str,
                 interval_s: float = DEFAULT_INTERVAL_S, samples: int = DEFAULT_PROBE_SAMPLES,
                 golden_digest: str | None = None, version: str | None = None, reporter: Reporter | None = None,
                 metrics_registry: Any = None) -> None:
        super().__init__(model=model, interval_s=interval_s, version=version, reporter=reporter,
                         metrics_registry=metrics_registry)
        if samples < 1:
            raise InvalidInputError(f"samples must be >= 1, got {samples}", where="samples")
        if not isinstance(golden, GoldenSet):
            golden = GoldenSet.load(golden, expected_digest=golden_digest)
        check_compatible(golden, runtime.signature, where=f"{golden.path} vs {runtime.identity.source}")
        self.runtime = runtime
        self.golden = golden
        self.probe = probe_subset(golden, samples)

    def _check(self, *, paced: bool) -> Check:
        t0 = time.perf_counter()
        # no output-distribution test: a handful of rows cannot carry one; the calibrated tolerances decide
        report = replay(self.runtime, self.probe, drift_alpha=None)
        failed = [c for c in report.checks if c.status in ("fail", "error")]
        wall = time.perf_counter() - t0
        m = self.metrics
        m.last_pass.labels(model=self.model).set(time.time())
        m.pass_duration.labels(model=self.model).set(wall)
        m.mismatched_blocks.labels(model=self.model).set(0)
        measured = {"samples": self.probe.n_samples, "failed_checks": len(failed), "wall_s": round(wall, 6)}
        details = {
            "golden": str(self.golden.path) if self.golden.path else None, "golden_digest": self.golden.digest,
            "checks": [{"name": c.name, "status": c.status, "summary": c.summary} for c in report.checks],
            "note": "ONNX Runtime does not expose resident initializers: the file was verified at load and this "
            "probe replays golden rows through the live session",
        }
        if failed:
            summary = f"golden probe ({self.probe.n_samples} rows): {failed[0].name}: {failed[0].summary}" + (
                f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
            return Check(name=self.check_name, status="fail", summary=summary, measured=measured,
                         threshold={"failed_checks": 0}, details=details)
        return Check(name=self.check_name, status="pass", measured=measured, threshold={"failed_checks": 0},
                     details=details,
                     summary=f"golden probe ({self.probe.n_samples} rows) within the calibrated tolerances")


def watch_onnx(
    runtime_or_path: Runtime | str | os.PathLike[str],
    *,
    golden: GoldenSet | str | os.PathLike[str],
    model: str,
    manifest: ArtifactManifest | str | os.PathLike[str] | None = None,
    artifact: str | os.PathLike[str] | None = None,
    interval_s: float = DEFAULT_INTERVAL_S,
    samples: int = DEFAULT_PROBE_SAMPLES,
    start: bool = True,
    **options: Any,
) -> ProbeAgent:
    """Probe an ONNX model (or any runtime) with golden rows on a schedule.

    Given a path, the model file is verified against ``manifest`` first (a mismatch raises
    :class:`~goldwatch.errors.ArtifactError`) and then loaded; given a runtime, ``manifest`` and ``artifact`` (the
    file it was loaded from) verify that file. ``options``: ``golden_digest``, ``version``, ``reporter``,
    ``metrics_registry``.
    """
    if isinstance(runtime_or_path, (str, os.PathLike)):
        artifact = artifact if artifact is not None else runtime_or_path
    if manifest is not None:
        if artifact is None:
            raise InvalidInputError("verifying at load needs the model file", where="artifact",
                                    hint="pass artifact= (the .onnx file the runtime was loaded from)")
        verify_file(artifact, manifest if isinstance(manifest, ArtifactManifest) else ArtifactManifest.load(manifest))
    runtime = load_model(runtime_or_path) if isinstance(runtime_or_path, (str, os.PathLike)) else runtime_or_path
    agent = ProbeAgent(runtime, golden=golden, model=model, interval_s=interval_s, samples=samples, **options)
    if start:
        agent.start()
    return agent
