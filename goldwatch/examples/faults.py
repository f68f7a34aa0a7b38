"""Fault injection on the example models: does a golden replay catch each kind of silent corruption?

The corruptions (issue 5's matrix), each applied to a copy of a trained example model:

=================  ===========================================================================================
bitflip_exponent   flip the highest exponent bit (bit 30) of one weight of the middle layer
scale_1.01         multiply the middle layer's weights by 1.01
gaussian_noise     add N(0, (1% of the layer's weight std)^2) to the middle layer's weights
zero_layer         zero the middle layer's weights and bias
swap_layers        swap the two same-shaped hidden layers (weights and biases)
retrain_seed       the same architecture and data, trained from another seed
int8_quantize      every weight matrix quantised to int8 (per-tensor symmetric) and dequantised
=================  ===========================================================================================

A corruption is *harmful* when it changes the top-1 class on at least 1% of the golden samples; every harmful one
must be detected, and clean replays must raise no alarm.

>>> matrix = fault_matrix("tabular", clean_replays=3, corruptions=("scale_1.01", "zero_layer"))
>>> [(r.corruption, r.detected) for r in matrix.rows], matrix.false_alarms
([('scale_1.01', True), ('zero_layer', True)], 0)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import InvalidInputError
from goldwatch.examples import KINDS, eval_data, train_example_model

__all__ = ["CORRUPTIONS", "FaultMatrix", "FaultRow", "corrupt", "fault_matrix"]

# the Sequential indices of the two same-shaped hidden layers of every example architecture
_PAIR = ("2", "4")


def _bitflip(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    w = state[f"{_PAIR[0]}.weight"]
    flat = w.view(-1)
    i = int(rng.integers(0, flat.numel()))
    bits = flat[i : i + 1].view(torch.int32)
    bits ^= 1 << 30  # exponent MSB: |w| < 2 becomes |w| * 2^128 (or inf)


def _scale(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    state[f"{_PAIR[0]}.weight"].mul_(1.01)


def _noise(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    w = state[f"{_PAIR[0]}.weight"]
    noise = rng.normal(scale=0.01 * float(w.std()), size=tuple(w.shape)).astype(np.float32)
    w.add_(torch.from_numpy(noise).to(w.device))


def _zero(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    state[f"{_PAIR[0]}.weight"].zero_()
    state[f"{_PAIR[0]}.bias"].zero_()


def _swap(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    for part in ("weight", "bias"):
        a, b = f"{_PAIR[0]}.{part}", f"{_PAIR[1]}.{part}"
        state[a], state[b] = state[b].clone(), state[a].clone()


def _int8(state: dict[str, Any], rng: np.random.Generator, torch: Any) -> None:
    for key, w in state.items():
        if key.endswith(".weight"):
            step = float(w.abs().max()) / 127.0
            if step > 0:
                w.copy_(torch.clamp(torch.round(w / step), -127, 127) * step)


_STATE_CORRUPTIONS: dict[str, Callable[[dict[str, Any], np.random.Generator, Any], None]] = {
    "bitflip_exponent": _bitflip,
    "scale_1.01": _scale,
    "gaussian_noise": _noise,
    "zero_layer": _zero,
    "swap_layers": _swap,
    "int8_quantize": _int8,
}
CORRUPTIONS = (*_STATE_CORRUPTIONS, "retrain_seed")


def corrupt(kind: str, model: Any, corruption: str, *, seed: int = 0) -> Any:
    """A corrupted copy of ``model`` (an example ``kind`` trained with ``seed``); ``model`` is left untouched."""
    torch = require("torch", purpose="fault injection")
    if corruption == "retrain_seed":
        return train_example_model(kind, seed=seed + 1)[0]
    if corruption not in _STATE_CORRUPTIONS:
        raise InvalidInputError(f"unknown corruption {corruption!r}", hint=f"use one of {list(CORRUPTIONS)}")
    bad = copy.deepcopy(model)
    state = {k: v.detach().clone() for k, v in bad.state_dict().items()}
    _STATE_CORRUPTIONS[corruption](state, np.random.default_rng(seed), torch)
    bad.load_state_dict(state)
    return bad.eval()


@dataclasses.dataclass(frozen=True)
class FaultRow:
    """One corruption's outcome: detected (replay not ok), how many top-1 answers changed, which checks failed."""

    corruption: str
    detected: bool
    top1_changed: float
    harmful: bool
    failed_checks: tuple[str, ...]
    max_abs_error: float
    atol: float


@dataclasses.dataclass(frozen=True)
class FaultMatrix:
    kind: str
    device: str
    rows: tuple[FaultRow, ...]
    clean_replays: int
    false_alarms: int
    n_samples: int

    @property
    def harmful_all_detected(self) -> bool:
        return all(r.detected for r in self.rows if r.harmful)

    @property
    def ok(self) -> bool:
        return self.harmful_all_detected and self.false_alarms == 0

    def to_markdown(self) -> str:
        lines = [
            f"**{self.kind}** on {self.device}: {self.n_samples} golden samples; "
            f"{self.false_alarms} false alarm(s) in {self.clean_replays} clean replays\n",
            "| corruption | detected | top-1 changed | harmful (>= 1%) | max abs error / atol | failed checks |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            ratio = r.max_abs_error / r.atol if r.atol else float("inf")
            failed = ", ".join(c.split(":")[-1] for c in r.failed_checks)
            lines.append(
                f"| {r.corruption} | {'yes' if r.detected else 'NO'} | {r.top1_changed:.1%} | "
                f"{'yes' if r.harmful else 'no'} | {ratio:.3g} | {failed} |"
            )
        return "\n".join(lines)


def fault_matrix(
    kind: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    clean_replays: int = 100,
    corruptions: Sequence[str] = CORRUPTIONS,
    repeats: int = 5,
) -> FaultMatrix:
    """Train ``kind``, build its golden set on ``device``, replay it ``clean_replays`` times and once per corruption."""
    from goldwatch.golden_sets import build_golden_set, replay
    from goldwatch.runtimes.torch import TorchRuntime

    spec = KINDS[kind]
    model, _ = train_example_model(kind, seed=seed)
    x, y = eval_data(kind)
    clean = TorchRuntime.from_module(model, spec.signature, device=device)
    golden = build_golden_set(clean, {spec.input_name: x}, None, labels=y, repeats=repeats)
    false_alarms = sum(not replay(clean, golden).ok for _ in range(clean_replays))
    expected = golden.expected[spec.output_name]
    atol = golden.tolerances[spec.output_name].atol
    rows = []
    for name in corruptions:
        runtime = TorchRuntime.from_module(corrupt(kind, model, name, seed=seed), spec.signature, device=device)
        report = replay(runtime, golden)
        actual = report.outputs[spec.output_name]
        scores = np.where(np.isnan(actual), -np.inf, actual)
        changed = float(np.mean(scores.argmax(axis=1) != expected.argmax(axis=1)))
        max_abs = next(c for c in report.checks if c.name.endswith(":max_abs_error")).measured["value"]
        rows.append(
            FaultRow(
                corruption=name,
                detected=not report.ok,
                top1_changed=changed,
                harmful=changed >= 0.01,
                failed_checks=tuple(c.name for c in report.checks if not c.ok),
                max_abs_error=float(max_abs) if max_abs is not None else float("nan"),
                atol=atol,
            )
        )
    return FaultMatrix(
        kind=kind, device=device, rows=tuple(rows), clean_replays=clean_replays, false_alarms=false_alarms,
        n_samples=golden.n_samples,
    )
