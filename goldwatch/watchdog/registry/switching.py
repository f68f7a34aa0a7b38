"""Switching a serving pointer under the intent journal, and resolving switches a crash interrupted.

:func:`switch_and_commit` is the one way promote and rollback change what a host serves:

1. commit an intent (op, model, payload, this host) -- :mod:`.journal`;
2. stage the new version beside the pointer (invisible to the server);
3. in ONE transaction: re-check the decision, locking the rows it rests on (``precheck``: a compare-and-set that
   raises :class:`~goldwatch.errors.ConcurrentChangeError` if another host changed them), switch the pointer,
   apply the state changes and the serving record, close the intent.

A conflict found in step 3 happens before the switch: the intent is reverted and nothing changed. A crash or an
error after the switch leaves the pointer switched and the intent open, and :func:`resolve` completes it -- at
once in a live process, else at the next open on this host (:func:`recover`), or when a lost database connection
comes back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldwatch.errors import ConcurrentChangeError, GoldwatchError
from goldwatch.logs import get_logger
from goldwatch.watchdog.registry import journal
from goldwatch.watchdog.registry.ledger import Ledger
from goldwatch.watchdog.registry.models import RecoveryAction
from goldwatch.watchdog.registry.names import default_actor
from goldwatch.watchdog.registry.pointer import ServingPointer
from goldwatch.watchdog.registry.serving import pointer_from_spec, pointer_lock

__all__ = ["apply", "recover", "resolve", "switch_and_commit"]

log = get_logger(__name__)


def apply(ledger: Ledger, model: str, payload: dict[str, Any], *, strict: bool) -> list[str]:
    """The database half of a promote/rollback, idempotent (recovery may run it for a dead process).

    ``strict`` (a live operation, after its precheck): an illegal transition raises. Recovery is not strict: the
    pointer already serves the target, so the serving record is the truth to write, and a transition another host
    made impossible meanwhile is skipped and reported (returned).
    """
    skipped = []
    for version, to in payload["transitions"]:
        action = payload["action"] if to != "quarantined" else "quarantine"
        try:
            # A version to quarantine that another host retired meanwhile is out of service either way.
            ledger.transition(model, version, to, action=action, actor=payload["actor"], reason=payload["reason"],
                              evidence=payload["evidence"], done=("retired",) if to == "quarantined" else ())
        except GoldwatchError as exc:
            if strict:
                raise
            skipped.append(f"{version} -> {to}: {exc.what}")
    if payload.get("serve"):
        ledger.record_serving(model, payload["version"], payload["source"], actor=payload["actor"],
                              reason=payload["reason"], evidence=payload["evidence"])
    return skipped


def switch_and_commit(ledger: Ledger, op: str, model: str, payload: dict[str, Any], pointer: ServingPointer | None,
                      source: Path, label: str, *, precheck: Callable[[], None]) -> None:
    """Record the intent, stage, then switch ``pointer`` to ``source`` and apply ``payload`` in one transaction.

    Call with :func:`~.serving.pointer_lock` held. ``precheck()`` runs inside the transaction before the switch
    and locks what the decision rests on (:meth:`Ledger.lock_version`). Crash points
    ``{op}:intent|staged|switched|committed`` are the named steps the crash tests kill at. An exception part-way
    resolves the intent at once, the same way recovery would, so a live process never leaves an open intent behind
    (unless the database itself is what failed).
    """
    db = ledger.db
    intent_id = journal.begin(db, op=op, model=model, payload=payload)
    reached_switch = False
    try:
        journal.crash_point(f"{op}:intent")
        staged = None
        if pointer is not None:
            staged = pointer.stage(source, label=label)
            journal.crash_point(f"{op}:staged")
        with db.transaction():
            precheck()
            if not journal.is_open(db, intent_id):
                raise ConcurrentChangeError(f"the {op} of {model} was resolved by another process meanwhile",
                                            where=f"intent {intent_id}", hint="look again and rerun it")
            reached_switch = True
            if pointer is not None and staged is not None:
                pointer.switch(staged)
                journal.crash_point(f"{op}:switched")
            apply(ledger, model, payload, strict=True)
            journal.close(db, intent_id, "done")
    except BaseException:
        try:
            for intent in journal.open_intents(db, host=db.host):
                if intent.id == intent_id:
                    # Before the switch nothing was switched, whatever the pointer happens to serve.
                    resolve(ledger, intent, switched=None if reached_switch else False, live=True)
        except Exception:  # the database itself may be what failed: the next open (or reconnect) resolves it
            log.exception("could not resolve the interrupted %s of %s now", op, model)
        raise
    journal.crash_point(f"{op}:committed")


def resolve(ledger: Ledger, intent: journal.Intent, *, switched: bool | None = None,
            live: bool = False) -> RecoveryAction | None:
    """Complete ``intent`` if its pointer already serves the target, else revert it (see :mod:`.journal`).

    Call with the intent's pointer lock held (or knowing its owner is gone). ``switched``: known already (False:
    the operation failed before its switch), else read from the pointer. Returns None when another process closed
    the intent first. ``live``: the operation resolving its own failure (it raises; no warning logged here).
    """
    db = ledger.db
    spec = intent.payload.get("pointer")
    pointer = pointer_from_spec(spec) if spec else None
    if switched is None:
        state = pointer.read() if pointer is not None else None
        switched = state is not None and Path(state.source) == Path(intent.payload["source"])
    if pointer is not None:
        pointer.cleanup()
    skipped: list[str] = []
    with db.transaction():
        if not journal.is_open(db, intent.id):
            return None
        if switched:
            skipped = apply(ledger, intent.model, intent.payload, strict=False)
            journal.close(db, intent.id, "completed")
            outcome, detail = "completed", f"the pointer already served {intent.payload['source']}"
            if skipped:
                detail += "; not applied (changed meanwhile): " + "; ".join(skipped)
        else:
            journal.close(db, intent.id, "reverted")
            outcome, detail = "reverted", "the pointer was never switched; nothing was applied"
        ledger.event(intent.model, intent.payload.get("version"), f"recover-{intent.op}", None, None,
                     actor=default_actor(), reason=f"interrupted {intent.op}: {outcome}",
                     evidence={"intent": intent.id, "pid": intent.pid, "started_at": intent.started_at,
                               "host": intent.host, "skipped": skipped})
    (log.info if live else log.warning)("resolved interrupted %s of %s: %s (%s)", intent.op, intent.model, outcome,
                                        detail)
    return RecoveryAction(intent.id, intent.op, intent.model, outcome, detail)  # type: ignore[arg-type]


def recover(ledger: Ledger, *, owners_gone: bool) -> list[RecoveryAction]:
    """Resolve this host's open intents whose owner is gone.

    ``owners_gone``: the caller holds a lock that proves every open intent's owner is gone (SQLite's registry
    lock; SQLite registries have one host, so every intent is resolved). Otherwise an intent is resolved when its
    pointer's host-local lock can be taken (no live process of this host is switching it) -- or, for a pointer
    without one, when its process is gone.
    """
    actions = []
    for intent in journal.open_intents(ledger.db, host=None if owners_gone else ledger.host):
        spec = intent.payload.get("pointer")
        pointer = pointer_from_spec(spec) if spec else None
        if owners_gone:
            done = resolve(ledger, intent)
        else:
            with pointer_lock(pointer, blocking=False) as free:
                if not free or (getattr(pointer, "directory", None) is None and _pid_alive(intent.pid)):
                    continue  # a live process of this host owns it
                done = resolve(ledger, intent)
        if done is not None:
            actions.append(done)
    return actions


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own intent, and we are not in the middle of it (we are recovering)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
