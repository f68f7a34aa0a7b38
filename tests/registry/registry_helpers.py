"""Helpers shared by the registry tests (a module, not a fixture, so subprocess scripts can import it too)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_weights(path: Path, seed: int, *, n: int = 64) -> Path:
    """A directory artifact holding one deterministic weight matrix (``weights.npz``)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.savez(path / "weights.npz", w=rng.standard_normal((n, 4)).astype(np.float32))
    return path


def write_golden_set(path: Path, seed: int = 0) -> Path:
    """A tiny valid golden set (no model needed): what ``registry add --golden`` checks loads."""
    from goldwatch.golden_sets import GoldenSet
    from goldwatch.golden_sets.calibrate import calibrate
    from goldwatch.runtimes import ModelIdentity, Signature, TensorSpec

    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    GoldenSet(
        model=ModelIdentity(kind="test", source="mem"),
        signature=Signature(inputs=(TensorSpec("x", "float32", (None, 3)),), outputs=(TensorSpec("y", "float32"),)),
        inputs={"x": x}, expected={"y": y},
        tolerances=calibrate({"y": y}, [("cpu", {"y": y})], safety_factor=4.0), roles={"y": "tensor"},
    ).save(path)
    return path


def corrupt(path: Path, *, offset: int = -9) -> None:
    """Flip one bit of ``path`` in place (store files are read-only: make it writable first)."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def concurrent_writer(root: str, serve_dir: str, worker: int, count: int) -> None:
    """Run in another process: add and promote ``count`` versions (each promote switches the pointer)."""
    from goldwatch.watchdog.registry import Registry, Serving, make_pointer

    src = Path(root).parent / f"src-{worker}"
    with Registry.open(root) as reg:
        reg.attach("m", Serving(make_pointer("current-link", Path(serve_dir))))
        for i in range(count):
            art = write_weights(src / str(i), seed=1000 * worker + i, n=8)
            mv = reg.add("m", art, actor=f"worker-{worker}")
            reg.promote("m", mv.version, actor=f"worker-{worker}", reason="concurrent")


def set_schema_version(root: Path, version: int) -> None:
    """Stamp the registry database at ``root`` (SQLite, or the PostgreSQL of ``$GOLDWATCH_DATABASE_URL``) with
    schema ``version``, as a newer (or older) goldwatch would have left it."""
    url = os.environ.get("GOLDWATCH_DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE goldwatch_schema SET version = %s", (version,))
        return
    import sqlite3

    raw = sqlite3.connect(Path(root) / "registry.db")
    raw.execute(f"PRAGMA user_version = {int(version)}")
    raw.close()
