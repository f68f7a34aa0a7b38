"""Model runtimes behind one small interface: ONNX Runtime, PyTorch (TorchScript, torch.export, state dict +
factory) and remote Open Inference Protocol v2 servers.

Only :mod:`goldwatch.runtimes.base` (the interface, numpy) and :mod:`goldwatch.runtimes.factory` (``load_model``)
are imported here; each runtime imports its library when a model of that kind is loaded.
"""

from goldwatch.runtimes.base import (
    DESCRIPTOR_NAME,
    DeviceUnavailableError,
    ModelIdentity,
    Runtime,
    Signature,
    TensorSpec,
    cuda_available,
    normalize_device,
    run_batches,
)
from goldwatch.runtimes.factory import load_model

__all__ = [
    "DESCRIPTOR_NAME",
    "DeviceUnavailableError",
    "ModelIdentity",
    "Runtime",
    "Signature",
    "TensorSpec",
    "cuda_available",
    "load_model",
    "normalize_device",
    "run_batches",
]
