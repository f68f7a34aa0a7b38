"""The registry's typed results: versions, transitions, rollback outcomes and readiness reports.

Every result is a dataclass (so ``goldwatch.serialize.to_jsonable`` turns it into ``--json`` output) and the
pass/fail ones also speak :class:`~goldwatch.checks.Check`, which is what the CI gate and the sidecar consume.

>>> r = RollbackResult(model="m", from_version="7", to_version="6", phases={"switch": 0.001, "reload": 0.2})
>>> r.ok, r.summary()
(True, 'rolled back m 7 -> 6 in 0.201 s')
>>> [c.status for c in r.to_checks()]
['pass']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from goldwatch.checks import Check

__all__ = [
    "NO_RELOAD_WARNING",
    "STATES",
    "Event",
    "HostServing",
    "ModelVersion",
    "ReadinessReport",
    "RecoveryAction",
    "RetentionReport",
    "RollbackResult",
    "SkippedVersion",
    "State",
    "TRANSITIONS",
]

# Said (in the result, its JSON and the CLI output) whenever a serving pointer is switched with no reloader.
NO_RELOAD_WARNING = (
    "no server was told to reload (reload is 'none'): the pointer is switched, but a running server keeps "
    "serving what it loaded until it reloads by itself"
)

State = Literal["candidate", "known-good", "quarantined", "retired"]
STATES: tuple[State, ...] = ("candidate", "known-good", "quarantined", "retired")

# Allowed state changes. A quarantined version never becomes known-good again: its bytes were proven wrong once,
# so the fix is to add the artifact again (a new version with a fresh manifest), which keeps the audit trail honest.
TRANSITIONS: dict[State, frozenset[State]] = {
    "candidate": frozenset({"known-good", "quarantined", "retired"}),
    "known-good": frozenset({"quarantined", "retired"}),
    "quarantined": frozenset({"retired"}),
    "retired": frozenset(),
}


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    ``path`` is the artifact (file or directory) inside the content-addressed store; ``manifest_path`` its
    integrity manifest; ``digest`` the store's tree digest (same bytes, same digest). ``warnings`` are what the
    operation that returned it wants said (promote: a pointer switched with no server told to reload).
    """

    model: str
    version: str
    seq: int
    state: State
    path: Path
    manifest_path: Path
    digest: str
    size_bytes: int
    created_at: str
    created_by: str
    golden: tuple[str, ...] = ()
    serving: bool = False
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Event:
    """One entry of the audit trail: who did what to which version, when, and why."""

    id: int
    model: str
    version: str | None
    action: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    at: str
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class HostServing:
    """What one host serves: the registry's record of the last switch of that host's own pointer.

    ``version`` is None when the host serves the fallback model; ``last_seen`` is when that host last opened the
    registry or sent a heartbeat (its sidecar does every ``serve.heartbeat_s``; a pod that is gone stops updating it).
    """

    model: str
    host: str
    version: str | None
    target: str
    switched_at: str
    last_seen: str | None = None


@dataclasses.dataclass(frozen=True)
class SkippedVersion:
    """A known-good version rollback did not use, and why (it was quarantined when its bytes failed)."""

    version: str
    reason: str
    quarantined: bool


@dataclasses.dataclass
class RollbackResult:
    """What a rollback did. ``phases`` holds seconds per phase (select, switch, verify_after, reload, ready).

    ``server_ready`` is None when no server was told to reload (reload ``none``); ``warnings`` then says so.
    ``no_target``: nothing was switched because no known-good version verified (and no fallback is configured):
    the caller may degrade some other way (the sidecar routes to its verified fallback).
    """

    model: str
    from_version: str | None
    to_version: str | None
    skipped: list[SkippedVersion] = dataclasses.field(default_factory=list)
    fallback: Path | None = None
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    server_ready: bool | None = None
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    no_target: bool = False

    @property
    def switched(self) -> bool:
        return self.to_version is not None or self.fallback is not None

    @property
    def ok(self) -> bool:
        """A target (or the fallback) is serving and the server, when one was told, is ready."""
        return self.switched and self.error is None and self.server_ready is not False

    @property
    def total_s(self) -> float:
        return sum(self.phases.values())

    def summary(self) -> str:
        if not self.switched:
            return f"no rollback for {self.model}: {self.error or 'no verified known-good version'}"
        target = self.to_version if self.to_version is not None else f"fallback {self.fallback}"
        text = f"rolled back {self.model} {self.from_version or '(none)'} -> {target} in {self.total_s:.3g} s"
        if self.skipped:
            text += f" (skipped {', '.join(s.version for s in self.skipped)})"
        if self.error:
            text += f"; {self.error}"
        return text

    def to_checks(self, prefix: str = "registry") -> list[Check]:
        return [
            Check(
                name=f"{prefix}:{self.model}:rollback",
                status="pass" if self.ok else ("error" if self.switched else "fail"),
                summary=self.summary(),
                measured={"total_s": round(self.total_s, 6), **{k: round(v, 6) for k, v in self.phases.items()}},
                details={
                    "from": self.from_version,
                    "to": self.to_version,
                    "fallback": str(self.fallback) if self.fallback else None,
                    "skipped": [dataclasses.asdict(s) for s in self.skipped],
                    "warnings": list(self.warnings),
                },
            )
        ]


@dataclasses.dataclass
class ReadinessReport:
    """Whether ``model`` can be rolled back right now: a target exists, its digests match, (optionally) it loads."""

    model: str
    target: str | None
    checks: list[Check] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_checks(self) -> list[Check]:
        return list(self.checks)


@dataclasses.dataclass(frozen=True)
class RecoveryAction:
    """What opening the registry did with an operation a crash left half-done."""

    intent_id: int
    op: str
    model: str
    outcome: Literal["completed", "reverted"]
    detail: str


@dataclasses.dataclass
class RetentionReport:
    """What retention retired and deleted; ``kept`` are the known-good versions left."""

    model: str
    kept: list[str] = dataclasses.field(default_factory=list)
    retired: list[str] = dataclasses.field(default_factory=list)
    deleted_bytes: int = 0
