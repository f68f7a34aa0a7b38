"""Serving a torch model in another dtype than its file's (e.g. bf16 from fp32 weights): convert, cast the inputs.

Imported only when a served model sets ``dtype`` (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CastInputs", "serve_converted"]


class CastInputs(torch.nn.Module):
    """Run ``inner`` (converted to ``dtype``) on floating inputs cast to ``dtype``; floating outputs come back as
    float32, the dtype the model's signature promises."""

    def __init__(self, inner: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, *args: Any) -> Any:
        cast = [a.to(self.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        out = self.inner(*cast)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            return out.float()
        if isinstance(out, (tuple, list)):
            return type(out)(o.float() if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in out)
        return out


def serve_converted(runtime: Any, dtype: str) -> torch.nn.Module:
    """Convert ``runtime.module`` to ``dtype`` in place, make the runtime call it through :class:`CastInputs`, and
    return the converted module (the one whose tensors are resident)."""
    target = getattr(torch, dtype)
    inner = runtime.module.to(target)
    runtime.module = CastInputs(inner, target).eval()
    return inner
