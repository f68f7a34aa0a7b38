"""The resident agent on CPU: block-level detection, name mapping (prefixes, tied weights, buffers not in the file),
attest at load (bf16 from fp32 files, quantized copies), refusal of a bad file, exclusions, pacing and stopping."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from goldwatch.errors import ArtifactError, InvalidInputError
from goldwatch.integrity import build_manifest
from goldwatch.integrity.fingerprint import BLOCK_BYTES
from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
from goldwatch.integrity.slices import TensorScan
from goldwatch.watchdog.agent import CallbackReporter, Evidence, watch
from goldwatch.watchdog.agent.faults import flip_resident_bit

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


class Big(torch.nn.Module):
    """A 3 MiB + 12 byte weight (4 blocks, the last one short), a bias, a persistent buffer and a non-persistent one."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1024, 769)
        self.register_buffer("scale", torch.linspace(0, 1, 769))
        self.register_buffer("causal_mask", torch.tril(torch.ones(16, 16, dtype=torch.bool)), persistent=False)

    def forward(self, x: Any) -> Any:
        return self.lin(x) * self.scale


def _saved(tmp_path: Path, module: Any, *, drop: tuple[str, ...] = ()) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items() if k not in drop}
    safetensors_torch.save_file(state, str(folder / "weights.safetensors"))
    return folder


def _watch(module: Any, folder: Path, **kw: Any) -> Any:
    return watch(module, manifest=build_manifest(folder), artifact=folder, model="m", start=False,
                 metrics_registry=CollectorRegistry(), **kw)


@pytest.fixture
def big(tmp_path: Path) -> tuple[Any, Path]:
    torch.manual_seed(0)
    module = Big()
    return module, _saved(tmp_path, module)


def test_a_flipped_bit_is_located_to_tensor_block_and_byte_ranges(big: tuple[Any, Path]) -> None:
    module, folder = big
    agent = _watch(module, folder)
    cov = {t.name: t for t in agent.coverage.tensors}
    assert (cov["lin.weight"].how, cov["lin.bias"].how, cov["scale"].how) == ("file", "file", "file")
    assert cov["causal_mask"].how == "attested"
    assert "non-persistent buffer not in the file" in cov["causal_mask"].reason
    assert agent.check_now().status == "pass"
    flip = flip_resident_bit(module, "lin.weight", byte=2 * BLOCK_BYTES + 12345, bit=3)
    check = agent.check_now()
    assert check.status == "fail"
    (m,) = check.details["mismatches"]
    weight = next(x for x in agent.expectations if x.resident.name == "lin.weight")
    assert (m["tensor"], m["block"], m["start"], m["stop"]) == ("lin.weight", 2, 2 * BLOCK_BYTES, 3 * BLOCK_BYTES)
    assert (m["file_start"], m["file_stop"]) == (weight.file_offset + m["start"], weight.file_offset + m["stop"])
    assert m["file"] == "weights.safetensors"
    assert m["how"] == "file"
    assert flip.block == 2
    flip_resident_bit(module, "lin.weight", byte=flip.byte, bit=flip.bit)  # flipped back: intact again
    assert agent.check_now().status == "pass"


def test_the_short_last_block_and_a_buffer_not_in_the_file_are_covered(big: tuple[Any, Path]) -> None:
    module, folder = big
    agent = _watch(module, folder)
    nbytes = 769 * 1024 * 4
    flip_resident_bit(module, "lin.weight", byte=nbytes - 1, bit=0)
    flip_resident_bit(module, "causal_mask", byte=17, bit=1)
    found = {(m["tensor"], m["block"], m["how"]) for m in agent.check_now().details["mismatches"]}
    assert found == {("lin.weight", 3, "file"), ("causal_mask", 0, "attested")}


