"""``load_model``: the model spec decides the runtime, and only that runtime's library is imported.

This is the one module that knows every backend; the backends know only :mod:`goldwatch.runtimes.base`, so
imports point down (factory -> onnx/torch/oip -> base).

>>> load_model("model.h5")
Traceback (most recent call last):
...
goldwatch.errors.ArtifactError: model.h5: model not found (fix: pass an existing model file, directory or URL)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from goldwatch.errors import ArtifactError, InvalidInputError
from goldwatch.runtimes.base import DESCRIPTOR_NAME, DeviceUnavailableError, Runtime, normalize_device

__all__ = ["load_model"]

_OIP_URL = re.compile(r"^https?://[^/]+/v2/models/[^/]+(/versions/[^/]+)?/?$")


def load_model(
    spec: str | os.PathLike[str],
    *,
    device: str = "cpu",
    trusted_factories: Iterable[str] | None = None,
    **options: Any,
) -> Runtime:
    """Load ``spec`` with the runtime its form selects.

    * ``*.onnx`` -- ONNX Runtime (CPU; CUDA execution provider for ``device="cuda"``)
    * ``*.pt`` / ``*.ts`` -- TorchScript; ``*.pt2`` -- a ``torch.export`` program
    * a directory with ``goldwatch-model.json`` -- a state dict plus a ``module:function`` factory
    * ``http(s)://HOST:PORT/v2/models/NAME[/versions/V]`` -- a remote Open Inference Protocol v2 model

    ``options`` go to the runtime's constructor (e.g. ``timeout`` for OIP). ``trusted_factories`` adds module
    prefixes a directory's factory may come from (see :mod:`goldwatch.runtimes.torch`); a directory naming an
    untrusted factory is refused before anything is imported.
    """
    device = normalize_device(device)
    text = os.fspath(spec)
    if text.startswith(("http://", "https://")):
        if not _OIP_URL.match(text):
            raise InvalidInputError(
                f"not an Open Inference Protocol v2 model URL: {text!r}",
                where="--model",
                hint="use http://HOST:PORT/v2/models/NAME or .../v2/models/NAME/versions/VERSION",
            )
        if device != "cpu":
            raise DeviceUnavailableError(
                f"a remote model runs on the server's device, not {device!r}", where=text, hint="use --device cpu"
            )
        from goldwatch.runtimes.oip import OipRuntime

        return OipRuntime(text, **options)
    path = Path(text)
    if not path.exists():
        raise ArtifactError("model not found", where=str(path), hint="pass an existing model file, directory or URL")
    if path.is_dir():
        if not (path / DESCRIPTOR_NAME).is_file():
            raise ArtifactError(
                f"a model directory must contain {DESCRIPTOR_NAME}",
                where=str(path),
                hint="point at a .onnx/.pt/.pt2 file, or write the descriptor (see goldwatch.runtimes.torch)",
            )
        from goldwatch.runtimes.torch import TorchRuntime

        return TorchRuntime.from_descriptor(path, device=device, trusted_factories=trusted_factories, **options)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from goldwatch.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(path, device=device, **options)
    if suffix in (".pt", ".ts", ".pth", ".jit"):
        from goldwatch.runtimes.torch import TorchRuntime

        return TorchRuntime.from_torchscript(path, device=device, **options)
    if suffix == ".pt2":
        from goldwatch.runtimes.torch import TorchRuntime

        return TorchRuntime.from_exported(path, device=device, **options)
    raise ArtifactError(
        f"unknown model format {suffix or '(no suffix)'!r}",
        where=str(path),
        hint="use .onnx, .pt (TorchScript), .pt2 (torch.export), a goldwatch-model.json directory or an OIP URL",
    )
