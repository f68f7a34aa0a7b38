"""A watched model as the service holds it, and the errors the API maps to HTTP statuses."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from goldwatch.config import ServeCheckConfig, ServeWatchConfig
from goldwatch.errors import InvalidInputError, StateError
from goldwatch.watchdog.sidecar.checks import ScheduledCheck
from goldwatch.watchdog.sidecar.evidence import Evidence
from goldwatch.watchdog.sidecar.policy import ModelView
from goldwatch.watchdog.sidecar.targets import Target

if TYPE_CHECKING:
    from goldwatch.watchdog.recovery.routes import Router

__all__ = ["BusyError", "ConflictError", "ModelContext", "UnknownModelError"]


class UnknownModelError(InvalidInputError):
    """The API named a model this sidecar does not watch (HTTP 404)."""


class ConflictError(InvalidInputError):
    """The request cannot be carried out in the model's current state (HTTP 409)."""


class BusyError(StateError):
    """Too much is queued for the model: try again shortly (HTTP 429)."""


@dataclasses.dataclass
class ModelContext:
    """One watched model: its target, its checks and their schedules, and the policy's view of it. ``router``
    moves its traffic to an alternate and back (disaster recovery); ``degraded_counted_at``: up to when the time
    spent on an alternate is counted in the metrics."""

    name: str
    watch: ServeWatchConfig
    target: Target
    checks: dict[str, ScheduledCheck]
    schedules: dict[str, ServeCheckConfig]
    view: ModelView
    rto_s: float
    latest: dict[str, Evidence] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    dirty: dict[str, Evidence] = dataclasses.field(default_factory=dict)
    dirty_sources: set[str] = dataclasses.field(default_factory=set)
    lock: asyncio.Lock | None = None
    action: asyncio.Task[Any] | None = None
    rollback_ready: bool | None = None
    startup: str | None = None
    router: Router | None = None
    degraded_counted_at: float | None = None
    # reports from outside, decided on in arrival order by one task per model (the HTTP answer does not wait)
    reports: asyncio.Queue[tuple[Evidence, asyncio.Future[Any] | None]] | None = None
    reported: dict[str, str] = dataclasses.field(default_factory=dict)  # source -> status of its last report
