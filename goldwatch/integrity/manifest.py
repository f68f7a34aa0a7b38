"""The artifact manifest: per-file digests and per-tensor, per-block fingerprints of a model file or directory.

JSON, versioned (``format_version``), written atomically. A manifest for a single file also lists the external
data files an ONNX model refers to. Loading validates every field and refuses manifests from a newer format.

>>> import tempfile, pathlib, numpy as np
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "notes.txt").write_text("hello")
>>> m = build_manifest(root / "notes.txt", digest="sha256")
>>> m.files[0].path, m.files[0].size, m.files[0].digest[:16], m.files[0].format
('notes.txt', 5, '2cf24dba5fb0a30e', 'file')
>>> m.save(root / "manifest.json")
>>> ArtifactManifest.load(root / "manifest.json") == m
True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goldwatch import progress
from goldwatch._fs import atomic_write
from goldwatch._version import __version__
from goldwatch.errors import ArtifactError, StateError
from goldwatch.integrity.digest import ALGORITHMS, check_algorithm, file_digest
from goldwatch.integrity.dtypes import canonical_dtype
from goldwatch.integrity.fingerprint import ALGORITHM, BLOCK_BYTES, TensorFingerprint, block_count
from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer

__all__ = [
    "FORMAT_VERSION",
    "ArtifactManifest",
    "FileEntry",
    "TensorEntry",
    "build_manifest",
    "file_tensors",
    "list_artifact_files",
]

FORMAT_VERSION = 1
FORMAT_NAME = "goldwatch-artifact-manifest"
FileFormat = Literal["safetensors", "onnx", "torch", "torchscript", "torch-export", "dcp", "file"]
FORMATS = ("safetensors", "onnx", "torch", "torchscript", "torch-export", "dcp", "file")
Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """A tensor's identity and fingerprint; ``offset`` is where its bytes start in ``source`` (None if not a range)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    fingerprint: TensorFingerprint
    offset: int | None = None
    source: str | None = None  # the file holding the bytes when it is not the entry's own file (ONNX external data)

    @property
    def nbytes(self) -> int:
        return self.fingerprint.nbytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "offset": self.offset,
            "source": self.source, "nbytes": self.nbytes, "fingerprint": self.fingerprint.summary,
            "blocks": list(self.fingerprint.blocks),
        }


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX path relative to the manifest's root directory
    size: int
    digest: str
    format: FileFormat
    tensors: tuple[TensorEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "size": self.size, "digest": self.digest, "format": self.format,
            "tensors": [t.to_dict() for t in self.tensors],
        }


@dataclasses.dataclass(frozen=True)
class ArtifactManifest:
    """What the bytes of an approved model artifact were. ``kind`` says whether it describes a file or a directory
    (for a file, ``files[0]`` is that file and the rest are files it refers to)."""

    kind: Literal["file", "directory"]
    digest: str
    files: tuple[FileEntry, ...]
    created: str = ""
    goldwatch_version: str = __version__
    format_version: int = FORMAT_VERSION
    fingerprint_algorithm: str = ALGORITHM
    block_bytes: int = BLOCK_BYTES
    sharding: dict[str, str] | None = None  # sharded checkpoints: layout, and why file digests do not merge

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT_NAME, "format_version": self.format_version, "goldwatch_version": self.goldwatch_version,
            "created": self.created, "kind": self.kind, "digest": self.digest,
            "fingerprint": {"algorithm": self.fingerprint_algorithm, "block_bytes": self.block_bytes},
        }
        if self.sharding:
            out["sharding"] = dict(self.sharding)
        out["files"] = [f.to_dict() for f in self.files]
        return out

    def tensors(self) -> Iterator[tuple[FileEntry, TensorEntry]]:
        for f in self.files:
            for t in f.tensors:
                yield f, t

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest as JSON atomically (temp file in the same directory, fsync, rename)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ArtifactManifest:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(
                "manifest not found", where=str(path), hint="create it with `goldwatch fingerprint`"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"manifest is not readable JSON ({exc})", where=str(path)) from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = "manifest") -> ArtifactManifest:
        """Validate and convert parsed JSON; every problem names its key path."""
        return _parse_manifest(raw, where)


# ----------------------------------------------------------------------------------------------- parsing JSON


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise ArtifactError(f"expected an object, got {type(obj).__name__}", where=where)
    if key not in obj:
        if optional:
            return None
        raise ArtifactError(f"missing key {key!r}", where=where, hint="the manifest is damaged; regenerate it")
    value = obj[key]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ArtifactError(f"{key}: expected {getattr(kind, '__name__', kind)}, got {value!r:.80}", where=where)
    return value


