"""Sharded checkpoints on disk: Hugging Face safetensors shards with their index, and PyTorch Distributed
Checkpoint (DCP) directories.

* **safetensors + index** (``*.safetensors.index.json``): every shard is an ordinary safetensors file with whole
  tensors, fingerprinted per file; the index is checked against the shards (every tensor it names is in the shard
  it names, no tensor is in two shards, every shard it names exists) so that the set of shards is complete.
* **DCP** (``.metadata`` + ``__R_N.distcp``): a tensor is stored as chunks (hyper-rectangles of its elements) in
  the files of the ranks that saved it. Each file's chunks are fingerprinted into partials
  (:mod:`goldwatch.integrity.partial`), and the partials of every tensor are merged with a proof that they tile it:
  the manifest lists each logical tensor with the fingerprint of the whole -- the same fingerprint as the
  consolidated tensor saved by a single host, or resident in memory.

The ``.metadata`` file is a pickle. It is read with an unpickler that resolves only the checkpoint-metadata
classes (and torch dtypes, ``torch.Size`` and paths), so a hostile file cannot run code; chunk payloads are
``torch.save`` records loaded with ``weights_only=True``, or raw bytes.

SHA-256 does not merge: a file digest covers one file, so a sharded checkpoint has one digest per file and no
digest of "the model"; the fingerprints are what add up across shards and ranks.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import mmap
import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch.errors import ArtifactError
from goldwatch.integrity.dtypes import canonical_dtype
from goldwatch.integrity.partial import PartialFingerprint, merge_partials, partial_from_slice

__all__ = [
    "DCP_METADATA",
    "DcpCheckpoint",
    "DcpChunk",
    "check_safetensors_index",
    "dcp_file_partials",
    "dcp_tensor_entries",
    "find_safetensors_indexes",
    "is_dcp_directory",
    "read_dcp_metadata",
    "sharding_note",
]

DCP_METADATA = ".metadata"
NOT_MERGEABLE = (
    "file digests cover one file each and do not merge across shards (SHA-256 is sequential); whole tensors "
    "are verified by their fingerprints, which add up per 1 MiB block across shards and ranks"
)


def sharding_note(layout: str, files: int) -> dict[str, str]:
    """The manifest's ``sharding`` record: the layout, and why there is no digest of the whole."""
    return {"layout": layout, "files": str(files), "digests": NOT_MERGEABLE}


# ------------------------------------------------------------------------------------- safetensors + index


def find_safetensors_indexes(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(".safetensors.index.json"))


def check_safetensors_index(root: Path, index_name: str) -> int:
    """Check an index against its shards; return the number of shards. Raises :class:`ArtifactError`."""
    from goldwatch.integrity.safetensors_parser import read_safetensors_header

    where = str(root / index_name)
    try:
        raw = json.loads((root / index_name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"index is not readable JSON ({exc})", where=where) from None
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in weight_map.items()):
        raise ArtifactError("expected a 'weight_map' object of tensor name -> shard file", where=where)
    base = root / index_name
    shards: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise ArtifactError(f"tensor {tensor!r}: shard path {shard!r} leaves the checkpoint", where=where)
        shards.setdefault(shard, set()).add(tensor)
    seen: dict[str, str] = {}
    total = 0
    for shard, tensors in sorted(shards.items()):
        path = base.parent / shard
        if not path.is_file():
            raise ArtifactError(f"shard {shard!r} named by the index is missing ({len(tensors)} tensor(s), e.g. "
                                f"{sorted(tensors)[0]!r})", where=where, hint="the checkpoint is incomplete")
        info = read_safetensors_header(path)
        present = {t.name for t in info.tensors}
        missing = sorted(tensors - present)
        if missing:
            raise ArtifactError(f"shard {shard!r} lacks {len(missing)} tensor(s) the index puts there, e.g. "
                                f"{missing[0]!r}", where=where, hint="the index and the shards do not belong together")
        for t in info.tensors:
            if t.name in seen:
                raise ArtifactError(f"tensor {t.name!r} is in two shards: {seen[t.name]!r} and {shard!r}", where=where)
            seen[t.name] = shard
            total += t.nbytes
    declared = raw.get("metadata", {}).get("total_size") if isinstance(raw.get("metadata"), dict) else None
    if isinstance(declared, int) and declared != total:
        raise ArtifactError(f"metadata.total_size is {declared} but the shards' tensors hold {total} bytes",
                            where=where, hint="the index and the shards do not belong together")
    return len(shards)


# ------------------------------------------------------------------------------------- DCP


_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "TensorStorageMetadata", "TensorProperties", "ChunkStorageMetadata", "BytesStorageMetadata",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


