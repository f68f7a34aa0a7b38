"""The tensors a torch module holds in memory, as the agent sees them: one entry per distinct piece of memory.

Parameters and buffers are walked module by module (``remove_duplicate=False``), so a weight tied between two
modules (an embedding and an LM head) appears once, with every name it is known by in ``aliases``. Buffers say
whether they are persistent (saved in a state dict, hence usually in the file) or not. Quantized weights packed
by a backend (``torch.ao`` quantized Linear/Conv: an opaque ``ScriptObject``) and quantized tensors cannot be read
in place; they come with a ``read`` function that unpacks them into a temporary dense byte tensor. Anything else
that cannot be fingerprinted (meta, sparse, tensor subclasses without plain storage) carries a ``problem``.

>>> import torch
>>> emb = torch.nn.Embedding(10, 4)
>>> head = torch.nn.Linear(4, 10, bias=False)
>>> head.weight = emb.weight                                  # tied
>>> model = torch.nn.ModuleDict({"emb": emb, "head": head})
>>> model.register_buffer("mask", torch.ones(3), persistent=False)
>>> [(t.name, t.aliases, t.kind) for t in resident_tensors(model)]
[('mask', (), 'non-persistent buffer'), ('emb.weight', ('head.weight',), 'parameter')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Literal

from goldwatch._optional import require
from goldwatch.errors import DataError
from goldwatch.integrity.dtypes import dtype_of

__all__ = ["ResidentTensor", "TensorKind", "memory_layout", "resident_tensors"]

TensorKind = Literal["parameter", "buffer", "non-persistent buffer", "packed", "quantized"]


@dataclasses.dataclass(frozen=True)
class ResidentTensor:
    """One piece of resident memory: its names, the tensor, and how to read it when it is not a dense tensor."""

    name: str
    aliases: tuple[str, ...]
    kind: TensorKind
    tensor: Any = dataclasses.field(repr=False, compare=False)
    read: Callable[[], Any] | None = dataclasses.field(default=None, repr=False, compare=False)
    problem: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def nbytes(self) -> int:
        t = self.tensor
        try:
            return int(t.numel() * t.element_size())
        except (AttributeError, RuntimeError):
            return 0

    @property
    def dtype(self) -> str:
        try:
            return dtype_of(self.tensor)
        except (AttributeError, TypeError):
            return "unknown"

    @property
    def device(self) -> str:
        return str(getattr(self.tensor, "device", "cpu"))

    def dense(self) -> Any:
        """The dense tensor to fingerprint: the resident tensor itself, or a fresh unpacked copy."""
        return self.read() if self.read is not None else self.tensor


def _unreadable(tensor: Any) -> str | None:
    """Why ``tensor``'s bytes cannot be read in place (None when they can)."""
    torch = require("torch", purpose="watching torch modules")
    if isinstance(tensor, torch.nn.parameter.UninitializedTensorMixin):
        return "a lazy parameter holds no data until the module's first call"
    if tensor.device.type == "meta":
        return "a meta tensor holds no data (materialize the module before watching it)"
    if tensor.layout != torch.strided:
        return f"{tensor.layout} tensors are not stored as plain bytes"
    base = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
    if type(base) is not torch.Tensor:
        return f"tensor subclass {type(base).__name__} does not expose plain storage"
    try:
        tensor.untyped_storage()
    except (RuntimeError, NotImplementedError) as exc:
        return f"its storage cannot be read ({str(exc).splitlines()[0][:120]})"
    return None


def quantized_bytes(parts: list[Any]) -> Any:
    """Quantized tensors and plain tensors as one uint8 tensor: integer values, scales, zero points, in order."""
    torch = require("torch", purpose="watching quantized torch modules")
    flat = []
    for part in parts:
        if part is None:
            continue
        if part.is_quantized:
            if part.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                meta = [torch.tensor([part.q_scale()], dtype=torch.float64),
                        torch.tensor([part.q_zero_point()], dtype=torch.int64)]
            else:
                meta = [part.q_per_channel_scales(), part.q_per_channel_zero_points()]
            pieces = [part.int_repr(), *meta]
        else:
            pieces = [part]
        flat += [p.detach().contiguous().reshape(-1).view(torch.uint8).cpu() for p in pieces]
    return torch.cat(flat) if flat else torch.zeros(0, dtype=torch.uint8)


