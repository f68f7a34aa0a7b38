"""Thin adapters between the gate and the areas it builds on (integrity, golden sets, detectors, registry).

The gate only calls the cross-area contracts; this module is the one place that knows their exact spelling, so a
change in another area is fixed here. Each import is lazy: ``import goldwatch.watchdog.gate`` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goldwatch.checks import Check
from goldwatch.errors import ArtifactError

__all__ = [
    "GoldenView",
    "artifact_checks",
    "load_golden",
    "output_shift",
    "replay_golden",
]


# -- integrity -----------------------------------------------------------------------------------------------

def artifact_checks(artifact: Path, manifest: Path) -> list[Check]:
    """Verify ``artifact`` (file or directory) against its integrity manifest: one check per file."""
    from goldwatch.integrity import verify_artifact

    if not manifest.is_file():
        raise ArtifactError("manifest not found", where=f"--manifest {manifest}",
                            hint="build one: goldwatch.integrity.build_manifest(model).save(path)")
    report = verify_artifact(artifact, manifest)
    return [_name_the_damage(c) for c in report.to_checks(prefix="artifact")]


def _name_the_damage(check: Check) -> Check:
    """Lead the summary with the most precise mismatch (tensor and block before 'digest differs'): that is what
    a reader of a CI log needs first."""
    found = list(check.details.get("mismatches") or [])
    if len(found) < 2:
        return check
    precise = sorted(found, key=lambda m: 0 if m.get("tensor") else 1)
    shown = "; ".join(str(m.get("message", "")) for m in precise[:2])
    more = f" (+{len(found) - 2} more)" if len(found) > 2 else ""
    return dataclasses.replace(check, summary=shown + more)


# -- golden sets ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GoldenView:
    """What the gate needs from a golden set: a name, its inputs, expected outputs, labels, tolerances."""

    name: str
    path: Path
    inputs: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    golden: Any

    def tolerance(self, output: str) -> float | None:
        """The calibrated absolute tolerance of ``output`` (None when the golden set has none for it)."""
        tol = self.golden.tolerances.get(output)
        return None if tol is None else float(tol.atol)


def load_golden(spec: str | os.PathLike[str]) -> GoldenView:
    """Load a golden set folder, ``DIR`` or ``DIR@sha256:HEX`` to pin its digest (GoldenSetError when malformed,
    tampered with, or not the pinned one)."""
    from goldwatch.golden_sets import GoldenSet
    from goldwatch.golden_sets.format import split_pinned

    path, expected = split_pinned(spec)
    golden = GoldenSet.load(path, expected_digest=expected)
    return GoldenView(
        name=path.resolve().name or str(path),
        path=path,
        inputs=dict(golden.inputs),
        expected=dict(golden.expected),
        labels=golden.labels,
        golden=golden,
    )


def replay_golden(
    runtime: Any, golden: GoldenView, *, device: str, min_top1_agreement: float, min_cosine: float,
    output_map: Mapping[str, str] | None = None,
) -> tuple[list[Check], dict[str, np.ndarray], float]:
    """Replay ``golden`` through ``runtime``: (checks, outputs under the golden names, inference seconds).
    GoldenSetError when it does not fit the model."""
    from goldwatch.golden_sets import replay

    report = replay(runtime, golden.golden, device=device, min_top1_agreement=min_top1_agreement,
                    min_cosine=min_cosine, output_map=output_map)
    return list(report.checks), {k: np.asarray(v) for k, v in report.outputs.items()}, report.inference_s


# -- detectors -----------------------------------------------------------------------------------------------

def output_shift(
    reference: np.ndarray, current: np.ndarray, *, alpha: float, correction: Literal["bonferroni", "bh", "none"],
    min_effect: float,
) -> Any:
    """Paired per-column drift of ``current`` vs ``reference`` with an effect floor
    (:func:`goldwatch.detectors.paired_output_shift`)."""
    from goldwatch.detectors.paired import paired_output_shift

    return paired_output_shift(reference, current, alpha=alpha, correction=correction, min_effect=min_effect)


# -- registry ------------------------------------------------------------------------------------------------

def known_good(root: Path, model: str) -> Any:
    """The newest verified version of ``model`` (RegistryError when there is none)."""
    from goldwatch.errors import RegistryError
    from goldwatch.watchdog.registry import Registry

    # create=False: a mistyped registry path is an error, not a new empty registry
    registry = Registry.open(root, create=False)
    try:
        # verify_artifacts: the baseline's bytes are re-verified; a corrupted known-good is not a baseline
        version = registry.known_good(model, verify_artifacts=True)
    finally:
        registry.close()
    if version is None:
        raise RegistryError(
            f"model {model!r} has no known-good version whose artifact verifies", where=f"registry {root}",
            hint="promote a version first (goldwatch gate ... --promote) or pass --baseline MODEL_FILE",
        )
    return version


def promote(
    root: Path, model: str, artifact: Path, *, golden: Sequence[Path], actor: str, reason: str,
    evidence: Mapping[str, Any],
) -> Any:
    """Register ``artifact`` as a new version of ``model`` (if not already there) and promote it to known-good."""
    from goldwatch.watchdog.registry import Registry

    registry = Registry.open(root)
    try:
        version = registry.add(model, artifact, golden=tuple(str(g) for g in golden), actor=actor,
                               reason="registered by goldwatch gate")
        return registry.promote(model, version.version, actor=actor, reason=reason, evidence=dict(evidence))
    finally:
        registry.close()
