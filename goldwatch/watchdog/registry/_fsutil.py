"""Durable filesystem primitives: fsync of files and directories, atomic file writes.

A rename is atomic, but it is only durable once the directory that holds the entry is fsynced; the data it points
to must be fsynced *before* the rename, or a power cut can leave a new name pointing at empty blocks.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "fsync_file", "tmp_name", "write_json_atomic"]


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(prefix: str) -> str:
    """A unique hidden name for staging (pid + random, so concurrent writers and crashed leftovers never clash)."""
    return f".{prefix}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path``: temp file in the same directory, fsync, rename, fsync the directory."""
    tmp = path.with_name(tmp_name(path.name))
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
