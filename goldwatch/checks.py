"""The one result type every check produces: integrity, golden replay, drift, gate, sidecar.

A :class:`Check` is a named test case with its numbers and the threshold it was held to. The gate turns a list of
them into JUnit XML, Markdown, JSON and HTML; the sidecar turns them into metrics and alerts. Keeping one shape is
what lets every report speak about every check.

>>> c = Check.from_comparison("golden:logits:max_abs_error", measured=3e-7, threshold=1e-5, higher_is_worse=True,
...                           unit="abs")
>>> c.status, c.ok
('pass', True)
>>> report = CheckReport([c, Check(name="artifact:digest", status="fail", summary="model.onnx: digest differs")])
>>> report.ok, report.counts()
(False, {'pass': 1, 'fail': 1, 'error': 0, 'skip': 0})
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

__all__ = ["Check", "CheckReport", "Status"]

Status = Literal["pass", "fail", "error", "skip"]
Number = float | int | str | bool | None


@dataclasses.dataclass(frozen=True)
class Check:
    """One named check.

    ``status``: pass, fail (the model is wrong/corrupt/drifted), error (the check could not run: unreachable server,
    bad input) or skip (not applicable here, e.g. no GPU; ``summary`` says why). ``measured`` and ``threshold`` hold
    the numbers, ``details`` anything a report or responder needs to see (per-feature tables, byte ranges, ...).
    """

    name: str
    status: Status
    summary: str = ""
    measured: Mapping[str, Number] = dataclasses.field(default_factory=dict)
    threshold: Mapping[str, Number] = dataclasses.field(default_factory=dict)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    duration_s: float | None = None

    @property
    def ok(self) -> bool:
        """Passed or skipped (a skip is not a failure; its summary says why it was skipped)."""
        return self.status in ("pass", "skip")

    @classmethod
    def from_comparison(
        cls,
        name: str,
        *,
        measured: float,
        threshold: float,
        higher_is_worse: bool,
        unit: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> Check:
        """A check that passes when ``measured`` is on the good side of ``threshold`` (NaN always fails)."""
        if math.isnan(measured):
            passed = False
        else:
            passed = measured <= threshold if higher_is_worse else measured >= threshold
        op = "<=" if higher_is_worse else ">="
        verb = "within" if passed else "outside"
        limit = f"{threshold:.6g} {unit}".strip()
        summary = f"{measured:.6g} {op} {limit}" if passed else f"{measured:.6g} {verb} limit ({op} {limit})"
        return cls(
            name=name,
            status="pass" if passed else "fail",
            summary=summary,
            measured={"value": measured},
            threshold={"limit": threshold, "direction": "max" if higher_is_worse else "min"},
            details=dict(details or {}),
        )


@dataclasses.dataclass
class CheckReport:
    """An ordered collection of checks; ``ok`` when none failed or errored."""

    checks: list[Check] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def extend(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def errored(self) -> bool:
        return any(c.status == "error" for c in self.checks)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status in ("fail", "error")]
