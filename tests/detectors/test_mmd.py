"""MMD permutation test: detects joint changes, calibrated, chunking-invariant, numpy/torch/CUDA."""

from __future__ import annotations

import numpy as np
import pytest

from goldwatch.detectors import mmd_test
from goldwatch.errors import DataError


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


def test_detects_a_change_the_marginals_do_not_show(rng) -> None:
    from goldwatch.detectors import detect_drift

    ref, cur = correlated(rng, 400, 0.0), correlated(rng, 400, 0.9)
    assert not detect_drift(ref, cur).drifted  # per-feature KS sees identical marginals
    res = mmd_test(ref, cur, n_permutations=100)
    assert res.drifted
    assert res.pvalue == pytest.approx(1 / 101)
    assert res.to_checks()[0].status == "fail"


def test_null_pvalues_are_calibrated() -> None:
    rng = np.random.default_rng(11)
    p = np.array([mmd_test(rng.normal(size=(80, 3)), rng.normal(size=(60, 3)), n_permutations=50,
                           seed=i).pvalue for i in range(40)])
    assert (p < 0.05).mean() <= 0.15
    assert p.min() >= 1 / 51


def test_block_size_does_not_change_the_answer(rng) -> None:
    ref, cur = rng.normal(size=(150, 4)), rng.normal(0.2, size=(120, 4))
    whole = mmd_test(ref, cur, seed=3, max_block_elems=10**9)
    tiny = mmd_test(ref, cur, seed=3, max_block_elems=300)  # one row of the kernel matrix at a time
    assert tiny.pvalue == whole.pvalue
    assert tiny.statistic == pytest.approx(whole.statistic, rel=1e-10)


def test_bad_input() -> None:
    with pytest.raises(DataError, match="current: expected 2 features"):
        mmd_test(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(DataError, match="n_permutations"):
        mmd_test(np.zeros((5, 2)), np.zeros((5, 2)), n_permutations=0)
    with pytest.raises(DataError, match="NaN or inf"):
        mmd_test(np.full((5, 2), np.nan), np.zeros((5, 2)))


def test_torch_cpu_matches_numpy(rng) -> None:
    torch = pytest.importorskip("torch")
    ref, cur = rng.normal(size=(100, 3)), rng.normal(0.3, size=(90, 3))
    a = mmd_test(ref, cur, seed=5)
    b = mmd_test(torch.from_numpy(ref), torch.from_numpy(cur), seed=5)
    assert b.device == "cpu"
    assert b.pvalue == a.pvalue
    assert b.statistic == pytest.approx(a.statistic, rel=1e-9)


@pytest.mark.cuda
def test_cuda_runs_on_the_device_and_agrees_with_cpu(rng) -> None:
    import torch

    ref, cur = rng.normal(size=(3000, 8)), rng.normal(size=(2500, 8))
    cur[:, 0] += 0.15
    cpu = mmd_test(ref, cur, seed=1, n_permutations=100)
    gpu = mmd_test(torch.from_numpy(ref).cuda(), torch.from_numpy(cur).cuda(), seed=1, n_permutations=100)
    assert gpu.device.startswith("cuda")
    assert gpu.statistic == pytest.approx(cpu.statistic, rel=1e-6)
    assert gpu.pvalue == cpu.pvalue
