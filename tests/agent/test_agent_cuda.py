"""The agent on CUDA tensors (skipped, with the reason, where no GPU is present): a flipped bit located on the
device, CPU and CUDA fingerprints of the same weights bit-identical (also slice by slice on a side stream), and no
host copy of the weights (peak host memory does not grow by the model's size)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from goldwatch.integrity import build_manifest
from goldwatch.integrity.fingerprint import BLOCK_BYTES
from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
from goldwatch.integrity.slices import TensorScan
from goldwatch.watchdog.agent import watch
from goldwatch.watchdog.agent.faults import flip_resident_bit

pytestmark = pytest.mark.cuda
torch = pytest.importorskip("torch")


def _module_on_file(tmp_path: Path) -> tuple[Any, Path]:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(1024, 1500), torch.nn.Linear(1500, 10))  # 5.9 MiB: 6 blocks
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "weights.safetensors"))
    return module.to("cuda"), folder


def test_a_bit_flipped_on_the_gpu_is_located_to_tensor_and_block(tmp_path: Path) -> None:
    module, folder = _module_on_file(tmp_path)
    agent = watch(module, manifest=build_manifest(folder), artifact=folder, model="m", start=False,
                  metrics_registry=CollectorRegistry(), gpu_slice_bytes=2 * BLOCK_BYTES)
    assert {t.how for t in agent.coverage.tensors} == {"file"}
    assert {t.device for t in agent.coverage.tensors} == {"cuda:0"}
    assert agent.check_now().status == "pass"  # the GPU fingerprint equals the file's, computed on the CPU
    flip = flip_resident_bit(module, "0.weight", byte=4 * BLOCK_BYTES + 99, bit=5)
    assert agent._check(paced=True).status == "fail"  # the paced path: side stream, slices, duty cycle
    (m,) = agent.last_pass.mismatches  # type: ignore[union-attr]
    assert (m.tensor, m.block, m.device, flip.device) == ("0.weight", 4, "cuda:0", "cuda:0")
    assert 0 < agent.last_pass.duty_cycle <= agent.duty_cycle * 1.5  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "int8"])
def test_cpu_and_cuda_fingerprints_of_the_same_weights_are_equal(dtype: str) -> None:
    gen = torch.Generator().manual_seed(1)
    raw = torch.randint(0, 256, (3 * BLOCK_BYTES + 8,), generator=gen, dtype=torch.uint8)
    host = raw.view(getattr(torch, dtype))  # random bytes seen as each dtype (NaN patterns included)
    device = host.to("cuda")
    expected = fingerprint_tensor(host, backend="numpy")
    assert fingerprint_tensor(device) == expected
    scan = TensorScan(device, stream=torch.cuda.Stream(priority=1 << 20))
    for first in (2, 0, 3, 1):
        if first < scan.nblocks:
            scan.scan(first, first + 1)
    assert scan.finish() == expected


_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    from goldwatch.integrity.manifest import ArtifactManifest, FileEntry
    from goldwatch.watchdog.agent import watch
    size = int(sys.argv[1])
    module = torch.nn.Module()
    for i in range(4):
        module.register_parameter(f"w{i}", torch.nn.Parameter(torch.empty(size // 16, device="cuda").normal_()))
    torch.cuda.synchronize()
    empty = ArtifactManifest(kind="file", digest="sha256", files=(FileEntry("x", 0, "0" * 64, "file"),))
    from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
    fingerprint_tensor(torch.ones(1 << 20, device="cuda"))  # compile the kernel, upload the keys: not the weights
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    agent = watch(module, manifest=empty, model="m", start=False)   # every tensor attested: fingerprinted now
    check = agent.check_now()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"before": before, "after": after, "status": check.status,
                      "bytes": agent.last_pass.bytes_checked}))
""")


def test_no_host_copy_peak_host_memory_does_not_grow_by_the_model_size() -> None:
    size = 1 << 30  # 1 GiB of resident weights
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(size)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "pass"
    assert result["bytes"] == size
    # per-block sums (16 bytes per MiB) and the key table come back, never the weights
    assert result["after"] - result["before"] < size // 10, result
