"""The in-process agent under torch.distributed (two gloo ranks on 127.0.0.1): each rank fingerprints its resident
shards at every pass, rank 0 merges them on the agent's own gloo group and reports one evidence body; a bit flipped
in rank 1's shard is reported with the tensor, the block and the rank that holds it."""

from __future__ import annotations

import json

import pytest

from goldwatch.integrity import build_manifest
from goldwatch.watchdog.sidecar.evidence import EvidenceKinds, parse_report
from tests.agent.agent_support import body_problems

torch = pytest.importorskip("torch", reason="torch is an optional extra: pip install 'goldwatch[torch]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_two_ranks_check_their_shards_and_rank_0_names_the_rank_with_bad_bytes(tmp_path, free_port):
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from safetensors.torch import save_file

    from tests.agent import gloo_agent_worker

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    (tmp_path / "single").mkdir()
    save_file(gloo_agent_worker.full_state(), tmp_path / "single" / "model.safetensors")
    build_manifest(tmp_path / "single").save(tmp_path / "manifest.json")
    mp.start_processes(gloo_agent_worker.run, args=(2, free_port, str(tmp_path)), nprocs=2, start_method="spawn",
                       join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    kinds = EvidenceKinds.builtin()
    for result in ranks:
        assert result["own_group"], "the agent checks on a gloo group of its own"
        assert result["all_reduce"] == 2.0
        coverage = result["coverage"]
        assert coverage["bytes"]["sharded"] > 0
        assert {t["name"]: t["how"] for t in coverage["not_from_file"]} == {"embed.weight": "sharded",
                                                                            "proj.weight": "sharded"}
        assert coverage["uncovered"] == []
        for body in result["bodies"]:  # what the sidecar accepts, as it is
            assert body_problems(body) == []
            parse_report(body, kinds=kinds)
        assert [b["checks"][0]["status"] for b in result["bodies"]] == [result["clean"], result["corrupted"]]
        assert all(b["source"].startswith("agent:") and b["version"] == "7" for b in result["bodies"])
    # rank 0 merged both passes: clean, then the flipped bit in rank 1's shard, located
    clean, corrupted = (b["checks"][0] for b in ranks[0]["bodies"])
    assert clean["status"] == "pass"
    assert clean["details"]["sharded"] == {"merged_on_rank": 0, "ranks": 2, "tensors": 2, "tensors_verified": 2,
                                           "bytes_verified": 1500 * 512 * 4 + 256 * 300 * 2}
    assert "2 sharded tensor(s)" in clean["summary"]
    assert corrupted["status"] == "fail"
    details = corrupted["details"]
    assert (details["tensor"], details["block"], details["ranks"]) == ("embed.weight", 2, [1])
    assert (details["start"], details["stop"]) == (2 << 20, 1500 * 512 * 4)
    (mismatch,) = details["mismatches"]
    assert mismatch["how"] == "sharded"
    assert "held by rank 1" in corrupted["summary"]
    assert corrupted["measured"]["mismatched_blocks"] == 1
    # rank 1 checked its own whole tensors and took part in the merge; the verdict on the shards is rank 0's
    assert [b["checks"][0]["status"] for b in ranks[1]["bodies"]] == ["pass", "pass"]
    assert ranks[1]["bodies"][1]["checks"][0]["details"]["sharded"]["merged_on_rank"] == 0
    assert "tensors_verified" not in ranks[1]["bodies"][1]["checks"][0]["details"]["sharded"]
