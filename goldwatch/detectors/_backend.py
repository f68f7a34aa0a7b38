"""numpy vs torch dispatch.

A torch tensor is computed on its own device (CPU or CUDA); torch is imported only when a tensor is passed, found
by the type's module name so that ``import goldwatch`` never imports torch. Dask arrays and dataframes are found
the same way and go to :mod:`goldwatch.detectors.distributed` (exact counts on the cluster, p-values here).

>>> import numpy as np
>>> is_torch(np.zeros(3)), is_torch([1, 2]), is_dask(np.zeros(3))
(False, False, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goldwatch._optional import require

__all__ = ["as_torch_samples", "is_dask", "is_torch", "to_numpy"]


def is_torch(x: Any) -> bool:
    """True for a ``torch.Tensor`` (checked without importing torch)."""
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "device")


def is_dask(x: Any) -> bool:
    """True for a dask array, dataframe or series (checked without importing dask)."""
    module = type(x).__module__.split(".")[0]
    return module in ("dask", "dask_expr") and hasattr(x, "dask")


def any_dask(*xs: Any) -> bool:
    """True when any argument is a dask collection."""
    return any(is_dask(x) for x in xs)


def to_numpy(x: Any) -> Any:
    """A torch tensor copied to host memory as numpy; anything else unchanged."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return x


def as_torch_samples(x: Any, *, name: str, device: Any = None) -> Any:
    """A 2-D float64 tensor on ``device`` (default: the tensor's own), with the same checks as numpy input."""
    from goldwatch.errors import DataError

    torch = require("torch", purpose="drift tests on torch tensors")
    if not is_torch(x):
        x = torch.as_tensor(np.asarray(x))
    if device is not None:
        x = x.to(device)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(
            f"expected a 1-D or 2-D tensor, got {x.ndim}-D shape {tuple(x.shape)}",
            where=name,
            hint="reshape it to (n_samples, n_features)",
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"expected a non-empty tensor, got shape {tuple(x.shape)}", where=name)
    if x.dtype == torch.bool:
        x = x.to(torch.float64)
    if not (x.dtype.is_floating_point or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"expected a numeric tensor, got dtype {x.dtype}", where=name)
    return x.to(torch.float64)