class _MetadataUnpickler(pickle.Unpickler):
    """Resolves only DCP's metadata classes, torch dtypes and sizes, and paths: nothing that runs code."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if name in _DCP_CLASSES.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a DCP metadata class")


@dataclasses.dataclass(frozen=True)
class DcpChunk:
    """One stored chunk: elements ``[offsets, offsets + sizes)`` of a tensor, at bytes ``[start, start + length)``
    of ``file``."""

    tensor: str
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str
    start: int
    length: int


@dataclasses.dataclass(frozen=True)
class DcpCheckpoint:
    """The tensors of a DCP checkpoint: name -> (canonical dtype, global shape), and their chunks per file."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    chunks: tuple[DcpChunk, ...]

    @property
    def files(self) -> list[str]:
        return sorted({c.file for c in self.chunks})


def is_dcp_directory(root: Path) -> bool:
    return (root / DCP_METADATA).is_file() and any(p.suffix == ".distcp" for p in root.iterdir())


def read_dcp_metadata(root: Path) -> DcpCheckpoint:
    """Parse ``root/.metadata`` safely into the tensors and the location of each chunk."""
    from goldwatch._optional import require

    require("torch", purpose="reading PyTorch Distributed Checkpoint metadata")
    where = str(root / DCP_METADATA)
    try:
        with (root / DCP_METADATA).open("rb") as fh:
            meta = _MetadataUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, ImportError) as exc:
        raise ArtifactError(f"refusing or unable to read the DCP metadata ({type(exc).__name__}: {exc})",
                            where=where, hint="the file is damaged, or not a torch.distributed.checkpoint .metadata",
                            ) from None
    try:
        state = meta.state_dict_metadata
        storage = meta.storage_data
    except AttributeError:
        raise ArtifactError("not DCP metadata (no state_dict_metadata/storage_data)", where=where) from None
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    chunks: list[DcpChunk] = []
    locations = {(idx.fqn, tuple(idx.offset) if idx.offset is not None else None): info
                 for idx, info in storage.items()}
    for fqn, item in state.items():
        if not hasattr(item, "chunks"):  # BytesStorageMetadata: pickled objects, covered by the file digest
            continue
        shape = tuple(int(d) for d in item.size)
        tensors[fqn] = (canonical_dtype(str(item.properties.dtype)), shape)
        for chunk in item.chunks:
            key = (fqn, tuple(int(o) for o in chunk.offsets))
            info = locations.get(key)
            if info is None:
                raise ArtifactError(f"tensor {fqn!r}: chunk at offsets {list(key[1])} has no storage entry",
                                    where=where, hint="the checkpoint metadata is damaged")
            if getattr(info, "transform_descriptors", None):
                raise ArtifactError(f"tensor {fqn!r}: chunk stored with transforms {info.transform_descriptors}",
                                    where=where, hint="fingerprint checkpoints saved without storage extensions")
            rel = str(info.relative_path)
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ArtifactError(f"chunk file {rel!r} leaves the checkpoint", where=where)
            chunks.append(DcpChunk(fqn, key[1], tuple(int(s) for s in chunk.sizes), rel, int(info.offset),
                                   int(info.length)))
    return DcpCheckpoint(tensors=tensors, chunks=tuple(chunks))


_RAW_VIEW: dict[int, np.dtype[Any]] = {1: np.dtype(np.uint8), 2: np.dtype("<u2"), 4: np.dtype("<u4"),
                                       8: np.dtype("<u8")}


def _itemsize(dtype: str, where: str, tensor: str) -> int:
    import torch

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ArtifactError(f"tensor {tensor!r}: unknown dtype {dtype!r}", where=where)
    return int(torch.empty(0, dtype=torch_dtype).element_size())


def _raw_chunk(raw: np.ndarray, chunk: DcpChunk, dtype: str, where: str) -> np.ndarray:
    """Raw row-major bytes of a chunk as a same-width unsigned view (no copy; bf16 and float8 have no numpy type)."""
    itemsize = _itemsize(dtype, where, chunk.tensor)
    if len(raw) != math.prod(chunk.sizes) * itemsize or itemsize not in _RAW_VIEW:
        raise ArtifactError(f"tensor {chunk.tensor!r}: raw chunk of {len(raw)} bytes, expected "
                            f"{math.prod(chunk.sizes) * itemsize}", where=where, hint="the file is damaged")
    return raw.view(_RAW_VIEW[itemsize]).reshape(chunk.sizes)


