"""Helpers shared by the detector tests."""

from __future__ import annotations

import numpy as np


def rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / |b|, with 0 where both are exactly equal (including both 0, and both NaN)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(a - b) / np.abs(b)
    return np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, out)
