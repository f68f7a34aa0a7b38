"""The gate's verdict: every check it ran, the plots' data, and the one word CI acts on.

The JSON form is documented by ``verdict.schema.json`` (next to this module; see also docs/gate.md) and is what
``goldwatch gate --verdict FILE`` writes. JUnit, Markdown and HTML are renderings of the same object, so the four
reports can never disagree.

>>> from goldwatch.checks import Check
>>> v = GateVerdict.from_checks(
...     [Check("artifact:digest", "pass", "3 files match"), Check("golden:logits", "fail", "max error 0.3 > 1e-05")],
...     candidate=ModelRef(spec="model.onnx"),
... )
>>> v.verdict, v.exit_code, v.counts
('fail', 1, {'pass': 1, 'fail': 1, 'error': 0, 'skip': 0})
>>> v.headline()
'FAIL: 1 of 2 checks failed (golden:logits)'
>>> GateVerdict.from_json(v.to_json()).checks[1].summary
'max error 0.3 > 1e-05'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from goldwatch._version import __version__
from goldwatch.checks import Check, CheckReport
from goldwatch.errors import GoldwatchError
from goldwatch.serialize import to_jsonable

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "BarPlot",
    "ErrorInfo",
    "GateVerdict",
    "HistogramPlot",
    "ModelRef",
    "Outcome",
    "Promotion",
]

SCHEMA_ID = "goldwatch.gate.verdict/1"
SCHEMA_PATH = Path(__file__).with_name("verdict.schema.json")

Outcome = Literal["pass", "fail", "error"]
_EXIT = {"pass": 0, "fail": 1, "error": 2}


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A model the gate looked at: what the user passed, and the registry name/version when it came from there."""

    spec: str
    name: str | None = None
    version: str | None = None
    runtime: str | None = None


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """Why the gate could not run to the end (verdict ``error``): the three parts of a goldwatch error."""

    what: str
    where: str | None = None
    hint: str | None = None
    kind: str = "GoldwatchError"

    @classmethod
    def from_exception(cls, err: GoldwatchError) -> ErrorInfo:
        return cls(what=err.what, where=err.where, hint=err.hint, kind=type(err).__name__)

    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return text + (f" (fix: {self.hint})" if self.hint else "")


@dataclasses.dataclass(frozen=True)
class HistogramPlot:
    """Counts per bin; ``labels`` name the bins (e.g. ``"1e-7..1e-6"``), ``limit_bin`` marks where the limit falls."""

    title: str
    group: str
    labels: Sequence[str]
    counts: Sequence[int]
    x_label: str = ""
    limit: float | None = None
    limit_bin: int | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class BarPlot:
    """One bar per label, a horizontal limit line, bars on the wrong side of it flagged."""

    title: str
    group: str
    labels: Sequence[str]
    values: Sequence[float]
    flagged: Sequence[bool]
    y_label: str = ""
    limit: float | None = None
    y_max: float | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Promotion:
    """What ``--promote`` recorded in the registry."""

    registry: str
    model: str
    version: str
    state: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _environment() -> dict[str, str]:
    return {"goldwatch": __version__, "python": platform.python_version(), "platform": platform.platform()}


