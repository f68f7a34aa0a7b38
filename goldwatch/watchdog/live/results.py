"""What one closed window of live traffic says: typed, frozen results that convert to :class:`~goldwatch.checks.Check`.

* :class:`FeatureDrift` -- one feature's test against the reference: statistic, p-value (raw and corrected), effect
  size, whether it drifted, whether its streaming detector alarmed;
* :class:`QualityFinding` -- one data-quality rate of one feature (NaN, inf, out of the reference's range, missing,
  unseen category, schema violations) against the reference's own rate;
* :class:`PartResult` -- the inputs or the outputs (prediction drift) of one window;
* :class:`PolicyState` -- the page rule's state after the window (drift in K consecutive windows, recovery);
* :class:`WindowResult` -- all of it, with :meth:`~WindowResult.drift_checks` (kind ``drift``: a warning page,
  never a rollback) and :meth:`~WindowResult.quality_checks` (kind ``data_quality``: an error page).

>>> f = FeatureDrift(name="age", part="inputs", kind="numeric", test="ks", statistic=0.12, pvalue=1e-9,
...                  adjusted_pvalue=2e-8, effect=0.12, drifted=True)
>>> part = PartResult(part="inputs", n_rows=5000, tested=True, features=(f,), quality=())
>>> state = PolicyState(consecutive=2, paging=True, quality_paging=False, windows=7)
>>> w = WindowResult(model="fraud", version="7", index=7, opened_at=0.0, closed_at=60.0, rows=5000,
...                  close_reason="rows", inputs=part, outputs=None, state=state)
>>> [(c.name, c.status) for c in w.drift_checks()]
[('drift:inputs', 'fail'), ('drift:predictions', 'skip')]
>>> w.drift_checks()[0].summary
'drift in 2 consecutive window(s) (page after 2): age (ks 0.12, adj. p 2e-08, effect 0.12)'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

from goldwatch.checks import Check

__all__ = ["FeatureDrift", "PartResult", "PolicyState", "QualityFinding", "WindowResult"]

Part = Literal["inputs", "outputs"]
_PART_LABEL = {"inputs": "inputs", "outputs": "predictions"}


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """One feature of one window against the reference. ``effect``: the KS statistic (numeric) or the total
    variation distance between category frequencies (categorical); ``trend_alarm``: the streaming detector over this
    feature's per-window evidence alarmed at this window."""

    name: str
    part: Part
    kind: Literal["numeric", "categorical"]
    test: str
    statistic: float
    pvalue: float | None
    adjusted_pvalue: float | None
    effect: float
    drifted: bool
    trend_alarm: bool = False
    n_current: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "test": self.test, "statistic": _num(self.statistic),
                "pvalue": _num(self.pvalue), "adjusted_pvalue": _num(self.adjusted_pvalue),
                "effect": _num(self.effect), "drifted": self.drifted, "trend_alarm": self.trend_alarm,
                "n_current": self.n_current}

    def describe(self) -> str:
        text = f"{self.name} ({self.test} {self.statistic:.3g}"
        if self.adjusted_pvalue is not None:
            text += f", adj. p {self.adjusted_pvalue:.2g}"
        return text + f", effect {self.effect:.3g})"


@dataclasses.dataclass(frozen=True)
class QualityFinding:
    """One data-quality rate: ``count`` of ``n`` values (``rate``) against the reference's own ``reference_rate``;
    ``failed`` when the rate is both significantly higher (``pvalue`` after correction) and higher by at least the
    configured floor."""

    name: str
    part: Part
    check: Literal["nan", "inf", "out_of_range", "missing", "unseen_category", "schema"]
    count: int
    n: int
    rate: float
    reference_rate: float
    pvalue: float
    failed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "check": self.check, "count": self.count, "n": self.n, "rate": _num(self.rate),
                "reference_rate": _num(self.reference_rate), "pvalue": _num(self.pvalue), "failed": self.failed}

    def describe(self) -> str:
        return f"{self.name}: {self.check} {self.rate:.1%} (reference {self.reference_rate:.2%})"


@dataclasses.dataclass(frozen=True)
class PartResult:
    """The inputs (or the outputs: prediction drift) of one window. ``tested`` is False for a window below its
    minimum size or a part with no reference (``reason`` says which); such a window is reported, never tested."""

    part: Part
    n_rows: int
    tested: bool
    features: tuple[FeatureDrift, ...]
    quality: tuple[QualityFinding, ...]
    reason: str = ""

    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def trend_alarm(self) -> bool:
        return any(f.trend_alarm for f in self.features)

    @property
    def quality_failed(self) -> bool:
        return any(q.failed for q in self.quality)

    def worst(self, k: int = 5) -> list[FeatureDrift]:
        """The ``k`` features that drifted (or alarmed) most, largest effect first; then the largest effects."""
        ranked = sorted(self.features, key=lambda f: (not (f.drifted or f.trend_alarm), -f.effect))
        return ranked[:k]

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "n_rows": self.n_rows, "tested": self.tested, "reason": self.reason,
                "drifted": self.drifted, "trend_alarm": self.trend_alarm, "quality_failed": self.quality_failed,
                "n_drifted": sum(f.drifted for f in self.features),
                "features": [f.to_dict() for f in self.features],
                "quality": [q.to_dict() for q in self.quality if q.count or q.failed]}


