"""Fault injection into resident weights, for tests and drills: flip one bit of one tensor where it lives.

The MLServer drill runtime (:mod:`goldwatch.watchdog.agent.mlserver_faults`) exposes this only when
``GOLDWATCH_FAULT_INJECTION=1`` is set in the server's environment.

>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> before = model.weight.detach().clone()
>>> flip = flip_resident_bit(model, "weight", byte=5, bit=7)
>>> flip.tensor, flip.block, int((model.weight.detach() != before).sum())
('weight', 0, 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from goldwatch.errors import InvalidInputError
from goldwatch.integrity.fingerprint import BLOCK_BYTES
from goldwatch.watchdog.agent.resident import resident_tensors

__all__ = ["FAULT_INJECTION_ENV", "Flip", "flip_resident_bit"]

FAULT_INJECTION_ENV = "GOLDWATCH_FAULT_INJECTION"


@dataclasses.dataclass(frozen=True)
class Flip:
    """Where a bit was flipped: the tensor, the byte inside it, the bit, and the 1 MiB block that holds it."""

    tensor: str
    byte: int
    bit: int
    device: str

    @property
    def block(self) -> int:
        return self.byte // BLOCK_BYTES


def flip_resident_bit(module: Any, tensor: str, *, byte: int, bit: int) -> Flip:
    """Flip bit ``bit`` (0 = least significant) of byte ``byte`` of the resident tensor named ``tensor``, in place."""
    import torch

    found = next((r for r in resident_tensors(module) if tensor in r.names and r.read is None), None)
    if found is None:
        raise InvalidInputError(f"no dense resident tensor named {tensor!r}", where="tensor",
                                hint="name a parameter or buffer of the module (as in its state dict)")
    t = found.tensor.detach()
    nbytes = t.numel() * t.element_size()
    if not 0 <= byte < nbytes or not 0 <= bit < 8:
        raise InvalidInputError(f"byte must be in [0, {nbytes}) and bit in [0, 8), got byte {byte}, bit {bit}",
                                where="byte/bit")
    if not t.is_contiguous():
        raise InvalidInputError(f"tensor {tensor!r} is not contiguous", where="tensor")
    with torch.no_grad():
        raw = t.as_strided((t.numel(),), (1,)).view(torch.uint8)
        raw[byte : byte + 1].bitwise_xor_(1 << bit)
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    return Flip(tensor=found.name, byte=byte, bit=bit, device=str(t.device))
