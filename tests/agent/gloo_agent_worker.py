"""The rank side of the agent's two-process torch.distributed test (imported by spawned processes).

Each rank holds the model as a tensor-parallel server would: two DTensor parameters (rows, columns) sharded across
the ranks, a bias and a buffer replicated whole. It watches the module with the in-process agent (which creates its
own gloo group), runs a pass, flips a bit in rank 1's shard, runs another, and writes the evidence it reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def full_state() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    return {
        "embed.weight": torch.randn(1500, 512, generator=g),  # 3 MiB: row-sharded, blocks 0-2
        "proj.weight": torch.randn(256, 300, generator=g).to(torch.bfloat16),  # column-sharded
        "proj.bias": torch.randn(256, generator=g),  # whole on every rank
        "steps": torch.arange(7, dtype=torch.int64),  # a buffer, whole on every rank
    }


def module(mesh: Any) -> Any:
    import torch
    from torch.distributed.tensor import Shard, distribute_tensor

    full = full_state()
    m = torch.nn.Module()
    m.embed = torch.nn.Module()
    m.proj = torch.nn.Module()
    m.embed.register_parameter("weight", torch.nn.Parameter(
        distribute_tensor(full["embed.weight"], mesh, [Shard(0)]), requires_grad=False))
    m.proj.register_parameter("weight", torch.nn.Parameter(
        distribute_tensor(full["proj.weight"], mesh, [Shard(1)]), requires_grad=False))
    m.proj.register_parameter("bias", torch.nn.Parameter(full["proj.bias"].clone(), requires_grad=False))
    m.register_buffer("steps", full["steps"].clone())
    return m


def run(rank: int, world: int, port: int, workdir: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from goldwatch.watchdog.agent import CallbackReporter, watch

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        model = module(mesh)
        seen: list[Any] = []
        agent = watch(model, manifest=Path(workdir) / "manifest.json", artifact=Path(workdir) / "single",
                      model="lm", interval_s=60.0, version="7", start=False, reporter=CallbackReporter(seen.append))
        assert agent.sharded is not None
        results: dict[str, Any] = {
            "coverage": agent.coverage.to_dict(),
            "own_group": agent.sharded.group is not dist.group.WORLD,
        }
        results["clean"] = agent.check_now().status
        if rank == 1:
            local = model.embed.weight.to_local()  # rows 750..1499 of the whole tensor
            with torch.no_grad():
                raw = local.view(-1).view(torch.uint8)
                raw[(400 * 512 + 7) * 4 + 1] ^= 1 << 3  # global row 1150, column 7: byte 2,355,229, block 2
        results["corrupted"] = agent.check_now().status
        ones = torch.ones(1)
        dist.all_reduce(ones)  # the serving (default) group is untouched by the agent's collectives
        results["all_reduce"] = float(ones.item())
        results["bodies"] = [e.to_json() for e in seen]
        agent.stop()
        (Path(workdir) / f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