@dataclasses.dataclass(frozen=True)
class PolicyState:
    """The page rule after a window: ``consecutive`` drifted windows in a row, ``paging`` (K in a row, or a streaming
    detector's alarm; a clean tested window recovers), ``quality_paging`` (a data-quality break in this window),
    ``windows``: windows closed so far."""

    consecutive: int
    paging: bool
    quality_paging: bool
    windows: int
    required: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class WindowResult:
    """One closed window of one model. ``close_reason``: ``rows``, ``time``, ``version`` (the served version
    changed) or ``shutdown``. ``ingest``: what the model's ingestion counted while the window was open (drops,
    unparseable bodies by reason, probes left out, orphans)."""

    model: str
    version: str | None
    index: int
    opened_at: float
    closed_at: float
    rows: int
    close_reason: str
    inputs: PartResult
    outputs: PartResult | None
    state: PolicyState
    ingest: Mapping[str, int] = dataclasses.field(default_factory=dict)
    reference: str = ""

    @property
    def parts(self) -> list[PartResult]:
        return [p for p in (self.inputs, self.outputs) if p is not None]

    @property
    def tested(self) -> bool:
        return any(p.tested for p in self.parts)

    @property
    def drifted(self) -> bool:
        return any(p.drifted for p in self.parts)

    @property
    def trend_alarm(self) -> bool:
        return any(p.trend_alarm for p in self.parts)

    @property
    def quality_failed(self) -> bool:
        return any(p.quality_failed for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "index": self.index, "opened_at": self.opened_at,
                "closed_at": self.closed_at, "rows": self.rows, "close_reason": self.close_reason,
                "reference": self.reference, "tested": self.tested, "drifted": self.drifted,
                "trend_alarm": self.trend_alarm, "quality_failed": self.quality_failed,
                "state": self.state.to_dict(), "ingest": dict(self.ingest),
                "inputs": self.inputs.to_dict(), "outputs": None if self.outputs is None else self.outputs.to_dict()}

    # -- checks -----------------------------------------------------------------------------------------------

    def _window_details(self) -> dict[str, Any]:
        return {"window": self.index, "rows": self.rows, "opened_at": self.opened_at, "closed_at": self.closed_at,
                "version": self.version, "reference": self.reference}

    def drift_checks(self, *, top: int = 5) -> list[Check]:
        """Kind ``drift``: ``drift:inputs`` and ``drift:predictions``. A check fails only when the page rule holds
        (drift in ``required`` consecutive windows, or a streaming detector's alarm); a single drifted window
        passes with a summary saying so; an untested part is skipped with the reason."""
        checks = [self._drift_check(self.inputs, top=top)]
        if self.outputs is not None:
            checks.append(self._drift_check(self.outputs, top=top))
        else:
            checks.append(Check(name="drift:predictions", status="skip",
                                summary="no output columns, or no reference for them"))
        return checks

    def _drift_check(self, part: PartResult, *, top: int) -> Check:
        label = _PART_LABEL[part.part]
        name = f"drift:{label}"
        if not part.tested:
            return Check(name=name, status="skip", summary=f"window {self.index} not tested: {part.reason}",
                         details=self._window_details())
        worst = [f for f in part.worst(top) if f.drifted or f.trend_alarm]
        n_drifted = sum(f.drifted for f in part.features)
        measured: dict[str, float | int | str | bool | None] = {
            "n_drifted": n_drifted, "n_features": len(part.features), "rows": part.n_rows,
            "consecutive": self.state.consecutive, "window": self.index}
        details = self._window_details() | {"top": [f.to_dict() for f in worst]}
        failing = self.state.paging and (part.drifted or part.trend_alarm)
        if part.drifted or part.trend_alarm:
            rule = "streaming detector alarm" if part.trend_alarm and not part.drifted else (
                f"drift in {self.state.consecutive} consecutive window(s) (page after {self.state.required})")
            summary = f"{rule}: " + ", ".join(f.describe() for f in worst)
        else:
            summary = f"no drift in {len(part.features)} {label} feature(s), window {self.index} ({part.n_rows} rows)"
        return Check(name=name, status="fail" if failing else "pass", summary=summary, measured=measured,
                     threshold={"consecutive": self.state.required}, details=details)

    def quality_checks(self, *, top: int = 10) -> list[Check]:
        """Kind ``data_quality``: ``data_quality:inputs`` / ``data_quality:predictions``, failing in the window where
        a rate breaks (upstream broke: an error page, never a rollback)."""
        checks = []
        for part in self.parts:
            label = _PART_LABEL[part.part]
            name = f"data_quality:{label}"
            if not part.tested:
                checks.append(Check(name=name, status="skip", summary=f"window {self.index} not tested: "
                                                                       f"{part.reason}"))
                continue
            failed = [q for q in part.quality if q.failed]
            failed.sort(key=lambda q: -(q.rate - q.reference_rate))
            if failed:
                summary = f"{len(failed)} data-quality break(s): " + "; ".join(q.describe() for q in failed[:top])
            else:
                summary = f"{label}: NaN, range, category and schema rates as in the reference ({part.n_rows} rows)"
            checks.append(Check(
                name=name, status="fail" if failed else "pass", summary=summary,
                measured={"n_failed": len(failed), "rows": part.n_rows, "window": self.index},
                details=self._window_details() | {"failed": [q.to_dict() for q in failed[:top]]}))
        return checks
