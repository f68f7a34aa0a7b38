"""Two ranks under torch.distributed (gloo, on 127.0.0.1): each fingerprints its resident shards -- DTensor rows,
DTensor columns, a manual tensor-parallel slice, a replicated tensor -- and rank 0 merges and verifies against the
single-host manifest. The DCP checkpoint the two ranks save is fingerprinted into the same tensors."""

from __future__ import annotations

import json

import pytest

from goldwatch.integrity import build_manifest

torch = pytest.importorskip("torch", reason="torch is an optional extra: pip install 'goldwatch[torch]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_two_ranks_verify_their_resident_shards_and_their_dcp_checkpoint(tmp_path, free_port):
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from safetensors.torch import save_file

    from tests.integrity import gloo_worker

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    (tmp_path / "single").mkdir()
    save_file(gloo_worker.state(), tmp_path / "single" / "model.safetensors")
    manifest = build_manifest(tmp_path / "single")
    manifest.save(tmp_path / "manifest.json")
    mp.start_processes(gloo_worker.run, args=(2, free_port, str(tmp_path), str(tmp_path / "manifest.json")),
                       nprocs=2, start_method="spawn", join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for result in ranks:  # broadcast: every rank knows the verdict
        assert result["clean"] == {"ok": True, "messages": []}
        assert not result["corrupted"]["ok"]
        (message,) = result["corrupted"]["messages"]
        assert "tensor 'embed.weight' block 2" in message
        assert message.endswith("held by rank 1")
    assert ranks[0]["incomplete"] == {"ok": False, "kinds": ["block", "missing"]}  # still corrupted, bias missing
    assert ranks[1]["incomplete"] == {"report_is_none": True}
    # the checkpoint the two ranks saved: chunks in two files, merged into the single-host fingerprints
    sharded = build_manifest(tmp_path / "dcp")
    assert sorted(f.path for f in sharded.files) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    whole = {t.name: t.fingerprint for _, t in manifest.tensors()}
    merged = {t.name: t.fingerprint for _, t in sharded.tensors()}
    assert merged == {name: whole[name] for name in ("embed.weight", "layer.0.weight", "steps")}