def _walk(module: Any) -> Iterator[tuple[str, Any, TensorKind, Callable[[], Any] | None]]:
    torch = require("torch", purpose="watching torch modules")
    script_object = getattr(torch, "ScriptObject", None) or torch._C.ScriptObject
    seen_packed: set[int] = set()
    for prefix, sub in module.named_modules(remove_duplicate=False):
        dot = f"{prefix}." if prefix else ""
        for name, p in sub._parameters.items():
            if p is not None:
                yield dot + name, p, "parameter", None
        non_persistent: set[str] = getattr(sub, "_non_persistent_buffers_set", set())
        for name, b in sub._buffers.items():
            if b is not None:
                yield dot + name, b, ("non-persistent buffer" if name in non_persistent else "buffer"), None
        packed = sub.__dict__.get("_packed_params")
        weight_bias = getattr(sub, "_weight_bias", None)
        if isinstance(packed, script_object) and callable(weight_bias) and id(packed) not in seen_packed:
            seen_packed.add(id(packed))

            def read(fn: Callable[[], Any] = weight_bias) -> Any:
                return quantized_bytes(list(fn()))

            yield dot + "_packed_params", packed, "packed", read


def _identity(tensor: Any) -> tuple[Any, ...]:
    """Two names refer to the same memory iff this key is equal (device, address, dtype, shape, strides)."""
    try:
        if tensor.numel() == 0 or tensor.device.type == "meta":
            return ("object", id(tensor))
        return (str(tensor.device), tensor.data_ptr(), str(tensor.dtype), tuple(tensor.shape), tuple(tensor.stride()))
    except (RuntimeError, AttributeError):
        return ("object", id(tensor))


def resident_tensors(module: Any) -> list[ResidentTensor]:
    """Every distinct resident tensor of ``module`` (parameters, buffers, packed weights), in module order."""
    torch = require("torch", purpose="watching torch modules")
    if not isinstance(module, torch.nn.Module):
        raise DataError(f"expected a torch.nn.Module, got {type(module).__name__}",
                        hint="pass the module the server runs (for a TorchScript module, its loaded object)")
    groups: dict[tuple[Any, ...], list[tuple[str, Any, TensorKind, Callable[[], Any] | None]]] = {}
    for name, tensor, kind, read in _walk(module):
        key = ("packed", id(tensor)) if kind == "packed" else _identity(tensor)
        groups.setdefault(key, []).append((name, tensor, kind, read))
    out = []
    for members in groups.values():
        names = list(dict.fromkeys(m[0] for m in members))  # a shared submodule yields the same name once per path
        name, tensor, kind, read = members[0]
        if any(m[2] == "parameter" for m in members):
            kind = "parameter"
        problem = None
        if kind != "packed":
            problem = _unreadable(tensor)
            if problem is None and tensor.is_quantized:
                kind = "quantized"

                def read(t: Any = tensor) -> Any:
                    return quantized_bytes([t])
        out.append(ResidentTensor(name=names[0], aliases=tuple(names[1:]), kind=kind, tensor=tensor, read=read,
                                  problem=problem))
    return out


def memory_layout(tensors: list[ResidentTensor]) -> frozenset[tuple[Any, ...]]:
    """Where the dense tensors live (device, address, dtype, shape, strides): if this changes, the server replaced
    or reallocated tensors, and expectations pinned to the old memory no longer describe what it serves. Packed
    weights are left out: they are read afresh through their unpack function on every pass."""
    return frozenset((*t.names, *_identity(t.tensor)) for t in tensors if t.read is None and t.problem is None)
