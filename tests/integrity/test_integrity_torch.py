"""The torch paths (numpy view on CPU, eager torch, fused Triton on CUDA) give the numpy path's value bit for bit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="the torch paths need torch (pip install 'goldwatch[torch]')")

from goldwatch.errors import DataError  # noqa: E402
from goldwatch.integrity import fingerprint_torch  # noqa: E402
from goldwatch.integrity.fingerprint import BLOCK_BYTES, fingerprint_of_bytes_reference  # noqa: E402
from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer  # noqa: E402
from goldwatch.integrity.fingerprint_torch import fingerprint_tensor  # noqa: E402

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2, torch.int8,
          torch.uint8, torch.bool, torch.int64, torch.float64, torch.int16]


def _random(shape: tuple[int, ...], dtype: torch.dtype, device: str = "cpu", seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (int(torch.tensor(shape).prod()) * torch.empty(0, dtype=dtype).element_size(),),
                        dtype=torch.uint8, generator=g)
    return raw.view(dtype).reshape(shape).to(device)


def _file_bytes(t: torch.Tensor) -> bytes:
    """What a file would hold: the contiguous row-major bytes, computed without goldwatch."""
    c = t.detach().cpu().contiguous()
    return c.as_strided((c.numel(),), (1,)).view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_dtype_matches_the_file_bytes(dtype: torch.dtype, backend: str) -> None:
    t = _random((37, 3), dtype)  # odd byte lengths for 1- and 2-byte types
    assert fingerprint_tensor(t, backend=backend) == fingerprint_of_bytes_reference(_file_bytes(t))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_non_contiguous_and_unaligned_tensors(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint_torch, "PIECE_BYTES", 4099)  # pieces cut at odd offsets, across blocks
    base = _random((700, 401), torch.float32)  # 1.07 MiB: two blocks
    cases = {
        "transposed": base.t(),
        "strided": base[::3, 1::2],
        "expanded": torch.arange(5, dtype=torch.int8).expand(3, 5),
        "unaligned": _random((1001,), torch.int8)[1:],
        "int8-rows": _random((999, 1101), torch.int8)[:, 3:],
        "zero-d": torch.tensor(1.5),
        "empty": torch.empty(0, 4),
    }
    for name, t in cases.items():
        expected = fingerprint_buffer(_file_bytes(t))
        assert fingerprint_tensor(t, backend=backend) == expected, name


def test_eager_torch_over_many_blocks_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint_torch, "CHUNK_BLOCKS", 2)  # several steps, and a partial last block
    t = _random((5 * BLOCK_BYTES // 4 + 3,), torch.int32)
    assert fingerprint_tensor(t, backend="torch") == fingerprint_tensor(t, backend="numpy")


def test_a_flipped_bit_in_memory_is_located() -> None:
    t = _random((3 * BLOCK_BYTES // 2,), torch.bfloat16)  # 3 blocks
    before = fingerprint_tensor(t)
    t.view(torch.uint8)[2 * BLOCK_BYTES + 11] ^= 0x40  # an exponent bit, in the third block
    for backend in ("numpy", "torch"):
        assert before.diff(fingerprint_tensor(t, backend=backend)) == [2]


def test_bad_tensors_and_backends_are_refused() -> None:
    with pytest.raises(DataError, match=r"torch.Tensor"):
        fingerprint_tensor([1, 2, 3])
    with pytest.raises(DataError, match="meta"):
        fingerprint_tensor(torch.empty(3, device="meta"))
    with pytest.raises(DataError, match="CUDA tensor"):
        fingerprint_tensor(torch.ones(3), backend="triton")
    assert fingerprint_torch.resolve_backend(torch.ones(1), "auto") == "numpy"


def test_parameters_with_grad_are_fingerprinted_without_a_copy() -> None:
    layer = torch.nn.Linear(8, 8)
    ptr = layer.weight.data_ptr()
    assert fingerprint_tensor(layer.weight) == fingerprint_buffer(_file_bytes(layer.weight))
    assert layer.weight.data_ptr() == ptr


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    dtype=st.sampled_from([torch.bfloat16, torch.int8, torch.bool, torch.float32, torch.float8_e5m2]),
    perm_seed=st.integers(0, 100),
    step=st.integers(1, 3),
)
def test_property_eager_torch_equals_numpy_on_any_view(
    shape: list[int], dtype: torch.dtype, perm_seed: int, step: int
) -> None:
    t = _random(tuple(shape), dtype, seed=perm_seed)
    perm = torch.randperm(len(shape), generator=torch.Generator().manual_seed(perm_seed)).tolist()
    view = t.permute(*perm)[::step]
    expected = fingerprint_of_bytes_reference(_file_bytes(view))
    assert fingerprint_tensor(view, backend="torch") == expected
    assert fingerprint_tensor(view, backend="numpy") == expected


_INTERPRETED = """
import os, sys
import numpy as np, torch
from goldwatch.integrity import fingerprint_triton as ft
from goldwatch.integrity.fingerprint import WORDS_PER_BLOCK, BlockSums
from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer
from goldwatch.integrity.fingerprint_torch import device_keys

