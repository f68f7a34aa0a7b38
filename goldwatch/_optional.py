"""Lazy loading of optional heavy dependencies (torch, onnxruntime, evidently, ...).

``import goldwatch`` never imports them; code that needs one calls :func:`require` at the point of use, which
turns a missing package into a :class:`~goldwatch.errors.DependencyMissingError` that names the extra to install.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from goldwatch.errors import DependencyMissingError

# import name -> the extra of goldwatch that provides it
_EXTRA_FOR = {
    "torch": "torch",
    "safetensors": "torch",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "evidently": "reports",
    "starlette": "serve",
    "uvicorn": "serve",
    "mlserver": "demo",
    "pyarrow": "parquet",
    "mlflow": "mlflow",
    "dask": "dask",
    "distributed": "dask",
    "psycopg": "postgres",
}


def require(module: str, *, purpose: str) -> ModuleType:
    """Import ``module`` or raise a clear error saying which extra provides it.

    >>> require("json", purpose="reading manifests").__name__
    'json'
    >>> require("no_such_module_xyz", purpose="testing")
    Traceback (most recent call last):
    ...
    goldwatch.errors.DependencyMissingError: no_such_module_xyz is not installed, and it is needed for testing ...
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top)
        hint = f"pip install 'goldwatch[{extra}]'" if extra else f"pip install {top}"
        raise DependencyMissingError(
            f"{module} is not installed, and it is needed for {purpose} ({exc})", hint=hint
        ) from None


def is_loaded(module: str) -> bool:
    """True if ``module`` was already imported by someone (cheap check, imports nothing)."""
    return module in sys.modules
