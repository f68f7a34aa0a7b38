"""Reading torch checkpoints without unpickling arbitrary objects: ``torch.load(weights_only=True)`` only.

A checkpoint is a (possibly nested) dict/list of tensors; it is flattened to dotted names (``model.layer.weight``).
TorchScript archives (they hold code) and ``torch.export`` archives are recognised and are not loaded: their
integrity rests on the file digest. A pickle that needs anything beyond tensors and plain containers is refused.

>>> import torch
>>> [name for name, _ in flatten_tensors({"model": {"w": torch.ones(1)}, "opt": [torch.zeros(2)], "epoch": 3})]
['model.w', 'opt.0']
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from goldwatch._optional import require
from goldwatch.errors import ArtifactError

if TYPE_CHECKING:
    import torch

__all__ = ["TorchKind", "flatten_tensors", "load_checkpoint_tensors", "torch_file_kind"]

TorchKind = Literal["checkpoint", "torchscript", "export", "none"]
_TORCH_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pt2"}
_PICKLE_PROTOCOL_2 = b"\x80\x02"


def torch_file_kind(path: str | os.PathLike[str]) -> TorchKind:
    """What kind of torch file ``path`` is, by its content (the suffix only preselects candidates)."""
    path = Path(path)
    if path.suffix.lower() not in _TORCH_SUFFIXES:
        return "none"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "none"
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("archive_format") or "/models/" in n for n in names) and not any(
            n.endswith("/data.pkl") for n in names
        ):
            return "export"
        if any(n.endswith("data.pkl") for n in names):
            return "checkpoint"
        return "none"
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04" and path.suffix.lower() in {".pt", ".pth", ".ckpt"}:
        # a zip that zipfile cannot open (no central directory): the usual sign of a truncated download
        raise ArtifactError("torch file is a damaged zip archive (truncated?)", where=str(path),
                            hint="download or save the checkpoint again")
    magic = magic[:2]
    # the legacy (pre-1.6) format is a pickle stream; only the torch-specific suffixes are tried as such
    if magic == _PICKLE_PROTOCOL_2 and path.suffix.lower() in {".pt", ".pth", ".ckpt"}:
        return "checkpoint"
    return "none"


def flatten_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) pairs of a nested dict/list/tuple; other leaves (numbers, strings) are skipped."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix or "tensor", obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from flatten_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from flatten_tensors(value, f"{prefix}.{i}" if prefix else str(i))


def load_checkpoint_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load the tensors of a torch checkpoint on the CPU, memory-mapped when the format allows, never unpickling.

    Raises :class:`~goldwatch.errors.ArtifactError` when the pickle asks for anything ``weights_only`` forbids or
    the file is truncated or corrupted.
    """
    torch_module = require("torch", purpose="reading torch checkpoints")
    path = Path(path)
    mmap = zipfile.is_zipfile(path)
    try:
        obj = torch_module.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"refusing to unpickle: the checkpoint holds objects other than tensors ({first[:300]})",
            where=str(path),
            hint="save a state dict (torch.save(model.state_dict(), ...)) or use safetensors",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ArtifactError(
            f"cannot read the torch checkpoint ({type(exc).__name__}: {str(exc)[:300]})",
            where=str(path), hint="the file is truncated or corrupted",
        ) from None
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in flatten_tensors(obj):
        tensors[name] = tensor
    return tensors