def test_a_tied_weight_is_checked_once_under_every_name(tmp_path: Path) -> None:
    torch.manual_seed(1)
    emb = torch.nn.Embedding(300, 1024)
    head = torch.nn.Linear(1024, 300, bias=False)
    head.weight = emb.weight
    module = torch.nn.ModuleDict({"emb": emb, "head": head})
    folder = tmp_path / "model"
    folder.mkdir()
    safetensors_torch.save_model(module, str(folder / "weights.safetensors"))  # keeps one name of a tied pair
    agent = _watch(module, folder)
    (t,) = agent.coverage.tensors
    assert t.how == "file"
    assert set((t.name, *t.aliases)) == {"emb.weight", "head.weight"}
    assert t.manifest_name in ("emb.weight", "head.weight")
    flip_resident_bit(module, "head.weight", byte=BLOCK_BYTES + 5, bit=2)  # written through the other name
    (m,) = agent.check_now().details["mismatches"]
    assert m["block"] == 1
    assert {m["tensor"], *m["aliases"]} == {"emb.weight", "head.weight"}


class Wrapper(torch.nn.Module):
    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner


@pytest.mark.parametrize(("wrap", "rule"), [(True, "strip 'inner.'"), (False, "add 'inner.'")])
def test_names_one_prefix_apart_are_matched(tmp_path: Path, wrap: bool, rule: str) -> None:
    torch.manual_seed(2)
    inner = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    resident, saved = (Wrapper(inner), inner) if wrap else (inner, Wrapper(inner))
    agent = _watch(resident, _saved(tmp_path, saved))
    assert agent.coverage.name_rule == rule
    assert {t.how for t in agent.coverage.tensors} == {"file"}
    assert len(agent.coverage.tensors) == 4
    assert agent.check_now().status == "pass"


def test_a_bf16_server_of_fp32_files_is_proven_from_the_file_at_load(big: tuple[Any, Path]) -> None:
    module, folder = big
    served = module.to(torch.bfloat16)
    agent = _watch(served, folder)
    cov = {t.name: t for t in agent.coverage.tensors}
    assert cov["lin.weight"].how == "derived"
    assert cov["lin.weight"].dtype == "bfloat16"
    assert "float32 in the file, bfloat16 resident: proven at load" in cov["lin.weight"].reason
    assert cov["causal_mask"].how == "attested"  # bool buffers are not converted, and not in the file
    assert agent.check_now().status == "pass"
    flip_resident_bit(served, "lin.weight", byte=BLOCK_BYTES + 1, bit=7)
    (m,) = agent.check_now().details["mismatches"]
    assert (m["tensor"], m["block"], m["how"], m["file_start"]) == ("lin.weight", 1, "derived", None)


def test_resident_values_that_are_not_the_files_converted_are_attested_not_derived(big: tuple[Any, Path]) -> None:
    module, folder = big
    served = module.to(torch.bfloat16)
    with torch.no_grad():
        served.lin.weight.mul_(2)  # the server transformed the weights (e.g. folded a scale) before serving
    cov = {t.name: t for t in _watch(served, folder).coverage.tensors}
    assert cov["lin.weight"].how == "attested"
    assert "not a plain conversion of the file's values" in cov["lin.weight"].reason
    assert cov["lin.bias"].how == "derived"


def test_attest_never_refuses_what_cannot_be_compared_with_the_file(big: tuple[Any, Path]) -> None:
    module, folder = big
    with pytest.raises(ArtifactError, match="causal_mask: non-persistent buffer not in the file"):
        _watch(module, folder, attest="never")
    agent = _watch(module, folder, attest="never", exclude=["causal_*"])
    assert [t.name for t in agent.coverage.uncovered] == ["causal_mask"]
    assert "excluded by configuration" in agent.coverage.uncovered[0].reason