def _parse_tensor(raw: Any, where: str) -> TensorEntry:
    name = _get(raw, "name", str, where)
    shape = _get(raw, "shape", list, where)
    if not all(type(d) is int and d >= 0 for d in shape):
        raise ArtifactError(f"shape must be non-negative integers, got {shape!r:.80}", where=where)
    nbytes = _get(raw, "nbytes", int, where)
    blocks = _get(raw, "blocks", list, where)
    if nbytes < 0 or len(blocks) != block_count(nbytes) or not all(
        isinstance(b, str) and len(b) == 32 and all(c in "0123456789abcdef" for c in b) for b in blocks
    ):
        raise ArtifactError(
            f"tensor {name!r}: expected {block_count(max(nbytes, 0))} block fingerprints of 32 hex digits",
            where=where, hint="the manifest is damaged; regenerate it",
        )
    fingerprint = TensorFingerprint(nbytes=nbytes, blocks=tuple(blocks))
    summary = _get(raw, "fingerprint", str, where, optional=True)
    if summary is not None and summary != fingerprint.summary:
        raise ArtifactError(f"tensor {name!r}: summary fingerprint does not match its blocks", where=where,
                            hint="the manifest was edited or damaged; regenerate it")
    return TensorEntry(
        name=name, dtype=_get(raw, "dtype", str, where), shape=tuple(shape), fingerprint=fingerprint,
        offset=_get(raw, "offset", int, where, optional=True), source=_get(raw, "source", str, where, optional=True),
    )


def _parse_manifest(raw: Any, where: str) -> ArtifactManifest:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise ArtifactError(f"not a goldwatch artifact manifest (format {FORMAT_NAME!r} expected)", where=where,
                            hint="pass a manifest written by `goldwatch fingerprint`")
    version = _get(raw, "format_version", int, where)
    if version > FORMAT_VERSION:
        raise StateError(f"manifest format_version {version} is newer than this goldwatch's {FORMAT_VERSION}",
                         where=where, hint="upgrade goldwatch")
    fp = _get(raw, "fingerprint", dict, where)
    algorithm = _get(fp, "algorithm", str, f"{where}: fingerprint")
    block_bytes = _get(fp, "block_bytes", int, f"{where}: fingerprint")
    if algorithm != ALGORITHM or block_bytes != BLOCK_BYTES:
        raise ArtifactError(f"fingerprint {algorithm}/{block_bytes} is not {ALGORITHM}/{BLOCK_BYTES}", where=where,
                            hint="regenerate the manifest with this goldwatch")
    digest = _get(raw, "digest", str, where)
    if digest not in ALGORITHMS:
        raise ArtifactError(f"unknown digest algorithm {digest!r}", where=where)
    kind = _get(raw, "kind", str, where)
    if kind not in ("file", "directory"):
        raise ArtifactError(f"kind must be 'file' or 'directory', got {kind!r}", where=where)
    files = []
    for i, f in enumerate(_get(raw, "files", list, where)):
        fwhere = f"{where}: files[{i}]"
        path = _get(f, "path", str, fwhere)
        if not path or Path(path).is_absolute() or ".." in Path(path).parts:
            raise ArtifactError(f"file path {path!r} must be relative and inside the artifact", where=fwhere)
        fmt = _get(f, "format", str, fwhere)
        if fmt not in FORMATS:
            raise ArtifactError(f"unknown file format {fmt!r}", where=fwhere)
        raw_tensors = _get(f, "tensors", list, fwhere)
        tensors = tuple(_parse_tensor(t, f"{fwhere}.tensors[{j}]") for j, t in enumerate(raw_tensors))
        files.append(FileEntry(path=path, size=_get(f, "size", int, fwhere), digest=_get(f, "digest", str, fwhere),
                               format=fmt, tensors=tensors))
    if not files or (kind == "file" and len({f.path for f in files}) != len(files)):
        raise ArtifactError("the manifest lists no files, or a file twice", where=where)
    sharding = _get(raw, "sharding", dict, where, optional=True)
    if sharding is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in sharding.items()):
        raise ArtifactError("sharding: expected an object of strings", where=where)
    return ArtifactManifest(
        kind=kind, digest=digest, files=tuple(files), created=_get(raw, "created", str, where, optional=True) or "",
        goldwatch_version=_get(raw, "goldwatch_version", str, where, optional=True) or "", format_version=version,
        sharding=sharding,
    )


