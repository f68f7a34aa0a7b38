"""Evidence about one served model, the kinds of evidence the policy knows, and reports from outside the sidecar.

Every check the sidecar runs, and every report another component sends it, becomes one :class:`Evidence`: the
:class:`~goldwatch.checks.Check` results of one run of one *kind* of check, about one model, for the version that
was served when the run started. The policy (:mod:`.policy`) decides what a kind's failure means from the kind's
row, an :class:`EvidenceKind` -- the design's evidence table made data:

============================  ===============  ==========  ==========================================
kind                          incident class   severity    on failure
============================  ===============  ==========  ==========================================
``files``                     integrity        critical    rollback + page (the bytes changed)
``golden``                    golden           critical    confirm once, then rollback + page
``resident`` (external)       resident         critical    rollback + page; a silent source: warning
``readiness``                 server           error       page after a grace period; never a rollback;
                                                           with a fallback: route to it once it is verified
``device``                    device           error       page; route to the CPU variant once the
                                                           cross-device golden set proves it
``version``                   version          error       page, and tell the server to reload
``rollback_readiness``        rollback-ready   warning     reported (status, metrics), never paged
``standby``                   standby          warning     an alternate fails its golden set: page
``drift`` (live drift)        drift            warning     page; never a rollback
``data_quality`` (live drift) data-quality     error       page; never a rollback
============================  ===============  ==========  ==========================================

A failure of a kind with ``reroute`` alternates moves the model's traffic to the first of them that is configured
and passes its golden sets (disaster recovery; see :mod:`goldwatch.watchdog.recovery`), and back once the primary
passes again.

A new kind is one more row registered with :meth:`EvidenceKinds.register`; nothing in the policy changes. The
last two are live drift's (:mod:`goldwatch.watchdog.live.sidecar`), registered when a watched model has a
``[serve.watch.drift]`` table; its K-windows-in-a-row rule is applied before it reports, so they page on the
first failing report.

>>> kinds = EvidenceKinds.builtin()
>>> kinds.get("files").may_rollback, kinds.get("readiness").may_rollback, kinds.get("resident").external
(True, False, True)
>>> kinds.register(EvidenceKind("drift", check_class="drift", severity="warning", consecutive=3, external=True))
>>> sorted(k.name for k in kinds.external())
['drift', 'resident']
>>> report = parse_report({"source": "agent:pod-1:42", "kind": "resident", "version": "7", "interval_s": 30,
...     "checks": [{"name": "resident:fingerprint", "status": "fail", "summary": "tensor 'w' block 3 differs",
...                 "details": {"tensor": "w", "block": 3}}]}, kinds=kinds)
>>> report.checks[0].status, report.checks[0].details["block"], report.interval_s
('fail', 3, 30.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from goldwatch.checks import Check, Status
from goldwatch.errors import InvalidInputError
from goldwatch.watchdog.alerts.events import Severity

__all__ = [
    "BUILTIN_KINDS",
    "Evidence",
    "EvidenceKind",
    "EvidenceKinds",
    "ExternalReport",
    "parse_report",
    "worst_status",
]

SCHEDULER_SOURCE = "scheduler"


@dataclasses.dataclass(frozen=True)
class EvidenceKind:
    """One row of the policy table: what a failure of this kind of evidence means and may cause.

    ``check_class`` names the incident (one per model and class). ``severity`` is the page's for a failure; a run
    that only *errored* (could not check) pages at most ``error``. ``may_rollback``: a failure proves the served
    model wrong (files, golden, resident fingerprints). ``may_reload``: the fix is to tell the server to load what
    is served (version skew). ``pages``: False for evidence that is reported, never paged. ``confirm``: one
    immediate re-run before acting. ``consecutive``: failures in a row before a page (drift windows).
    ``external``: reported by another component (``POST /v1/models/{model}/evidence``), not scheduled here;
    such a source that reported with an ``interval_s`` and then stays silent for more than the model's
    ``resident_stale_factor`` intervals raises a warning (class ``<check_class>-stale``), never a rollback.
    ``reroute``: the alternates (``fallback``, ``cpu_variant``), in order of preference, that a failure of this
    kind moves the model's traffic to (after its grace period), when configured and verified.
    """

    name: str
    check_class: str
    severity: Severity
    may_rollback: bool = False
    may_reload: bool = False
    pages: bool = True
    confirm: bool = False
    consecutive: int = 1
    external: bool = False
    reroute: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.check_class or ":" in self.check_class:
            raise InvalidInputError(f"evidence kind {self.name!r}: name and check_class must be non-empty "
                                    f"and the class must not contain ':' (got {self.check_class!r})")
        if self.consecutive < 1:
            raise InvalidInputError(f"evidence kind {self.name!r}: consecutive must be >= 1")
        unknown = [r for r in self.reroute if r not in ("fallback", "cpu_variant")]
        if unknown:
            raise InvalidInputError(f"evidence kind {self.name!r}: reroute names {unknown}; the alternates are "
                                    "'fallback' and 'cpu_variant'")
        if self.may_rollback and self.may_reload:
            raise InvalidInputError(f"evidence kind {self.name!r}: a failure either proves the model wrong "
                                    "(may_rollback) or calls for a reload (may_reload), not both")


BUILTIN_KINDS: tuple[EvidenceKind, ...] = (
    EvidenceKind("files", "integrity", "critical", may_rollback=True,
                 description="served files against the served version's manifest"),
    EvidenceKind("golden", "golden", "critical", may_rollback=True, confirm=True,
                 description="golden replay against the live endpoint, within calibrated tolerances"),
    EvidenceKind("readiness", "server", "error", reroute=("fallback", "cpu_variant"),
                 description="the server's and the model's ready endpoints"),
    EvidenceKind("device", "device", "error", confirm=True, reroute=("cpu_variant", "fallback"),
                 description="the device the server reports for the model (a GPU lost)"),
    EvidenceKind("version", "version", "error", may_reload=True,
                 description="the version the server reports against the one the registry serves"),
    EvidenceKind("rollback_readiness", "rollback-ready", "warning", pages=False,
                 description="a verified rollback target exists (reported, never acted on)"),
    EvidenceKind("standby", "standby", "warning",
                 description="the fallback and the CPU variant pass their golden sets through their endpoints"),
    EvidenceKind("resident", "resident", "critical", may_rollback=True, external=True,
                 description="fingerprints of the weights resident in the server's memory (in-process agent)"),
)


class EvidenceKinds:
    """The policy table: every kind of evidence the sidecar accepts, by name."""

    def __init__(self, kinds: Sequence[EvidenceKind] = ()) -> None:
        self._kinds: dict[str, EvidenceKind] = {}
        for kind in kinds:
            self.register(kind)

    @classmethod
    def builtin(cls) -> EvidenceKinds:
        return cls(BUILTIN_KINDS)

    def register(self, kind: EvidenceKind, *, replace: bool = False) -> None:
        """Add a kind (an extension's). Its name and incident class must be new unless ``replace``."""
        if not replace:
            if kind.name in self._kinds:
                raise InvalidInputError(f"evidence kind {kind.name!r} is already registered",
                                        hint="pick another name, or pass replace=True to change its row")
            clash = [k.name for k in self._kinds.values() if k.check_class == kind.check_class]
            if clash:
                raise InvalidInputError(f"incident class {kind.check_class!r} already belongs to {clash[0]!r}",
                                        hint="each kind pages under its own class")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> EvidenceKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise InvalidInputError(f"unknown evidence kind {name!r} (known: {', '.join(sorted(self._kinds))})",
                                    where="kind") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[EvidenceKind]:
        return iter(self._kinds.values())

    def external(self) -> list[EvidenceKind]:
        return [k for k in self._kinds.values() if k.external]

    def by_class(self, check_class: str) -> EvidenceKind | None:
        return next((k for k in self._kinds.values() if k.check_class == check_class), None)


def worst_status(checks: Sequence[Check]) -> Status:
    """fail > error > pass > skip: what one run says as a whole.

    >>> worst_status([Check("a", "pass"), Check("b", "error")]), worst_status([Check("a", "skip")])
    ('error', 'skip')
    """
    statuses = {c.status for c in checks}
    for status in ("fail", "error", "pass"):
        if status in statuses:
            return status
    return "skip"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The checks of one run of one kind about one model.

    ``version`` is the version served when the run started (None: unknown); evidence about a version that is no
    longer served is recorded and otherwise ignored. ``source`` is ``scheduler`` for the sidecar's own checks,
    else the reporter (``agent:<host>:<pid>``). Times are epoch seconds. ``confirmed``: this is the immediate
    re-run of a failure.
    """

    model: str
    kind: str
    checks: tuple[Check, ...]
    started_at: float
    finished_at: float
    version: str | None = None
    source: str = SCHEDULER_SOURCE
    interval_s: float | None = None
    confirmed: bool = False

    @property
    def status(self) -> Status:
        return worst_status(self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    def summary(self) -> str:
        failed = self.failed
        if not failed:
            return f"{self.kind}: {self.status} ({len(self.checks)} check(s))"
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"{first.name}: {first.summary}{more}"


# ---- reports from outside (POST /v1/models/{model}/evidence, or submit_evidence in-process) ------------------

Number = float | int | str | bool | None


class _CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+:\S.*$")
    status: Literal["pass", "fail", "error", "skip"]
    summary: str = Field("", max_length=4000)
    measured: dict[str, Number] = Field(default_factory=dict, max_length=200)
    threshold: dict[str, Number] = Field(default_factory=dict, max_length=200)
    details: dict[str, Any] = Field(default_factory=dict)
    duration_s: float | None = Field(None, ge=0)

    @field_validator("measured", "threshold")
    @classmethod
    def _finite(cls, value: dict[str, Number]) -> dict[str, Number]:
        bad = [k for k, v in value.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"numbers must be finite (write null instead): {', '.join(bad)}")
        return value


class _ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]*$")
    kind: str = Field(min_length=1, max_length=64)
    version: str | None = Field(None, min_length=1, max_length=128)
    interval_s: float | None = Field(None, gt=0, le=86400)
    checks: list[_CheckIn] = Field(min_length=1, max_length=1000)


@dataclasses.dataclass(frozen=True)
class ExternalReport:
    """A validated report from another component: the same fields as the JSON body."""

    source: str
    kind: str
    version: str | None
    interval_s: float | None
    checks: tuple[Check, ...]

    def evidence(self, model: str, *, received_at: float) -> Evidence:
        return Evidence(model=model, kind=self.kind, checks=self.checks, started_at=received_at,
                        finished_at=received_at, version=self.version, source=self.source,
                        interval_s=self.interval_s)


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def parse_report(data: Any, *, kinds: EvidenceKinds, where: str = "evidence") -> ExternalReport:
    """Validate a decoded JSON report; every problem at once, with its key path, as one InvalidInputError."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"the report must be a JSON object, got {type(data).__name__}", where=where,
                                hint='send {"source", "kind", "version", "interval_s", "checks": [...]}')
    try:
        raw = _ReportIn.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{_loc(err['loc'])}: {msg.removeprefix('Value error, ')}")
        raise InvalidInputError(f"{len(problems)} problem(s): " + "; ".join(problems), where=where,
                                hint="see the evidence contract in goldwatch.watchdog.sidecar's documentation") \
            from None
    if raw.kind not in kinds or not kinds.get(raw.kind).external:
        known = ", ".join(sorted(k.name for k in kinds.external())) or "none"
        raise InvalidInputError(f"kind: {raw.kind!r} is not a kind of evidence reported from outside "
                                f"(accepted: {known})", where=where)
    checks = tuple(Check(name=c.name, status=c.status, summary=c.summary, measured=dict(c.measured),
                         threshold=dict(c.threshold), details=dict(c.details), duration_s=c.duration_s)
                   for c in raw.checks)
    return ExternalReport(source=raw.source, kind=raw.kind, version=raw.version, interval_s=raw.interval_s,
                          checks=checks)
