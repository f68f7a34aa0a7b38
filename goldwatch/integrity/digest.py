"""Whole-file digests: SHA-256 (the HF LFS oid / model_signing digest), BLAKE3 and XXH3-128 (fast).

Files are read in large chunks into one reused buffer (SHA-256, XXH3) or memory-mapped and hashed on every core
(BLAKE3's ``update_mmap`` with ``max_threads=AUTO``). The result is lowercase hex.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "f.bin"
>>> _ = p.write_bytes(b"abc")
>>> file_digest(p, "sha256")
'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
>>> file_digest(p, "xxh3")
'06b05ab6733a618578af5f94892f3950'
>>> bytes_digest(b"abc", "blake3") == file_digest(p, "blake3")
True
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from goldwatch import progress
from goldwatch.errors import ArtifactError, InvalidInputError

__all__ = ["ALGORITHMS", "DigestAlgorithm", "bytes_digest", "check_algorithm", "file_digest"]

DigestAlgorithm = Literal["sha256", "blake3", "xxh3"]
ALGORITHMS: tuple[str, ...] = ("sha256", "blake3", "xxh3")
CHUNK = 8 << 20  # 8 MiB reads: large enough that syscall overhead vanishes, small enough to stay in L3
MAPPED_SLICE = 256 << 20  # slices of a memory map handed to XXH3 (progress granularity)


def check_algorithm(name: str) -> DigestAlgorithm:
    """``name`` if it is a known digest algorithm, else an InvalidInputError listing the choices."""
    if name not in ALGORITHMS:
        raise InvalidInputError(
            f"unknown digest algorithm {name!r}", where="digest", hint=f"use one of {', '.join(ALGORITHMS)}"
        )
    return name  # type: ignore[return-value]


def _hasher(algorithm: DigestAlgorithm) -> Any:
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake3":
        import blake3

        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    import xxhash

    return xxhash.xxh3_128()


def bytes_digest(data: bytes | memoryview, algorithm: str) -> str:
    """Digest of an in-memory buffer, same spelling as :func:`file_digest`."""
    hasher = _hasher(check_algorithm(algorithm))
    hasher.update(data)
    return str(hasher.hexdigest())


def _update_mapped(hasher: Any, path: Path, on_bytes: Callable[[int], None] | None) -> None:
    """Feed a memory map of the file in large slices: XXH3 is faster than a copy into a buffer would allow."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if not size:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for start in range(0, size, MAPPED_SLICE):
                    hasher.update(view[start : start + MAPPED_SLICE])
                    if on_bytes:
                        on_bytes(min(MAPPED_SLICE, size - start))
            finally:
                view.release()


def file_digest(
    path: str | os.PathLike[str], algorithm: str, *, on_bytes: Callable[[int], None] | None = None
) -> str:
    """Digest of the file at ``path``; ``on_bytes(n)`` is called as bytes are consumed (default: the innermost
    :mod:`goldwatch.progress` task, if one is open)."""
    on_bytes = progress.byte_callback(on_bytes)
    algorithm = check_algorithm(algorithm)
    path = Path(path)
    hasher = _hasher(algorithm)
    try:
        if algorithm == "blake3":
            size = path.stat().st_size
            if size:  # mmap of an empty file fails; an empty update is the same digest
                hasher.update_mmap(str(path))
            if on_bytes:
                on_bytes(size)
            return str(hasher.hexdigest())
        if algorithm == "xxh3":
            _update_mapped(hasher, path, on_bytes)
            return str(hasher.hexdigest())
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with path.open("rb", buffering=0) as fh:
            while True:
                n = fh.readinto(buf)
                if not n:
                    break
                hasher.update(view[:n])
                if on_bytes:
                    on_bytes(n)
    except FileNotFoundError:
        raise ArtifactError("file not found", where=str(path), hint="check the path") from None
    except IsADirectoryError:
        raise ArtifactError("is a directory, expected a file", where=str(path)) from None
    except OSError as exc:
        raise ArtifactError(f"cannot read the file ({exc.strerror})", where=str(path)) from None
    return str(hasher.hexdigest())
