"""Resident weights: fingerprint and verify a ``torch.nn.Module`` or state dict on the devices it lives on.

Nothing is copied to the host: CPU tensors are read through zero-copy numpy views, CUDA tensors by the fused Triton
kernel (or eager torch). The only transfers are the per-block sums, 16 bytes per MiB of weights.

>>> import torch
>>> layer = torch.nn.Linear(4, 3)
>>> fps = fingerprint_module(layer)
>>> sorted(fps), fps["weight"].nbytes
(['bias', 'weight'], 48)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from goldwatch.errors import DataError
from goldwatch.integrity.fingerprint import TensorFingerprint
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.integrity.verify import IntegrityReport, fingerprint_any, verify_tensors

__all__ = ["fingerprint_module", "fingerprint_state_dict", "verify_module"]


def fingerprint_state_dict(tensors: Mapping[str, Any], *, backend: str = "auto") -> dict[str, TensorFingerprint]:
    """Fingerprint every tensor of a mapping (torch tensors on any device, or numpy arrays), in order."""
    return {name: fingerprint_any(tensor, backend=backend) for name, tensor in tensors.items()}


def _state_dict(module: Any) -> Mapping[str, Any]:
    if not hasattr(module, "state_dict") or not callable(module.state_dict):
        raise DataError(f"expected a torch.nn.Module, got {type(module).__name__}",
                        hint="pass a module, or use fingerprint_state_dict / verify_tensors for a mapping")
    # state_dict() returns detached views of the parameters and buffers: no copy of the weights
    state: Mapping[str, Any] = module.state_dict()
    return state


def fingerprint_module(module: Any, *, backend: str = "auto") -> dict[str, TensorFingerprint]:
    """Fingerprint the parameters and persistent buffers of ``module`` where they live."""
    return fingerprint_state_dict(_state_dict(module), backend=backend)


def verify_module(
    module: Any,
    manifest: ArtifactManifest | str | os.PathLike[str],
    *,
    strict: bool = True,
    source: str | None = None,
    backend: str = "auto",
) -> IntegrityReport:
    """Verify the resident weights of ``module`` against ``manifest`` (see :func:`verify_tensors`)."""
    return verify_tensors(_state_dict(module), manifest, strict=strict, source=source, backend=backend)
