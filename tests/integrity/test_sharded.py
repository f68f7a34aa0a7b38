"""Sharded weights: partial fingerprints of byte ranges and tensor slices, merged with a proof of coverage, equal
the whole; Hugging Face shards + index and DCP directories give the single-host manifest's fingerprints."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.errors import ArtifactError
from goldwatch.integrity import ArtifactManifest, build_manifest, verify_artifact, verify_tensors
from goldwatch.integrity.fingerprint_numpy import fingerprint_array
from goldwatch.integrity.partial import (
    PartialFingerprint,
    merge_partials,
    partial_from_bytes,
    partial_from_slice,
    slice_byte_runs,
)
from goldwatch.integrity.ranks import ByteShard, TensorShard, shard_partials, verify_partials

torch = pytest.importorskip("torch", reason="torch is an optional extra: pip install 'goldwatch[torch]'")

DTYPES = [np.float32, np.float16, np.int8, np.int64, np.uint8]


def _tiles(shape: tuple[int, ...], dims: list[int], cuts: list[list[int]]) -> list[tuple[tuple[int, ...], ...]]:
    """Hyper-rectangles (offsets, sizes) tiling ``shape``, cut along ``dims`` at the given points."""
    bounds = []
    for d, n in enumerate(shape):
        points = sorted({0, n, *(c % (n + 1) for c in (cuts[dims.index(d)] if d in dims else []))})
        bounds.append([(a, b - a) for a, b in itertools.pairwise(points) if b > a] or [(0, n)])
    tiles = [((), ())]
    for per_dim in bounds:
        tiles = [((*o, a), (*s, n)) for o, s in tiles for a, n in per_dim]
    return tiles


shapes = st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple)


@settings(max_examples=60)
@given(shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       dims=st.lists(st.integers(0, 2), max_size=3, unique=True),
       cuts=st.lists(st.lists(st.integers(0, 100), max_size=3), min_size=3, max_size=3))
def test_slices_in_any_tiling_merge_to_the_whole(shape, dtype, seed, dims, cuts):
    rng = np.random.default_rng(seed)
    whole = (rng.integers(0, 256, size=math.prod(shape) * np.dtype(dtype).itemsize, dtype=np.uint8)
             .view(dtype).reshape(shape))
    dims = [d for d in dims if d < len(shape)]
    parts = []
    for i, (offsets, sizes) in enumerate(_tiles(shape, dims, cuts)):
        block = whole[tuple(slice(o, o + n) for o, n in zip(offsets, sizes))]
        local = torch.from_numpy(np.ascontiguousarray(block)) if i % 2 else block  # numpy and torch, mixed
        parts.append(partial_from_slice("w", local, offsets=offsets, global_shape=shape, origin=f"tile {i}"))
    merged = merge_partials(parts[::-1])  # any order
    assert merged.fingerprints["w"] == fingerprint_array(whole)


@settings(max_examples=60)
@given(n=st.integers(0, 3_000_000), cuts=st.lists(st.integers(0, 3_000_000), max_size=6), seed=st.integers(0, 99))
def test_odd_byte_ranges_merge_to_the_whole(n, cuts, seed):
    data = np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8)
    points = sorted({0, n, *(c % (n + 1) for c in cuts)})
    parts = [partial_from_bytes("t", data[a:b], offset=a, nbytes=n, dtype="uint8", shape=(n,))
             for a, b in itertools.pairwise(points) if b > a]
    assert merge_partials(parts).fingerprints.get("t", fingerprint_array(data)) == fingerprint_array(data)


def test_column_shards_of_a_large_weight_through_torch_and_numpy():
    # a 3 MiB weight split column-wise into 3 tensor-parallel slices: thousands of runs, several blocks each
    w = torch.randn(1024, 768, generator=torch.Generator().manual_seed(0))
    parts = [partial_from_slice("w", w[:, a:b].contiguous(), offsets=(0, a), global_shape=(1024, 768),
                                origin=f"rank {i}") for i, (a, b) in enumerate([(0, 256), (256, 511), (511, 768)])]
    assert merge_partials(parts).fingerprints["w"] == fingerprint_array(w.numpy())
    bf16 = w.to(torch.bfloat16)
    halves = [partial_from_slice("b", bf16[a:b], offsets=(a, 0), global_shape=(1024, 768)) for a, b in
              ((0, 333), (333, 1024))]
    from goldwatch.integrity import fingerprint_tensor

    assert merge_partials(halves).fingerprints["b"] == fingerprint_tensor(bf16)


def test_vectorized_torch_path_equals_numpy_path():
    from goldwatch.integrity import partial as P
    from goldwatch.integrity.fingerprint import BlockSums

    w = np.random.default_rng(1).standard_normal((700, 900)).astype(np.float32)
    starts, run = slice_byte_runs((0, 100), (700, 300), (700, 900), 4)
    a, b = BlockSums(w.nbytes), BlockSums(w.nbytes)
    P._add_runs_torch(a, torch.from_numpy(np.ascontiguousarray(w[:, 100:400])), starts, run)
    P._add_runs_numpy(b, np.ascontiguousarray(w[:, 100:400]).reshape(-1).view(np.uint8), starts, run)
    assert np.array_equal(a.sums, b.sums)


@pytest.mark.cuda
def test_cuda_slices_merge_to_the_cpu_fingerprint():
    w = torch.randn(2048, 1536, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    parts = [partial_from_slice("w", w[:, a:b].contiguous().cuda(), offsets=(0, a), global_shape=tuple(w.shape))
             for a, b in ((0, 700), (700, 1536))]
    parts.append(partial_from_bytes("v", w.cuda().reshape(-1)[:1001], offset=0, nbytes=2002 * 2, dtype="bfloat16",
                                    shape=(2002,)))
    parts.append(partial_from_bytes("v", w.reshape(-1)[1001:2002], offset=2002, nbytes=2002 * 2,
                                    dtype="bfloat16", shape=(2002,)))
    merged = merge_partials(parts)
    from goldwatch.integrity import fingerprint_tensor

    assert merged.fingerprints["w"] == fingerprint_tensor(w)
    assert merged.fingerprints["v"] == fingerprint_tensor(w.reshape(-1)[:2002])


def test_gaps_and_overlaps_name_the_tensor_and_range():
    w = np.arange(64, dtype=np.float32).reshape(8, 8)
    top = partial_from_slice("layer.w", w[:4], offsets=(0, 0), global_shape=(8, 8), origin="rank 0")
    bottom = partial_from_slice("layer.w", w[5:], offsets=(5, 0), global_shape=(8, 8), origin="rank 1")
    with pytest.raises(ArtifactError, match=r"tensor 'layer.w': 1 byte range\(s\) covered by no partial, first "
                                            r"\[128, 160\) of 256 bytes"):
        merge_partials([top, bottom])
    again = partial_from_slice("layer.w", w[3:], offsets=(3, 0), global_shape=(8, 8), origin="rank 2")
    with pytest.raises(ArtifactError, match=r"tensor 'layer.w': bytes \[96, 128\) are covered twice \(rank 0 and "
                                            r"rank 2\)"):
        merge_partials([top, again])
    other = partial_from_slice("layer.w", w[4:].astype(np.float64), offsets=(4, 0), global_shape=(8, 8),
                               origin="rank 3")
    with pytest.raises(ArtifactError, match="rank 3 says 512 bytes float64"):
        merge_partials([top, other])


def test_replicas_are_compared_not_added():
    w = np.random.default_rng(0).standard_normal((300, 1000)).astype(np.float32)
    primary = partial_from_slice("w", w, offsets=(0, 0), global_shape=w.shape, origin="rank 0")
    good = partial_from_slice("w", w, offsets=(0, 0), global_shape=w.shape, origin="rank 1", replica=True)
    bad_w = w.copy()
    bad_w.reshape(-1).view(np.uint32)[280_000] ^= 1 << 7  # one bit, in block 1
    bad = partial_from_slice("w", bad_w, offsets=(0, 0), global_shape=w.shape, origin="rank 2", replica=True)
    merged = merge_partials([primary, good, bad])
    assert merged.fingerprints["w"] == fingerprint_array(w)
    assert merged.replica_mismatches == [("w", "rank 2", "rank 0", [1])]


def test_partials_travel_as_json():
    w = np.arange(1000, dtype=np.int16)
    p = partial_from_bytes("x", w.view(np.uint8)[3:1999], offset=3, nbytes=2000, dtype="int16", shape=(1000,),
                           origin="task 7")
    back = PartialFingerprint.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back.tensor == "x"
    assert np.array_equal(back.sums, p.sums)
    assert np.array_equal(back.starts, p.starts)
    with pytest.raises(ArtifactError, match="malformed partial fingerprint"):
        PartialFingerprint.from_dict({"tensor": "x"})


def test_verify_partials_against_a_single_host_manifest(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    state = {"emb": rng.standard_normal((500, 640)).astype(np.float32), "bias": rng.standard_normal(640).astype(
        np.float32)}
    save_file(state, tmp_path / "model.safetensors")
    manifest = build_manifest(tmp_path / "model.safetensors")
    ranks = [
        {"emb": TensorShard(state["emb"][:, :320].copy(), (0, 0), (500, 640)), "bias": state["bias"]},
        {"emb": TensorShard(state["emb"][:, 320:].copy(), (0, 320), (500, 640)), "bias": state["bias"]},
    ]
    partials = [p for r, s in enumerate(ranks) for p in shard_partials(s, rank=r)]
    assert verify_partials(partials, manifest).ok
    flat = state["emb"].reshape(-1).view(np.uint8)
    by_bytes = [shard_partials({"emb": ByteShard(flat[a:b].copy(), a, (500, 640), "float32"),
                                "bias": state["bias"]}, rank=r) for r, (a, b) in enumerate([(0, 777_777),
                                                                                            (777_777, flat.size)])]
    assert verify_partials([p for ps in by_bytes for p in ps], manifest).ok
    corrupted = ranks[1]["emb"].local.copy()
    corrupted[400, 100] += 1.0
    ranks[1]["emb"] = TensorShard(corrupted, (0, 320), (500, 640))
    partials = [p for r, s in enumerate(ranks) for p in shard_partials(s, rank=r)]
    report = verify_partials(partials, manifest)
    assert not report.ok
    (m,) = report.mismatches
    assert m.tensor == "emb"
    assert m.kind == "block"
    assert "held by rank 0, rank 1" in m.message


# ------------------------------------------------------------------------------------- sharded directories


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(1500, 512, generator=g),  # 3 MiB: several blocks
        "layer.0.weight": torch.randn(256, 300, generator=g).to(torch.bfloat16),
        "layer.0.bias": torch.randn(300, generator=g).to(torch.float16),
        "steps": torch.arange(7, dtype=torch.int64),
    }


@pytest.fixture
def single_host(tmp_path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    from safetensors.torch import save_file

    state = _state()
    (tmp_path / "single").mkdir()
    save_file(state, tmp_path / "single" / "model.safetensors")
    manifest = build_manifest(tmp_path / "single")
    return state, {t.name: t.fingerprint for _, t in manifest.tensors()}


def _hf_shards(root: Path, state: dict[str, torch.Tensor], split: dict[str, list[str]], **index_extra) -> None:
    from safetensors.torch import save_file

    root.mkdir()
    weight_map = {}
    for shard, names in split.items():
        save_file({n: state[n] for n in names}, root / shard)
        weight_map.update(dict.fromkeys(names, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (root / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": index_extra.pop("total_size", total)},
         "weight_map": index_extra.pop("weight_map", weight_map)}))


def test_hf_shards_with_index_equal_the_single_file(tmp_path, single_host):
    state, whole = single_host
    split = {"model-00001-of-00002.safetensors": ["embed.weight"],
             "model-00002-of-00002.safetensors": ["layer.0.weight", "layer.0.bias", "steps"]}
    _hf_shards(tmp_path / "hf", state, split)
    manifest = build_manifest(tmp_path / "hf")
    assert {t.name: t.fingerprint for _, t in manifest.tensors()} == whole
    assert manifest.sharding is not None
    assert manifest.sharding["layout"] == "safetensors-index"
    assert "do not merge" in manifest.sharding["digests"]
    assert verify_tensors(state, manifest).ok


@pytest.mark.parametrize(("change", "message"), [
    ({"weight_map": {"embed.weight": "model-00003-of-00002.safetensors"}}, "shard 'model-00003-of-00002.safetensors'"
                                                                         " named by the index is missing"),
    ({"weight_map": {"embed.weight": "model-00002-of-00002.safetensors"}}, "lacks 1 tensor"),
    ({"total_size": 12}, "total_size is 12"),
])
def test_inconsistent_index_is_refused(tmp_path, change, message):
    state = _state()
    split = {"model-00001-of-00002.safetensors": ["embed.weight"],
             "model-00002-of-00002.safetensors": ["layer.0.weight", "layer.0.bias", "steps"]}
    _hf_shards(tmp_path / "hf", state, split, **change)
    with pytest.raises(ArtifactError, match=message):
        build_manifest(tmp_path / "hf")


@pytest.mark.parametrize("serialization", ["torch_save", "safetensors"])
def test_dcp_directory_equals_the_single_host_manifest(tmp_path, single_host, serialization):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.filesystem import FileSystemWriter, SerializationFormat

    state, whole = single_host
    writer = FileSystemWriter(tmp_path / "dcp", serialization_format=SerializationFormat(serialization))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(dict(state), storage_writer=writer, no_dist=True)
    manifest = build_manifest(tmp_path / "dcp")
    assert {t.name: t.fingerprint for _, t in manifest.tensors()} == whole
    assert manifest.sharding is not None
    assert manifest.sharding["layout"] == "torch-dcp"
    assert verify_artifact(tmp_path / "dcp", manifest).ok
    assert verify_tensors(state, manifest).ok
    data = tmp_path / "dcp" / "__0_0.distcp"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    data.write_bytes(bytes(raw))
    report = verify_artifact(tmp_path / "dcp", manifest)
    assert not report.ok
    assert {m.kind for m in report.mismatches} >= {"digest"}


def test_hostile_dcp_metadata_is_refused(tmp_path):
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3)}, checkpoint_id=tmp_path / "dcp", no_dist=True)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "dcp" / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ArtifactError, match=r"builtins.print is not a DCP metadata class"):
        build_manifest(tmp_path / "dcp")


@pytest.mark.integration
def test_directory_fingerprinted_per_file_on_a_dask_cluster(tmp_path, single_host):
    distributed = pytest.importorskip("distributed", reason="pip install 'goldwatch[dask]'")
    state, whole = single_host
    split = {f"model-0000{i}-of-00004.safetensors": [name] for i, name in enumerate(state, 1)}
    _hf_shards(tmp_path / "hf", state, split)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with client.get_executor() as executor:
            on_cluster = build_manifest(tmp_path / "hf", executor=executor)
        # the command line, as a user runs it: its own process, its own client of the same scheduler
        goldwatch_bin = Path(sys.executable).with_name("goldwatch")
        out = subprocess.run([str(goldwatch_bin), "fingerprint", str(tmp_path / "hf"), "-o", str(tmp_path / "m.json"),
                              "--dask", cluster.scheduler_address],
                             capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "do not merge across shards" in out.stdout
    assert ArtifactManifest.load(tmp_path / "m.json").files == on_cluster.files
    local = build_manifest(tmp_path / "hf")
    assert on_cluster.files == local.files
    assert {t.name: t.fingerprint for _, t in local.tensors()} == whole