# ----------------------------------------------------------------------------------------------- building


def _map(path: Path) -> np.ndarray:
    """The whole file as a read-only uint8 array (memory-mapped; empty files give an empty array)."""
    size = path.stat().st_size
    if size == 0:
        return np.zeros(0, dtype=np.uint8)
    with path.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=np.uint8)


def detect_format(path: Path) -> FileFormat:
    from goldwatch.integrity.torch_checkpoint import torch_file_kind

    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if path.name == ".metadata":
        from goldwatch.integrity.sharded import is_dcp_directory

        if is_dcp_directory(path.parent):
            return "dcp"
    if suffix == ".onnx":
        return "onnx"
    kind = torch_file_kind(path)
    return {"checkpoint": "torch", "torchscript": "torchscript", "export": "torch-export"}.get(kind, "file")  # type: ignore[return-value]


def file_tensors(
    path: Path, fmt: FileFormat, *, on_bytes: Progress | None = None, map_files: Callable[..., Any] | None = None
) -> tuple[TensorEntry, ...]:
    """Parse the tensors of a container file and fingerprint each of them from the file's bytes (CPU).

    A DCP checkpoint's ``.metadata`` (format ``"dcp"``) stands for the whole checkpoint: its tensors are merged
    from the chunks of every ``.distcp`` file beside it (``map_files`` runs the per-file tasks). ``on_bytes(n)``
    reports progress (default: the innermost :mod:`goldwatch.progress` task, if one is open).
    """
    on_bytes = progress.byte_callback(on_bytes)
    if fmt == "dcp":
        from goldwatch.integrity.sharded import dcp_tensor_entries

        return dcp_tensor_entries(path.parent, map_files=map_files)
    if fmt == "safetensors":
        from goldwatch.integrity.safetensors_parser import read_safetensors_header

        info = read_safetensors_header(path)
        data = _map(path)
        entries = []
        for rec in info.tensors:
            entries.append(TensorEntry(rec.name, canonical_dtype(rec.dtype), rec.shape,
                                       fingerprint_buffer(data[rec.start : rec.stop]), offset=rec.start))
            if on_bytes:
                on_bytes(rec.nbytes)
        return tuple(entries)
    if fmt == "onnx":
        from goldwatch.integrity.onnx_parser import read_onnx_tensors

        entries = []
        for t in read_onnx_tensors(path):
            entries.append(TensorEntry(t.name, t.dtype, t.shape, fingerprint_buffer(t.read(path.parent)),
                                       offset=t.offset, source=t.location))
            if on_bytes:
                on_bytes(t.nbytes)
        return tuple(entries)
    if fmt == "torch":
        from goldwatch.integrity.dtypes import dtype_of
        from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
        from goldwatch.integrity.torch_checkpoint import load_checkpoint_tensors

        entries = []
        for name, tensor in load_checkpoint_tensors(path).items():
            entries.append(TensorEntry(name, dtype_of(tensor), tuple(tensor.shape), fingerprint_tensor(tensor)))
            if on_bytes:
                on_bytes(tensor.numel() * tensor.element_size())
        return tuple(entries)
    return ()