@dataclasses.dataclass
class GateVerdict:
    """Everything one gate run decided and why. ``verdict`` is derived from the checks unless ``error`` is set."""

    verdict: Outcome
    checks: list[Check]
    candidate: ModelRef | None = None
    baseline: ModelRef | None = None
    golden_sets: list[str] = dataclasses.field(default_factory=list)
    #: golden set as given -> sha256 of the golden.json it loaded (what to pin: --golden DIR@sha256:HEX)
    golden_digests: dict[str, str] = dataclasses.field(default_factory=dict)
    manifest: str | None = None
    devices: list[str] = dataclasses.field(default_factory=lambda: ["cpu"])
    thresholds: dict[str, Any] = dataclasses.field(default_factory=dict)
    histograms: list[HistogramPlot] = dataclasses.field(default_factory=list)
    bars: list[BarPlot] = dataclasses.field(default_factory=list)
    error: ErrorInfo | None = None
    promotion: Promotion | None = None
    started_at: str = dataclasses.field(default_factory=_now)
    finished_at: str = dataclasses.field(default_factory=_now)
    duration_s: float = 0.0
    environment: dict[str, str] = dataclasses.field(default_factory=_environment)
    schema: str = SCHEMA_ID

    @classmethod
    def from_checks(
        cls, checks: Iterable[Check], *, error: ErrorInfo | None = None, **fields: Any
    ) -> GateVerdict:
        """Derive the verdict: ``error`` if the gate could not finish or a check errored, else fail/pass."""
        checks = list(checks)
        report = CheckReport(checks)
        outcome: Outcome
        if error is not None or report.errored:
            outcome = "error"
        elif not report.ok:
            outcome = "fail"
        else:
            outcome = "pass"
        return cls(verdict=outcome, checks=checks, error=error, **fields)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail, 2 error -- what ``goldwatch gate`` exits with."""
        return _EXIT[self.verdict]

    @property
    def counts(self) -> dict[str, int]:
        return CheckReport(self.checks).counts()

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def headline(self) -> str:
        """One line for a person: the verdict and what caused it."""
        n = len(self.checks)
        if self.verdict == "error":
            if self.error is not None:
                return f"ERROR: the gate could not run: {self.error.message()}"
            names = [c.name for c in self.checks if c.status == "error"]
            return f"ERROR: {len(names)} of {n} checks could not run ({', '.join(names[:3])})"
        if self.verdict == "fail":
            names = [c.name for c in self.checks if c.status == "fail"]
            more = f", +{len(names) - 3} more" if len(names) > 3 else ""
            return f"FAIL: {len(names)} of {n} checks failed ({', '.join(names[:3])}{more})"
        skipped = self.counts["skip"]
        return f"PASS: {n - skipped} of {n} checks passed" + (f", {skipped} skipped" if skipped else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON verdict (``verdict.schema.json``): plain data, with exit code, counts and headline added."""
        # The fields a CI script reads first come first.
        data: dict[str, Any] = {
            "schema": self.schema,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "headline": self.headline(),
            "counts": self.counts,
        }
        for f in dataclasses.fields(self):
            data.setdefault(f.name, to_jsonable(getattr(self, f.name)))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateVerdict:
        """Read a JSON verdict back (e.g. for ``registry promote --evidence`` or to re-render the reports)."""
        if data.get("schema") != SCHEMA_ID:
            from goldwatch.errors import DataError

            raise DataError(
                f"not a gate verdict (schema {data.get('schema')!r}, expected {SCHEMA_ID!r})",
                hint="pass the file written by `goldwatch gate --verdict FILE`",
            )

        def opt(kind: Any, value: Any) -> Any:
            return None if value is None else kind(**value)

        return cls(
            verdict=data["verdict"],
            checks=[Check(**c) for c in data["checks"]],
            candidate=opt(ModelRef, data.get("candidate")),
            baseline=opt(ModelRef, data.get("baseline")),
            golden_sets=list(data.get("golden_sets", [])),
            golden_digests=dict(data.get("golden_digests", {})),  # absent in verdicts of older gates
            manifest=data.get("manifest"),
            devices=list(data.get("devices", ["cpu"])),
            thresholds=dict(data.get("thresholds", {})),
            histograms=[HistogramPlot(**h) for h in data.get("histograms", [])],
            bars=[BarPlot(**b) for b in data.get("bars", [])],
            error=opt(ErrorInfo, data.get("error")),
            promotion=opt(Promotion, data.get("promotion")),
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            environment=dict(data.get("environment", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> GateVerdict:
        return cls.from_dict(json.loads(text))
