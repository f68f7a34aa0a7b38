"""Maximum mean discrepancy (multivariate) with a permutation test, memory-bounded, on numpy or torch (CUDA).

MMD compares whole rows, so it sees changes in the joint distribution that per-feature tests miss (a correlation
that flips sign, say). The statistic is the biased estimate ``MMD^2 = w' K w`` with a Gaussian kernel on features
standardised by the reference, bandwidth by the median heuristic, and weights ``w = 1/n`` for reference rows and
``-1/m`` for current rows. The permutation test evaluates the same quadratic form for ``n_permutations`` shuffled
weight vectors in the same pass: the kernel matrix is never held whole; blocks of rows ``K[b, :]`` are formed,
multiplied by the (N, 1 + P) weight matrix and dropped, so memory is ``O(block x N)`` (``max_block_elems``), and
time ``O(N^2 (d + P))``. 100,000 rows a side fit in memory; at that size the time wants a GPU.

Torch tensors are computed on their device; the permutations come from numpy's generator with ``seed`` on the
host, so CPU and CUDA runs of the same data give the same p-value.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(300, 2))
>>> cov = [[1.0, 0.9], [0.9, 1.0]]                      # same marginals, new correlation
>>> cur = rng.multivariate_normal([0, 0], cov, size=300)
>>> res = mmd_test(ref, cur, n_permutations=200, seed=0)
>>> res.drifted, res.pvalue <= 0.01
(True, True)
>>> stable = np.random.default_rng(1).normal(size=(300, 2))
>>> mmd_test(ref, stable, seed=0).drifted
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from goldwatch import progress
from goldwatch.checks import Check
from goldwatch.detectors._backend import as_torch_samples, is_torch
from goldwatch.detectors._validation import as_samples, check_pair
from goldwatch.errors import DataError

__all__ = ["MMDResult", "mmd_test"]


@dataclass(frozen=True)
class MMDResult:
    statistic: float  # biased MMD^2
    pvalue: float
    drifted: bool
    alpha: float
    bandwidth: float
    n_permutations: int
    n_reference: int
    n_current: int
    device: str

    def to_checks(self, prefix: str = "drift") -> list[Check]:
        verdict = "drift" if self.drifted else "no drift"
        return [
            Check(
                name=f"{prefix}:mmd",
                status="fail" if self.drifted else "pass",
                summary=f"MMD^2 {self.statistic:.4g}, permutation p={self.pvalue:.3g} -> {verdict}",
                measured={"statistic": self.statistic, "pvalue": self.pvalue},
                threshold={"pvalue": self.alpha, "n_permutations": self.n_permutations},
            )
        ]


class _NumpyOps:
    def __init__(self) -> None:
        self.device = "cpu"

    def asarray(self, x: np.ndarray, like: Any = None) -> Any:
        return np.asarray(x, dtype=np.float64)

    exp = staticmethod(np.exp)

    @staticmethod
    def index(idx: np.ndarray) -> Any:
        return idx

    @staticmethod
    def sqnorm(x: Any) -> Any:
        return np.einsum("ij,ij->i", x, x)

    @staticmethod
    def to_numpy(x: Any) -> np.ndarray:
        return np.asarray(x)


class _TorchOps:
    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = str(device)
        self._device = device

    def asarray(self, x: np.ndarray, like: Any = None) -> Any:
        return self.torch.as_tensor(x, dtype=self.torch.float64, device=self._device)

    def exp(self, x: Any) -> Any:
        return self.torch.exp(x)

    def index(self, idx: np.ndarray) -> Any:
        return self.torch.as_tensor(idx, dtype=self.torch.long, device=self._device)

    @staticmethod
    def sqnorm(x: Any) -> Any:
        return (x * x).sum(dim=1)

    @staticmethod
    def to_numpy(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()


def _median_bandwidth(z: Any, ops: Any, rng: np.random.Generator, max_points: int) -> float:
    n = z.shape[0]
    idx = rng.choice(n, size=min(n, max_points), replace=False)
    sub = z[ops.index(idx)]
    sq = ops.sqnorm(sub)
    d2 = sq[:, None] + sq[None, :] - 2 * (sub @ sub.T)
    d2 = ops.to_numpy(d2)
    off = d2[np.triu_indices(d2.shape[0], k=1)]
    med = float(np.median(np.maximum(off, 0.0)))
    # median heuristic: sigma^2 = median squared distance / 2; a degenerate sample (all rows equal) falls back to 1
    return float(np.sqrt(med / 2.0)) if med > 0 else 1.0


@progress.stage(lambda *_, **__: "drift test (mmd)")
def mmd_test(
    reference: Any,
    current: Any,
    *,
    n_permutations: int = 200,
    alpha: float = 0.05,
    bandwidth: float | None = None,
    seed: int = 0,
    max_block_elems: int = 8_000_000,
    bandwidth_points: int = 1000,
) -> MMDResult:
    """Permutation MMD test of ``current`` against ``reference`` (rows are samples, columns features)."""
    if n_permutations < 1:
        raise DataError(f"expected at least 1 permutation, got {n_permutations}", where="n_permutations")
    if not 0 < alpha < 1:
        raise DataError(f"expected a level in (0, 1), got {alpha!r}", where="alpha")
    if bandwidth is not None and not bandwidth > 0:
        raise DataError(f"expected a positive bandwidth, got {bandwidth!r}", where="bandwidth")
    rng = np.random.default_rng(seed)
    ops: Any
    x: Any
    y: Any
    z: Any
    if is_torch(reference) or is_torch(current):
        device = reference.device if is_torch(reference) else current.device
        x = as_torch_samples(reference, name="reference", device=device)
        y = as_torch_samples(current, name="current", device=device)
        if x.shape[1] != y.shape[1]:
            raise DataError(f"expected {x.shape[1]} features (like reference), got shape {tuple(y.shape)}",
                            where="current")
        ops = _TorchOps(device)
        import torch

        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
            raise DataError("NaN or inf in the input", where="mmd_test", hint="drop rows with non-finite values")
        mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        z = torch.cat([(x - mean) / std, (y - mean) / std], dim=0)
    else:
        x = as_samples(reference, name="reference")
        y = as_samples(current, name="current")
        check_pair(x, y)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError("NaN or inf in the input", where="mmd_test", hint="drop rows with non-finite values")
        ops = _NumpyOps()
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        z = np.concatenate([(x - mean) / std, (y - mean) / std], axis=0)
    n, m = int(x.shape[0]), int(y.shape[0])
    big_n = n + m
    sigma = bandwidth if bandwidth is not None else _median_bandwidth(z, ops, rng, bandwidth_points)
    w0 = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    weights = np.empty((big_n, n_permutations + 1))
    weights[:, 0] = w0
    weights[:, 1:] = rng.permuted(np.tile(w0, (n_permutations, 1)), axis=1).T
    w = ops.asarray(weights)
    sq = ops.sqnorm(z)
    totals = np.zeros(n_permutations + 1)
    block = max(1, max_block_elems // big_n)
    scale = -1.0 / (2.0 * sigma * sigma)
    for lo in range(0, big_n, block):
        hi = min(big_n, lo + block)
        d2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (z[lo:hi] @ z.T)
        kb = ops.exp(d2 * scale)
        totals += ops.to_numpy((w[lo:hi] * (kb @ w)).sum(0))
    stat = float(totals[0])
    # ties count against drift, and the observed arrangement is one of the permutations: p >= 1 / (P + 1)
    pvalue = float((1 + np.count_nonzero(totals[1:] >= stat - 1e-12 * abs(stat))) / (n_permutations + 1))
    return MMDResult(
        statistic=stat, pvalue=pvalue, drifted=pvalue < alpha, alpha=alpha, bandwidth=float(sigma),
        n_permutations=n_permutations, n_reference=n, n_current=m, device=ops.device,
    )
