"""The model registry: verified known-good versions, an atomic serving pointer and crash-safe rollback.

* :class:`Registry` -- versions, states (candidate -> known-good -> quarantined / retired) and the audit trail,
  in SQLite (WAL) or, for a fleet, PostgreSQL, next to a content-addressed artifact store;
* :func:`make_pointer` -- the serving pointer, ``current-link`` (symlink) or ``numbered`` (Triton);
* :class:`OipReloader`, :class:`HttpHookReloader`, :class:`CommandReloader` -- telling the server to reload;
* :meth:`Registry.rollback` -- to the newest known-good version that re-verifies, phase by phase;
* :meth:`Registry.check` -- rollback readiness; :meth:`Registry.apply_retention` -- keep the last K.

Nothing here imports torch, onnxruntime, httpx or psycopg at import time.
"""

from goldwatch.watchdog.registry.core import Registry, resolve_database
from goldwatch.watchdog.registry.incidents import FleetDecision, FleetIncident, FleetIncidents, Takeover
from goldwatch.watchdog.registry.models import (
    STATES,
    Event,
    HostServing,
    ModelVersion,
    ReadinessReport,
    RecoveryAction,
    RetentionReport,
    RollbackResult,
    SkippedVersion,
    State,
)
from goldwatch.watchdog.registry.names import default_actor, default_host
from goldwatch.watchdog.registry.pointer import CurrentLinkPointer, NumberedPointer, PointerState, make_pointer
from goldwatch.watchdog.registry.reload import CommandReloader, HttpHookReloader, OipReloader, make_reloader
from goldwatch.watchdog.registry.serving import Serving
from goldwatch.watchdog.registry.settings import database_from_config, host_from_config
from goldwatch.watchdog.registry.storage import DatabaseUrl, mask_url, parse_database_url

__all__ = [
    "STATES",
    "CommandReloader",
    "CurrentLinkPointer",
    "DatabaseUrl",
    "Event",
    "FleetDecision",
    "FleetIncident",
    "FleetIncidents",
    "HostServing",
    "HttpHookReloader",
    "ModelVersion",
    "NumberedPointer",
    "OipReloader",
    "PointerState",
    "ReadinessReport",
    "RecoveryAction",
    "Registry",
    "RetentionReport",
    "RollbackResult",
    "Serving",
    "SkippedVersion",
    "State",
    "Takeover",
    "database_from_config",
    "default_actor",
    "default_host",
    "host_from_config",
    "make_pointer",
    "make_reloader",
    "mask_url",
    "parse_database_url",
    "resolve_database",
]
