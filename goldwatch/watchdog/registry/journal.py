"""The intent journal: how promote and rollback survive SIGKILL at any instant, on one host or many.

An operation that touches both the filesystem (the serving pointer) and the database cannot be one transaction.
So it first commits an *intent* (what it is about to do, including the pointer, the target and the host whose
pointer it is), then stages and switches the pointer, then applies every database change and closes the intent in
ONE transaction. An intent still open whose owner is gone is resolved by looking at the one atomic fact on disk,
the pointer:

* the pointer already serves the target -> the switch happened: apply the database changes (``completed``);
* otherwise -> the switch never happened: drop staged leftovers, change nothing (``reverted``).

Either way the database and the pointer agree again, and the outcome is recorded. Only the host that owns an
intent can read its pointer, so only that host resolves it (see :mod:`.switching`).

Crash testing: with ``GOLDWATCH_TEST_CRASH_AT=<step>`` in the environment, :func:`crash_point` SIGKILLs the
process at that step, which is how the tests kill promote and rollback at each step.

>>> crash_point("promote:switched")  # no-op unless the environment names this step
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from typing import Any

from goldwatch.watchdog.registry.storage import Database, now

__all__ = ["CRASH_ENV", "STEPS", "Intent", "begin", "close", "crash_point", "is_open", "open_intents"]

CRASH_ENV = "GOLDWATCH_TEST_CRASH_AT"

# Every named step, in order, for each operation (the tests kill a subprocess at each of them).
STEPS: dict[str, tuple[str, ...]] = {
    "promote": ("promote:intent", "promote:staged", "promote:switched", "promote:committed"),
    "rollback": (
        "rollback:selected", "rollback:intent", "rollback:staged", "rollback:switched", "rollback:committed",
        "rollback:reloaded",
    ),
}


def crash_point(step: str) -> None:
    """SIGKILL this process if ``GOLDWATCH_TEST_CRASH_AT`` names ``step`` (a test hook; inert otherwise)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Intent:
    id: int
    op: str
    model: str
    payload: dict[str, Any]
    pid: int
    started_at: str
    host: str = ""


def begin(db: Database, *, op: str, model: str, payload: dict[str, Any]) -> int:
    """Record (and commit) the intent of this host to run ``op``; returns its id."""
    with db.transaction():
        return db.insert(
            "INSERT INTO intents (op, model, payload, status, pid, started_at, host) VALUES (?, ?, ?, 'open', ?, ?, ?)",
            (op, model, json.dumps(payload, sort_keys=True), os.getpid(), now(), db.host),
        )


def is_open(db: Database, intent_id: int) -> bool:
    """Is the intent still open? Inside a transaction, also locks its row (so only one closer wins)."""
    row = db.one("SELECT status FROM intents WHERE id = ?" + (db.for_update if db.in_transaction else ""),
                 (intent_id,))
    return row is not None and row["status"] == "open"


def close(db: Database, intent_id: int, status: str) -> None:
    """Close an intent as done/completed/reverted; call inside the transaction that applies its changes."""
    db.execute("UPDATE intents SET status = ?, ended_at = ? WHERE id = ? AND status = 'open'",
               (status, now(), intent_id))


def open_intents(db: Database, *, host: str | None = None) -> list[Intent]:
    """Open intents, oldest first (of ``host`` only, when given)."""
    sql, args = "SELECT id, op, model, payload, pid, started_at, host FROM intents WHERE status = 'open'", []
    if host is not None:
        sql += " AND host = ?"
        args.append(host)
    rows = db.query(sql + " ORDER BY id", args)
    return [Intent(int(r["id"]), r["op"], r["model"], json.loads(r["payload"]), int(r["pid"]), r["started_at"],
                   r["host"]) for r in rows]