g = torch.Generator().manual_seed(0)
for n in [5, 4096, WORDS_PER_BLOCK + 77]:
    words = torch.randint(-2**31, 2**31, (n,), dtype=torch.int64, generator=g).to(torch.int32)
    acc = torch.zeros((-(-n // WORDS_PER_BLOCK), 2), dtype=torch.int64)
    ft.fused_block_sums(words, 0, acc, device_keys(torch.device("cpu")))
    sums = BlockSums(4 * n)
    sums.sums += acc.numpy().view(np.uint64)
    assert sums.finalize() == fingerprint_buffer(words.numpy()), n
print("ok")
"""


@pytest.mark.slow
def test_fused_kernel_in_the_triton_interpreter() -> None:
    """The Triton kernel's arithmetic, run by Triton's CPU interpreter (where Triton is installed, GPU or not)."""
    import os
    import subprocess
    import sys

    if not fingerprint_torch.triton_available():
        pytest.skip("triton is not installed (it ships with CUDA builds of torch); the cuda tests cover it there")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", _INTERPRETED], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.int8, torch.bool,
                                   torch.float32], ids=str)
def test_cuda_eager_and_fused_match_the_cpu(dtype: torch.dtype) -> None:
    t = _random((1531, 1023), dtype, seed=5)  # several blocks and an odd byte count for 1-byte types
    expected = fingerprint_tensor(t, backend="numpy")
    gpu = t.to("cuda")
    assert fingerprint_tensor(gpu, backend="torch") == expected
    if fingerprint_torch.triton_available():
        assert fingerprint_tensor(gpu, backend="triton") == expected
    assert fingerprint_tensor(gpu) == expected


@pytest.mark.cuda
def test_cuda_non_contiguous_and_bit_flip_located() -> None:
    t = _random((2048, 1031), torch.bfloat16, seed=9).to("cuda")
    view = t[:, 7:].t()
    expected = fingerprint_buffer(_file_bytes(view))
    for backend in ["torch", "triton"] if fingerprint_torch.triton_available() else ["torch"]:
        assert fingerprint_tensor(view, backend=backend) == expected  # type: ignore[arg-type]
    before = fingerprint_tensor(t)
    t.view(torch.uint8).reshape(-1)[3 * BLOCK_BYTES + 5] ^= 1
    assert before.diff(fingerprint_tensor(t)) == [3]
    assert before.diff(fingerprint_tensor(t, backend="torch")) == [3]


@pytest.mark.cuda
def test_cuda_fingerprint_allocates_bounded_memory() -> None:
    t = _random((64 * BLOCK_BYTES // 2,), torch.float16, seed=2).to("cuda")  # 64 MiB
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fingerprint_tensor(t)
    extra = torch.cuda.max_memory_allocated() - base
    # fused: 1 KiB of tile sums per MiB; eager: two int64 temporaries of CHUNK_BLOCKS MiB of words each
    limit = (1 << 20) if fingerprint_torch.triton_available() else 4 * fingerprint_torch.CHUNK_BLOCKS * BLOCK_BYTES
    assert extra < limit, f"used {extra} extra bytes for 64 MiB of weights (limit {limit})"