def _quantized(module: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def test_a_quantized_copy_is_attested_through_unpacking_with_the_reason(tmp_path: Path) -> None:
    torch.manual_seed(3)
    fp32 = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    folder = _saved(tmp_path, fp32)
    q = _quantized(fp32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = _watch(q, folder)
        packed = [t for t in agent.coverage.tensors if t.how == "unpacked"]
        assert sorted(t.name for t in packed) == ["0._packed_params._packed_params", "2._packed_params._packed_params"]
        assert all("backend-packed quantized weights: read through unpacking" in t.reason for t in packed)
        assert agent.check_now().status == "pass"
        # corrupt one int8 weight inside the packed structure (repack a changed copy, as a bad write would leave it)
        weight, bias = q[0]._weight_bias()
        ints = weight.int_repr().clone()
        ints[3, 5] ^= 4
        changed = torch._make_per_tensor_quantized_tensor(ints, weight.q_scale(), weight.q_zero_point())
        q[0].set_weight_bias(changed, bias)
        check = agent.check_now()
    assert check.status == "fail"
    assert {m["tensor"] for m in check.details["mismatches"]} == {"0._packed_params._packed_params"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ArtifactError, match="backend-packed quantized weights"):
            _watch(_quantized(fp32), folder, attest="never")


def test_a_file_that_fails_its_manifest_is_refused_before_anything_is_pinned(big: tuple[Any, Path]) -> None:
    module, folder = big
    manifest = build_manifest(folder)
    path = folder / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"do not match their manifest.*tensor '[a-z.]+' block \d+ bytes"):
        watch(module, manifest=manifest, artifact=folder, model="m", start=False)


def test_the_background_thread_reports_a_flip_within_one_interval_and_stops_promptly(big: tuple[Any, Path]) -> None:
    module, folder = big
    seen: list[tuple[float, Evidence]] = []
    got = threading.Event()

    def on_report(e: Evidence) -> None:
        seen.append((time.monotonic(), e))
        got.set()

    registry = CollectorRegistry()
    agent = watch(module, manifest=build_manifest(folder), artifact=folder, model="fraud", interval_s=0.5,
                  duty_cycle=0.5, reporter=CallbackReporter(on_report), version="7", metrics_registry=registry)
    try:
        assert got.wait(10)
        flip = flip_resident_bit(module, "lin.weight", byte=3 * BLOCK_BYTES, bit=1)
        flipped = time.monotonic()
        in_progress = agent._passes  # the pass running (or last run) when the bit flipped
        deadline = flipped + 10
        while time.monotonic() < deadline and not any(t > flipped and e.status == "fail" for t, e in seen):
            time.sleep(0.02)
        when, evidence = next((t, e) for t, e in seen if t > flipped and e.status == "fail")
    finally:
        t0 = time.monotonic()
        agent.stop()
        stop_s = time.monotonic() - t0
    # within one interval: passes start every interval, so the pass after the one in progress sees the flip
    assert evidence.checks[0].details["pass"] <= in_progress + 1
    assert when - flipped <= 0.5 + 5.0  # the same in seconds, with slack for a loaded machine's scheduler
    assert evidence.version == "7"
    assert evidence.source.startswith("agent:")
    assert evidence.interval_s >= 0.5
    (m,) = evidence.checks[0].details["mismatches"]
    assert (m["tensor"], m["block"]) == ("lin.weight", flip.block)
    assert stop_s < 5.0  # a paused pass ends at once; a slice in progress is milliseconds
    assert not agent.running
    value = registry.get_sample_value
    assert value("goldwatch_agent_covered_bytes", {"model": "fraud", "how": "file"}) == sum(
        t.nbytes for t in agent.coverage.tensors if t.how == "file")
    assert value("goldwatch_agent_bytes_checked_total", {"model": "fraud"}) > 3 * BLOCK_BYTES
    assert 0 < value("goldwatch_agent_duty_cycle", {"model": "fraud"}) <= 1.0
    assert value("goldwatch_agent_busy_seconds_total", {"model": "fraud"}) > 0
    assert value("goldwatch_agent_last_full_pass_timestamp_seconds", {"model": "fraud"}) > time.time() - 60


def test_the_duty_cycle_budget_paces_a_pass(big: tuple[Any, Path]) -> None:
    module, folder = big
    agent = _watch(module, folder, duty_cycle=0.2, slice_bytes=BLOCK_BYTES)
    agent._check(paced=True)
    result = agent.last_full_pass
    assert result is not None
    assert result.complete
    # busy / wall never exceeds the budget (each slice is followed by its pause; a loaded machine only stretches them)
    assert 0 < result.duty_cycle <= 0.2 * 1.05


def test_bad_options_are_input_errors(big: tuple[Any, Path]) -> None:
    module, folder = big
    with pytest.raises(InvalidInputError, match="duty_cycle"):
        _watch(module, folder, duty_cycle=0)
    with pytest.raises(InvalidInputError, match="interval_s"):
        _watch(module, folder, interval_s=-1)


@pytest.mark.parametrize("backend", ["numpy", "torch"])  # torch: the device path's arithmetic, run on the CPU
@pytest.mark.parametrize("cuts", [(1,), (0, 2), (3, 1, 0, 2)])
def test_scanning_blocks_in_any_order_equals_the_whole_fingerprint(cuts: tuple[int, ...], backend: str) -> None:
    t = torch.from_numpy(np.random.default_rng(0).integers(0, 255, size=4 * BLOCK_BYTES - 7, dtype=np.uint8))
    scan = TensorScan(t, backend=backend)  # type: ignore[arg-type]
    for first in cuts:
        scan.scan(first, first + 1)
    for first in sorted(set(range(4)) - set(cuts)):
        scan.scan(first, first + 1)
    assert scan.finish() == fingerprint_tensor(t)
    with pytest.raises(ValueError, match="already scanned"):
        scan.scan(0, 1)


def test_tensors_replaced_by_the_server_are_an_error_not_a_silent_pass(big: tuple[Any, Path]) -> None:
    module, folder = big
    agent = _watch(module, folder)
    module.lin.weight = torch.nn.Parameter(module.lin.weight.detach().clone())  # same values, new memory
    check = agent.check_now()
    assert check.status == "error"
    assert "replaced or reallocated" in check.summary
    assert "lin.weight" in check.summary


def test_the_sharding_hook_supplies_the_expectation_of_the_bytes_a_rank_holds(tmp_path: Path) -> None:
    from goldwatch.integrity import build_manifest
    from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer
    from goldwatch.watchdog.agent.plan import Expectation

    torch.manual_seed(4)
    full = torch.nn.Linear(1024, 600)
    folder = _saved(tmp_path, full)
    manifest = build_manifest(folder)
    rank = torch.nn.Linear(1024, 300)  # rank 1 of 2 holds rows 300..599 of the weight
    with torch.no_grad():
        rank.weight.copy_(full.weight[300:])
        rank.bias.copy_(full.bias[300:])
    data = (folder / "weights.safetensors").read_bytes()

    def shard(r: Any, m: Any) -> Expectation | None:
        entry = next(t for _, t in m.tensors() if t.name == r.name)
        half = entry.nbytes // 2  # the second half of the rows, in the file's bytes
        fp = fingerprint_buffer(data[entry.offset + half : entry.offset + entry.nbytes])
        return Expectation(r, fp, "file", entry.name, "weights.safetensors", entry.offset + half, "rows 300..599")

    agent = watch(rank, manifest=manifest, artifact=folder, model="m", start=False, resolve=shard)
    assert {t.how for t in agent.coverage.tensors} == {"file"}
    assert agent.check_now().status == "pass"
    flip_resident_bit(rank, "weight", byte=BLOCK_BYTES + 3, bit=4)
    (m,) = agent.check_now().details["mismatches"]
    assert (m["tensor"], m["block"], m["file_start"]) == ("weight", 1, next(
        t.offset for _, t in manifest.tensors() if t.name == "weight") + 300 * 1024 * 4 + BLOCK_BYTES)
