"""The intent journal: how promote and rollback survive SIGKILL at any instant.

An operation that touches both the filesystem (the serving pointer) and the database cannot be one transaction.
So it first commits an *intent* (what it is about to do, including the pointer and the target), then stages and
switches the pointer, then applies every database change and closes the intent in ONE transaction. At the next
open, an intent still open belongs to a process that died (the registry lock proves it is not running) and is
resolved by looking at the one atomic fact on disk, the pointer:

* the pointer already serves the target -> the switch happened: apply the database changes (``completed``);
* otherwise -> the switch never happened: drop staged leftovers, change nothing (``reverted``).

Either way the database and the pointer agree again, and the outcome is recorded.

Crash testing: with ``GOLDWATCH_TEST_CRASH_AT=<step>`` in the environment, :func:`crash_point` SIGKILLs the
process at that step, which is how the tests kill promote and rollback at each step.

>>> crash_point("promote:switched")  # no-op unless the environment names this step
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
from typing import Any

from goldwatch.watchdog.registry.db import now

__all__ = ["CRASH_ENV", "STEPS", "Intent", "begin", "close", "crash_point", "open_intents"]

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


def begin(conn: sqlite3.Connection, *, op: str, model: str, payload: dict[str, Any]) -> int:
    """Record (and commit) the intent to run ``op``; returns its id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO intents (op, model, payload, status, pid, started_at) VALUES (?, ?, ?, 'open', ?, ?)",
            (op, model, json.dumps(payload, sort_keys=True), os.getpid(), now()),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return int(cur.lastrowid or 0)


def close(conn: sqlite3.Connection, intent_id: int, status: str) -> None:
    """Close an intent as done/completed/reverted; call inside the transaction that applies its changes."""
    conn.execute("UPDATE intents SET status = ?, ended_at = ? WHERE id = ? AND status = 'open'",
                 (status, now(), intent_id))


def open_intents(conn: sqlite3.Connection) -> list[Intent]:
    rows = conn.execute(
        "SELECT id, op, model, payload, pid, started_at FROM intents WHERE status = 'open' ORDER BY id"
    ).fetchall()
    return [Intent(r["id"], r["op"], r["model"], json.loads(r["payload"]), r["pid"], r["started_at"]) for r in rows]
