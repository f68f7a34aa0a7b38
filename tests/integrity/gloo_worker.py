"""The rank side of the two-process torch.distributed test (imported by spawned processes)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path


def state(seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(1500, 512, generator=g),  # 3 MiB: row-sharded across blocks
        "layer.0.weight": torch.randn(256, 300, generator=g).to(torch.bfloat16),  # column-sharded
        "layer.0.bias": torch.randn(300, generator=g).to(torch.float16),  # a manual tensor-parallel slice
        "steps": torch.arange(7, dtype=torch.int64),  # replicated on every rank
    }


def run(rank: int, world: int, port: int, workdir: str, manifest: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from goldwatch.integrity.ranks import TensorShard, verify_sharded

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        full = state()
        mesh = init_device_mesh("cpu", (world,))
        embed = distribute_tensor(full["embed.weight"], mesh, [Shard(0)])
        layer = distribute_tensor(full["layer.0.weight"], mesh, [Shard(1)])
        step = 300 // world
        resident = {
            "embed.weight": embed,
            "layer.0.weight": layer,
            "layer.0.bias": TensorShard(full["layer.0.bias"][rank * step:(rank + 1) * step].clone(), (rank * step,),
                                        (300,)),
            "steps": full["steps"],
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcp.save({"embed.weight": embed, "layer.0.weight": layer, "steps": full["steps"]},
                     checkpoint_id=Path(workdir) / "dcp")
        results = {}
        report = verify_sharded(resident, manifest, broadcast=True)
        results["clean"] = {"ok": report.ok, "messages": [m.message for m in report.mismatches]}
        if rank == 1:
            with torch.no_grad():
                embed.to_local()[400, 7] += 1.0  # global row 1150: block 2, held by rank 1 alone
        report = verify_sharded(resident, manifest, broadcast=True)
        results["corrupted"] = {"ok": report.ok, "messages": [m.message for m in report.mismatches]}
        del resident["layer.0.bias"]  # rank 0 merges without the bias shards: a strict manifest misses it
        report = verify_sharded(resident, manifest, broadcast=False)
        if rank == 0:
            results["incomplete"] = {"ok": report.ok, "kinds": sorted({m.kind for m in report.mismatches})}
        else:
            results["incomplete"] = {"report_is_none": report is None}
        (Path(workdir) / f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
