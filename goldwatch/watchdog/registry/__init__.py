"""The model registry: verified known-good versions, an atomic serving pointer and crash-safe rollback.

* :class:`Registry` -- versions, states (candidate -> known-good -> quarantined / retired) and the audit trail,
  in SQLite (WAL) next to a content-addressed artifact store;
* :func:`make_pointer` -- the serving pointer, ``current-link`` (symlink) or ``numbered`` (Triton);
* :class:`OipReloader`, :class:`HttpHookReloader`, :class:`CommandReloader` -- telling the server to reload;
* :meth:`Registry.rollback` -- to the newest known-good version that re-verifies, phase by phase;
* :meth:`Registry.check` -- rollback readiness; :meth:`Registry.apply_retention` -- keep the last K.

Nothing here imports torch, onnxruntime or httpx at import time.
"""

from goldwatch.watchdog.registry.core import Registry, Serving, default_actor
from goldwatch.watchdog.registry.models import (
    STATES,
    Event,
    ModelVersion,
    ReadinessReport,
    RecoveryAction,
    RetentionReport,
    RollbackResult,
    SkippedVersion,
    State,
)
from goldwatch.watchdog.registry.pointer import CurrentLinkPointer, NumberedPointer, PointerState, make_pointer
from goldwatch.watchdog.registry.reload import CommandReloader, HttpHookReloader, OipReloader, make_reloader

__all__ = [
    "STATES",
    "CommandReloader",
    "CurrentLinkPointer",
    "Event",
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
    "default_actor",
    "make_pointer",
    "make_reloader",
]
