"""Durable state of live drift: checkpoints of each model's monitor, so a restart continues where it stopped.

A checkpoint is one blob per model: an ``.npz`` (no pickle) holding the monitor's arrays (the window being filled,
the streaming detectors' sums) and its JSON metadata (page-rule count, counters, schema, recent results).
:class:`SqliteCheckpoints` keeps them in a table of a SQLite file (WAL, one transaction per save) for a
standalone process; :class:`JournalCheckpoints` keeps them in the sidecar's journal (anything with
``put_checkpoint(namespace, key, value)`` / ``get_checkpoint(namespace, key)`` storing JSON values).

>>> import numpy as np, tempfile, pathlib
>>> blob = encode_state({"model": "m", "state": {"consecutive": 1}}, {"window.in_numeric": np.ones((2, 3))})
>>> meta, arrays = decode_state(blob)
>>> meta["state"], arrays["window.in_numeric"].shape
({'consecutive': 1}, (2, 3))
>>> store = SqliteCheckpoints(pathlib.Path(tempfile.mkdtemp()) / "live.sqlite")
>>> store.save("m", blob); store.load("m") == blob, store.load("other")
(True, None)
>>> store.close()
"""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import threading
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from goldwatch.errors import StateError

__all__ = ["CheckpointStore", "JournalCheckpoints", "SqliteCheckpoints", "decode_state", "encode_state"]

_META = "__meta__"
NAMESPACE = "live_drift"


class CheckpointStore(Protocol):
    def save(self, key: str, data: bytes) -> None: ...

    def load(self, key: str) -> bytes | None: ...


def encode_state(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Metadata (JSON) and arrays as one ``.npz`` blob."""
    buf = io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META] = np.array(json.dumps(meta, default=_json_default))
    np.savez(buf, **payload)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_state(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of :func:`encode_state`; a damaged blob is a :class:`~goldwatch.errors.StateError`."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop(_META)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise StateError(f"the live-drift checkpoint cannot be read ({exc})", where="checkpoint",
                         hint="delete it: the model starts a fresh window (the journal keeps the incidents)") from None
    if not isinstance(meta, dict):
        raise StateError("the live-drift checkpoint's metadata is not an object", where="checkpoint")
    return meta, arrays


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


class SqliteCheckpoints:
    """Checkpoints in a SQLite file (created on first use)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS live_drift_checkpoints (key TEXT PRIMARY KEY, "
                               "data BLOB NOT NULL, saved_at REAL NOT NULL)")

    def save(self, key: str, data: bytes) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO live_drift_checkpoints (key, data, saved_at) VALUES (?, ?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at",
                               (key, sqlite3.Binary(data), time.time()))

    def load(self, key: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM live_drift_checkpoints WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class JournalCheckpoints:
    """Checkpoints in the sidecar's journal (its values are JSON: the blob travels as base64)."""

    def __init__(self, journal: Any, *, namespace: str = NAMESPACE) -> None:
        self.journal, self.namespace = journal, namespace

    def save(self, key: str, data: bytes) -> None:
        self.journal.put_checkpoint(self.namespace, key, {"npz_base64": base64.b64encode(data).decode("ascii")})

    def load(self, key: str) -> bytes | None:
        value = self.journal.get_checkpoint(self.namespace, key)
        if value is None:
            return None
        try:
            return base64.b64decode(value["npz_base64"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise StateError("the journal's live-drift checkpoint is not one this goldwatch wrote",
                             where=f"journal checkpoint {self.namespace}/{key}") from None