def _chunk_data(data: np.ndarray, chunk: DcpChunk, dtype: str, where: str,
                safetensors: dict[str, Any] | None) -> Any:
    """The chunk's elements: from the file's safetensors header (DCP's safetensors format, where the storage
    offsets are not byte offsets), a ``torch.save`` record (weights_only), or raw row-major bytes."""
    import torch

    if safetensors is not None:
        rec, saved = safetensors["tensors"].get(chunk.tensor), safetensors["offsets"].get(chunk.tensor)
        if rec is None or tuple(rec.shape) != chunk.sizes or (saved is not None and tuple(saved) != chunk.offsets):
            raise ArtifactError(f"tensor {chunk.tensor!r}: the file holds no chunk at offsets {list(chunk.offsets)} "
                                f"of shape {list(chunk.sizes)}", where=where,
                                hint="the file and the metadata do not belong together")
        return _raw_chunk(data[rec.start : rec.stop], chunk, dtype, where)
    raw = data[chunk.start : chunk.start + chunk.length]
    if len(raw) != chunk.length:
        raise ArtifactError(f"tensor {chunk.tensor!r}: chunk bytes [{chunk.start}, {chunk.start + chunk.length}) "
                            f"are beyond the end of the file", where=where, hint="the file is truncated")
    if bytes(raw[:4]) != b"PK\x03\x04":
        return _raw_chunk(raw, chunk, dtype, where)
    try:
        tensor = torch.load(io.BytesIO(raw.tobytes()), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip
        raise ArtifactError(f"tensor {chunk.tensor!r}: chunk is not a readable tensor record "
                            f"({type(exc).__name__}: {str(exc)[:200]})", where=where,
                            hint="the file is damaged") from None
    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != chunk.sizes:
        raise ArtifactError(f"tensor {chunk.tensor!r}: chunk holds shape {list(getattr(tensor, 'shape', []))}, "
                            f"metadata says {list(chunk.sizes)}", where=where,
                            hint="the file and the metadata do not belong together")
    return tensor


def _safetensors_layout(path: Path) -> dict[str, Any] | None:
    """A DCP file written in safetensors format: its tensors by name and DCP's saved offsets; None otherwise."""
    from goldwatch.integrity.safetensors_parser import read_safetensors_header

    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return None
    info = read_safetensors_header(path)
    try:
        sharding = json.loads(info.metadata.get("DCP_SHARDING_INFO", "{}"))
        offsets = {k: v.get("saved_offsets") for k, v in sharding.items()}
    except (ValueError, AttributeError):
        raise ArtifactError("DCP_SHARDING_INFO is not a JSON object of saved offsets", where=str(path)) from None
    return {"tensors": {t.name: t for t in info.tensors}, "offsets": offsets}


def dcp_file_partials(root: str | os.PathLike[str], file: str, chunks: list[DcpChunk],
                      tensors: dict[str, tuple[str, tuple[int, ...]]]) -> list[PartialFingerprint]:
    """The partials of the chunks stored in one ``.distcp`` file (a task: runs wherever the file is readable)."""
    path = Path(root) / file
    where = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        layout = _safetensors_layout(path) if size else None
    except OSError as exc:
        raise ArtifactError(f"cannot read the chunk file ({exc.strerror})", where=where,
                            hint="the checkpoint is incomplete") from None
    data = np.frombuffer(mapped, dtype=np.uint8) if mapped is not None else np.zeros(0, dtype=np.uint8)
    out = []
    for chunk in chunks:
        dtype, shape = tensors[chunk.tensor]
        local = _chunk_data(data, chunk, dtype, where, layout)
        out.append(partial_from_slice(chunk.tensor, local, offsets=chunk.offsets, global_shape=shape,
                                      origin=f"{file} @ {chunk.start}", dtype=dtype))
    return out


def dcp_tensor_entries(root: Path, *, map_files: Callable[..., Iterable[Any]] | None = None) -> tuple[Any, ...]:
    """The manifest entries of a DCP checkpoint's logical tensors: every file's partials, merged with proof of
    coverage. ``map_files(func, *iterables)`` runs the per-file tasks (an executor's ``map``; default: in order)."""
    from goldwatch.integrity.manifest import TensorEntry

    ckpt = read_dcp_metadata(root)
    by_file: dict[str, list[DcpChunk]] = {}
    for c in ckpt.chunks:
        by_file.setdefault(c.file, []).append(c)
    files = sorted(by_file)
    mapper = map_files or map
    results = mapper(dcp_file_partials, [str(root)] * len(files), files, [by_file[f] for f in files],
                     [ckpt.tensors] * len(files))
    partials = [p for part in results for p in part]
    empty = [name for name, (_, shape) in ckpt.tensors.items() if math.prod(shape) == 0]
    merged = merge_partials(partials)
    entries = []
    for name in sorted(ckpt.tensors):
        dtype, shape = ckpt.tensors[name]
        if name in empty and name not in merged.fingerprints:
            from goldwatch.integrity.fingerprint import TensorFingerprint

            fp = TensorFingerprint(nbytes=0, blocks=())
        elif name not in merged.fingerprints:
            raise ArtifactError(f"tensor {name!r} has no stored chunk", where=str(root / DCP_METADATA),
                                hint="the checkpoint is incomplete")
        else:
            fp = merged.fingerprints[name]
        entries.append(TensorEntry(name=name, dtype=dtype, shape=shape, fingerprint=fp))
    return tuple(entries)