def list_artifact_files(root: Path, *, exclude: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """Every regular file under ``root`` (relative POSIX paths, sorted); symlinks leaving ``root`` are refused.

    ``exclude`` names files to leave out wherever they are (e.g. the manifest itself when it is kept inside).
    """
    base = root.resolve()
    skip = {Path(p).resolve() for p in exclude}
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in list(dirnames):
            if (Path(dirpath) / d).is_symlink():
                raise ArtifactError(f"symlinked directory {Path(dirpath, d).relative_to(root)} in the artifact",
                                    where=str(root), hint="copy the directory's contents instead of linking it")
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() and not full.resolve().is_relative_to(base):
                raise ArtifactError(f"symlink {full.relative_to(root)} points outside the artifact ({full.resolve()})",
                                    where=str(root), hint="artifacts must be self-contained")
            if full.is_file() and full.resolve() not in skip:
                found.append(full.relative_to(root).as_posix())
    return sorted(found)


def _file_entry(root: str, name: str, algorithm: str, fingerprints: bool, on_bytes: Progress | None) -> FileEntry:
    """One file's entry: its digest, format and tensors (a task: runs in a thread, or on a Dask worker)."""
    full = Path(root) / name
    fmt = detect_format(full)
    # a DCP checkpoint's tensors are merged from every chunk file once, by the caller, not per file
    tensors = file_tensors(full, fmt, on_bytes=on_bytes) if fingerprints and fmt != "dcp" else ()
    return FileEntry(path=name, size=full.stat().st_size, digest=file_digest(full, algorithm, on_bytes=on_bytes),
                     format=fmt, tensors=tensors)


def build_manifest(
    path: str | os.PathLike[str],
    *,
    digest: str = "sha256",
    fingerprints: bool = True,
    on_bytes: Progress | None = None,
    exclude: Iterable[str | os.PathLike[str]] = (),
    executor: Any = None,
) -> ArtifactManifest:
    """Describe the model file or directory at ``path``: digests of every file and fingerprints of every tensor.

    ``exclude`` leaves files out of a directory's manifest (e.g. where the manifest will be written).
    ``on_bytes(n)`` reports progress (each byte is counted twice when fingerprints are computed: digest + tensors).
    The files of a directory are processed in parallel: by ``executor`` (a ``concurrent.futures.Executor``, e.g.
    a Dask client's ``get_executor()`` -- its workers must see the same files), else by a thread per core.
    Sharded checkpoints are checked for completeness: safetensors shards against their ``*.index.json``; a DCP
    directory's chunks are merged into whole tensors with a proof that they cover every byte.
    Malformed, truncated or hostile files raise :class:`~goldwatch.errors.ArtifactError`; nothing is written.
    """
    algorithm = check_algorithm(digest)
    path = Path(path)
    if not path.exists():
        raise ArtifactError("no such file or directory", where=str(path), hint="pass a model file or directory")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not path.is_dir():
        return _build_file_manifest(path, algorithm, fingerprints, on_bytes, stamp)
    names = list_artifact_files(path, exclude=exclude)
    if not names:
        raise ArtifactError("the directory holds no files", where=str(path))
    from goldwatch.integrity.sharded import (
        check_safetensors_index,
        find_safetensors_indexes,
        is_dcp_directory,
        sharding_note,
    )

    sharding = None
    indexes = find_safetensors_indexes(names)
    if indexes:
        shards = sum(check_safetensors_index(path, index) for index in indexes)
        sharding = sharding_note("safetensors-index", shards)
    dcp = is_dcp_directory(path) and ".metadata" in names
    if dcp:
        sharding = sharding_note("torch-dcp", sum(n.endswith(".distcp") for n in names))
    remote = executor is not None
    progress = None if remote else on_bytes  # a callback cannot run on another machine
    n = len(names)
    args = ([str(path)] * n, names, [algorithm] * n, [fingerprints] * n, [progress] * n)
    if executor is not None:
        entries = []
        for entry in executor.map(_file_entry, *args):
            entries.append(entry)
            if on_bytes is not None:  # the callback stays here: each file counts when its entry comes back
                on_bytes(entry.size * (2 if entry.tensors else 1))
        map_files = executor.map
    else:
        workers = min(n, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            entries = list(pool.map(_file_entry, *args)) if workers > 1 else list(map(_file_entry, *args))
        map_files = None
    if dcp and fingerprints:  # the chunk files' partials, in parallel, merged into whole tensors
        i = names.index(".metadata")
        if map_files is None:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                tensors = file_tensors(path / ".metadata", "dcp", map_files=pool.map)
        else:
            tensors = file_tensors(path / ".metadata", "dcp", map_files=map_files)
        entries[i] = dataclasses.replace(entries[i], tensors=tensors)
    return ArtifactManifest(kind="directory", digest=algorithm, files=tuple(entries), created=stamp,
                            sharding=sharding)


def _build_file_manifest(
    path: Path, algorithm: str, fingerprints: bool, on_bytes: Progress | None, stamp: str
) -> ArtifactManifest:
    """A single file, with the external data files an ONNX model refers to."""
    root = path.parent
    entries: list[FileEntry] = []
    queue = [path.name]
    seen = set(queue)
    while queue:
        name = queue.pop(0)
        full = root / name
        fmt = detect_format(full)
        tensors = file_tensors(full, fmt, on_bytes=on_bytes) if fingerprints else ()
        for t in tensors:  # a single ONNX file brings its external data files along
            if t.source and t.source not in seen:
                seen.add(t.source)
                queue.append(t.source)
        entries.append(FileEntry(path=name, size=full.stat().st_size,
                                 digest=file_digest(full, algorithm, on_bytes=on_bytes), format=fmt, tensors=tensors))
    return ArtifactManifest(kind="file", digest=algorithm, files=tuple(entries), created=stamp)
