"""Training assets and their backups (scenario 5): restore-and-verify finds a deleted file, a flipped byte and a
truncated file in a backup, falls back to the newest snapshot that verifies, and holds its age (the RPO) against the
target; the CLI; and the sidecar paging an RPO exceeded through the strict PagerDuty stand-in."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.config import AssetConfig, parse_config
from goldwatch.watchdog.recovery.asset_watch import evaluate
from goldwatch.watchdog.recovery.assets import (
    BACKUP_FILE,
    check_asset,
    flip_byte,
    list_backups,
    register,
    restore_backup,
    take_backup,
)
from tests.sidecar.support import toml

T0 = 1_800_000_000.0


def _dataset(root: Path) -> Path:
    data = root / "train"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part in range(3):
        np.save(data / f"part-{part}.npy", rng.standard_normal((200, 8)).astype(np.float32), allow_pickle=False)
    (data / "schema.json").write_text(json.dumps({"features": 8}))
    return data


def _asset(root: Path, **kw: object) -> AssetConfig:
    values: dict[str, object] = {"name": "train", "path": _dataset(root), "backups": root / "backups",
                                 "rpo_seconds": 3600.0}
    values.update(kw)
    return AssetConfig.model_validate(values)


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    flip_byte(path, path.stat().st_size // 2)


@pytest.mark.parametrize(("fault", "expected"), [
    (_delete, "missing"),
    (_flip, "differs"),
    (_truncate, "3264 bytes, expected 6528"),
])
def test_a_damaged_newest_backup_fails_and_the_rpo_is_the_age_of_the_one_before(
        tmp_path: Path, fault: Callable[[Path], None], expected: str) -> None:
    asset = _asset(tmp_path)
    older = take_backup(asset, now=T0)
    newest = take_backup(asset, now=T0 + 600)
    fault(newest.data / "train" / "part-1.npy")
    status = check_asset(asset, scratch=tmp_path / "scratch", now=T0 + 900)
    first, second = status.verifications
    assert (first.snapshot, first.ok) == (newest.snapshot, False)
    assert any("part-1.npy" in p and expected in p.lower() for p in first.problems), first.problems
    assert (second.snapshot, second.ok) == (older.snapshot, True)
    assert status.restore_point is not None
    assert status.restore_point.snapshot == older.snapshot
    assert status.rpo_s == 900.0  # exactly: the checked time minus when the older backup's data was read
    assert status.rpo_met
    decisions = evaluate(status, now=T0 + 900, open_classes=())
    assert [(d.action, d.check_class) for d in decisions] == [("page", "backup")]
    assert newest.snapshot in decisions[0].summary
    assert older.snapshot in decisions[0].summary  # the page names the restore point to use
    assert not list((tmp_path / "scratch").iterdir()), "the restored copies are removed"


def test_a_backup_that_restores_but_is_older_than_the_rpo_pages(tmp_path: Path) -> None:
    asset = _asset(tmp_path, rpo_seconds=3600.0)
    old = take_backup(asset, now=T0)
    status = check_asset(asset, scratch=tmp_path / "scratch", now=T0 + 7200)
    assert [v.ok for v in status.verifications] == [True]
    assert status.restore_point is not None
    assert status.restore_point.snapshot == old.snapshot
    assert status.rpo_s == 7200.0
    assert not status.rpo_met
    rpo = [d for d in evaluate(status, now=T0 + 7200, open_classes=()) if d.check_class == "rpo"]
    assert [(d.action, d.severity) for d in rpo] == [("page", "error")]
    assert "EXCEEDED" in rpo[0].summary
    # a fresh backup brings the RPO back under the target: the incident resolves
    take_backup(asset, now=T0 + 7100)
    again = check_asset(asset, scratch=tmp_path / "scratch", now=T0 + 7200)
    assert again.rpo_s == 100.0
    assert [(d.action, d.check_class) for d in evaluate(again, now=T0 + 7200, open_classes=("rpo",))] == [
        ("resolve", "rpo")]


def test_no_backup_that_verifies_is_critical_and_broken_metadata_is_a_failed_backup(tmp_path: Path) -> None:
    asset = _asset(tmp_path)
    only = take_backup(asset, now=T0)
    (only.path / BACKUP_FILE).write_text("{not json")
    status = check_asset(asset, scratch=tmp_path / "scratch", now=T0 + 10)
    assert status.restore_point is None
    assert status.rpo_s is None
    assert [v.ok for v in status.verifications] == [False]
    assert "unreadable backup metadata" in status.verifications[0].problems[0]
    rpo = next(d for d in evaluate(status, now=T0 + 10, open_classes=()) if d.check_class == "rpo")
    assert rpo.severity == "critical"
    assert "no backup" in rpo.summary


def test_the_live_asset_is_checked_against_its_manifest(tmp_path: Path) -> None:
    asset = _asset(tmp_path, manifest=tmp_path / "train.manifest.json")
    register(asset)
    take_backup(asset, now=T0)
    assert check_asset(asset, scratch=tmp_path / "s", now=T0).live.status == "pass"  # type: ignore[union-attr]
    (Path(asset.path) / "part-0.npy").unlink()
    status = check_asset(asset, scratch=tmp_path / "s", now=T0 + 1)
    assert status.live is not None
    assert status.live.status == "fail"
    assert "part-0.npy" in status.live.summary
    assert status.rpo_met, "the backup is still good: the page says which restore point to use"
    page = next(d for d in evaluate(status, now=T0 + 1, open_classes=()) if d.check_class == "asset")
    assert "newest verified restore point" in page.summary


def test_a_checkpoint_backup_is_located_to_tensor_and_block(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_file({"w": torch.arange(600_000, dtype=torch.float32)}, str(ckpt / "model.safetensors"))
    asset = AssetConfig(name="ckpt", kind="checkpoint", path=ckpt, backups=tmp_path / "b", rpo_seconds=60)
    snap = take_backup(asset, now=T0)
    flip_byte(snap.data / "ckpt" / "model.safetensors", 2_000_000)
    status = check_asset(asset, scratch=tmp_path / "s", now=T0 + 1)
    assert status.restore_point is None
    assert any("'w' block 1" in p for p in status.verifications[0].problems), status.verifications[0].problems


def test_a_restore_command_restores_instead_of_the_copy(tmp_path: Path) -> None:
    asset = _asset(tmp_path, restore_command=["cp", "-r", "{snapshot}/data/train", "{scratch}/train"])
    take_backup(asset, now=T0)
    status = check_asset(asset, scratch=tmp_path / "s", now=T0 + 5)
    assert status.rpo_s == 5.0
    broken = _asset(tmp_path / "other", restore_command=["false"])
    take_backup(broken, now=T0)
    failed = check_asset(broken, scratch=tmp_path / "s2", now=T0)
    assert "restore command exited with status 1" in failed.verifications[0].problems[0]


def test_restore_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    asset = _asset(tmp_path)
    backup = take_backup(asset, now=T0)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    from goldwatch.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not empty"):
        restore_backup(asset, backup, tmp_path / "dest")
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"


def _cli_config(tmp_path: Path) -> Path:
    _dataset(tmp_path)
    path = tmp_path / "goldwatch.toml"
    path.write_text(toml({
        "registry": {"root": tmp_path / "registry"},
        "recovery": {"scratch": tmp_path / "scratch", "assets": [{
            "name": "train", "path": tmp_path / "train", "manifest": tmp_path / "train.manifest.json",
            "backups": tmp_path / "backups", "rpo_seconds": 600}]},
    }))
    return path


def test_the_asset_commands(tmp_path: Path) -> None:
    config = _cli_config(tmp_path)
    runner = CliRunner()

    def gw(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--config", str(config), "asset", *args])
        return result.exit_code, result.output

    assert gw("register", "train")[0] == 0
    code, out = gw("backup", "train")
    assert code == 0
    assert "snapshot" in out
    assert gw("backup", "train")[0] == 0
    code, out = gw("verify", "train")
    assert code == 0, out
    assert "PASS  rpo:train" in out
    backups, _ = list_backups(parse_config(config.read_text(), source=str(config)).recovery.assets[0])
    _flip(backups[0].data / "train" / "part-2.npy")
    code, out = gw("verify", "--json")
    assert code == 1
    data = json.loads(out)
    assert data[0]["rpo_s"] is not None  # the older snapshot still verifies
    assert [c["status"] for c in data[0]["checks"] if c["name"].startswith("backup:")] == ["fail", "pass"]
    code, out = gw("restore", "train", "--out", str(tmp_path / "restored"))
    assert code == 0, out
    assert backups[1].snapshot in out
    assert (tmp_path / "restored" / "train" / "part-2.npy").is_file()
    code, out = gw("restore", "train", "--out", str(tmp_path / "bad"), "--snapshot", backups[0].snapshot, "--json")
    assert code == 1
    bad = json.loads(out)
    assert (bad["snapshot"], bad["ok"]) == (backups[0].snapshot, False)
    assert any("part-2.npy" in p for p in bad["problems"])
    code, out = gw("list", "train")
    assert code == 0
    assert backups[0].snapshot in out
    assert gw("verify", "nope")[0] == 2
    os.chmod(tmp_path / "backups", 0o755)


@pytest.mark.integration
def test_the_sidecar_pages_an_rpo_exceeded_and_a_corrupted_backup_and_resolves(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from goldwatch.runtimes.mlserver_testing import free_ports
    from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for
    from goldwatch.watchdog.sidecar.process import start_sidecar
    from tests.sidecar.support import ROUTING_KEY, TOKEN

    _dataset(tmp_path)
    port = free_ports(1)[0]
    config = tmp_path / "goldwatch.toml"
    config.write_text(toml({
        "registry": {"root": tmp_path / "registry"},
        "alerts": {"outbox_path": tmp_path / "alerts.sqlite", "retry_base_s": 0.05, "retry_max_delay_s": 0.2,
                   "runbook_url": "https://runbooks.example/goldwatch"},
        "serve": {"host": "127.0.0.1", "port": port, "journal": tmp_path / "sidecar.sqlite"},
        "recovery": {"scratch": tmp_path / "scratch", "assets": [{
            "name": "train", "path": tmp_path / "train", "backups": tmp_path / "backups", "rpo_seconds": 600,
            "verify_interval_s": 0.3}]},
    }))
    asset = parse_config(config.read_text()).recovery.assets[0]
    old = take_backup(asset, now=time.time() - 3600)  # restores fine, but an hour old: past the 600 s RPO
    with PagerDutyStub() as pd:
        env = {"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "GOLDWATCH_PAGERDUTY_EVENTS_URL": pd.url,
               "GOLDWATCH_SERVE_TOKEN": TOKEN}
        with start_sidecar(config, url=f"http://127.0.0.1:{port}", env=env, token=TOKEN) as sidecar:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not incidents_for(pd, "goldwatch/train/rpo"):
                time.sleep(0.1)
            (rpo,) = incidents_for(pd, "goldwatch/train/rpo")
            payload = rpo.events[0]["payload"]
            assert "EXCEEDED" in payload["summary"]
            assert old.snapshot in payload["summary"]
            assert rpo.events[0]["links"][0]["href"] == \
                "https://runbooks.example/goldwatch#train-training-data-lost"
            view = sidecar.get("/v1/assets")["assets"][0]
            assert view["restore_point"] == old.snapshot
            assert 3590 < view["rpo_s"] < 3700
            metrics = httpx_text(sidecar.url + "/metrics")
            assert 'goldwatch_rpo_target_seconds{asset="train"} 600.0' in metrics
            assert 'goldwatch_rpo_seconds{asset="train"} 36' in metrics  # about 3600 s
            # a fresh backup: the RPO is met again and the incident resolves; then the fresh one rots
            fresh = take_backup(asset)
            while time.monotonic() < deadline and rpo.state != "resolved":
                time.sleep(0.1)
            assert rpo.state == "resolved"
            _flip(fresh.data / "train" / "part-0.npy")
            while time.monotonic() < deadline + 10 and not incidents_for(pd, "goldwatch/train/backup"):
                time.sleep(0.1)
            (bad,) = incidents_for(pd, "goldwatch/train/backup")
            assert fresh.snapshot in bad.events[0]["payload"]["summary"]
            assert sidecar.get("/v1/assets")["assets"][0]["restore_point"] == old.snapshot
            assert incidents_for(pd, "goldwatch/train/rpo")[-1].state == "triggered", "back to the old one: RPO"
        assert pd.violations == []


def httpx_text(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=10, trust_env=False).text


def test_runbooks_from_the_config_say_what_this_configuration_does(tmp_path: Path) -> None:
    """`goldwatch runbook`: one runbook per scenario and subject, each under the anchor pages link to; a model
    without a degradation path is told it is paged about, not degraded."""
    config = _cli_config(tmp_path)
    text = config.read_text() + toml({"serve": {"watch": [
        {"name": "fraud", "url": "http://127.0.0.1:9/v2/models/fraud", "serving_dir": str(tmp_path / "serving"),
         "escalation": "fraud-ml on-call",
         "fallback": {"url": "http://127.0.0.1:9/v2/models/fraud-small", "golden": [str(tmp_path / "g")]},
         "route": {"kind": "command", "command": ["/usr/local/bin/set-route"]}},
        {"name": "bare", "url": "http://127.0.0.1:9/v2/models/bare", "serving_dir": str(tmp_path / "serving2")}]}})
    config.write_text(text)
    result = CliRunner().invoke(main, ["--config", str(config), "runbook", "--out", str(tmp_path / "rb"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    index = Path(data["index"]).read_text()
    got = {(r["subject"], r["scenario"]) for r in data["runbooks"]}
    assert {("fraud", "server-unreachable"), ("bare", "gpu-lost"), ("train", "training-data-lost")} <= got
    for r in data["runbooks"]:
        assert f'<a id="{r["anchor"]}"></a>' in index
        assert Path(r["path"]).is_file()
    fraud = (tmp_path / "rb" / "fraud" / "1-server-unreachable.md").read_text()
    bare = (tmp_path / "rb" / "bare" / "1-server-unreachable.md").read_text()
    assert "/usr/local/bin/set-route" in fraud
    assert "fraud-ml on-call" in fraud
    assert "No degradation path is configured" in bare
    assert "No degradation path is configured" not in fraud


def test_the_doctor_says_whether_each_degradation_path_asset_and_drill_target_is_usable(tmp_path: Path) -> None:
    """`goldwatch doctor`'s recovery section: nothing is called, restored or changed; broken setups fail with what to
    do, a model without a degradation path is a skip, an asset without a backup (or with one past its RPO) fails."""
    from goldwatch.doctor import diagnose

    config = _cli_config(tmp_path)
    golden = tmp_path / "golden-small"
    golden.mkdir()
    config.write_text(config.read_text() + toml({
        "serve": {"watch": [
            {"name": "fraud", "url": "http://127.0.0.1:9/v2/models/fraud", "serving_dir": str(tmp_path / "s"),
             "fallback": {"url": "http://127.0.0.1:9/v2/models/fraud-small", "golden": [str(golden)]},
             "route": {"kind": "command", "command": [str(tmp_path / "set-route")]}},
            {"name": "bare", "url": "http://127.0.0.1:9/v2/models/bare", "serving_dir": str(tmp_path / "s2")}]},
        "drill": {"stack": "staging", "drill_target": True}}))

    def found() -> dict[str, tuple[str, str]]:
        return {c.name: (c.status, c.summary) for c in diagnose(str(config), only=["recovery"]).checks}

    checks = found()
    assert checks["recovery:bare"][0] == "skip"
    status, summary = checks["recovery:fraud"]
    assert status == "fail"
    assert "golden set(s)" in summary
    assert "never be proven" in summary
    assert "set-route is not an executable" in summary
    assert checks["asset:train"][0] == "fail"
    assert "goldwatch asset register train" in checks["asset:train"][1]
    asset = parse_config(config.read_text(), source=str(config)).recovery.assets[0]
    register(asset)
    assert found()["asset:train"] == ("fail", "no backup of train: the training RPO is unbounded (`goldwatch asset "
                                              "backup train`)")
    assert checks["drill"][0] == "pass"
    assert "1 (no stop_command/start_command)" in checks["drill"][1]
    assert "4 (no cpu_variant)" in checks["drill"][1]
    assert checks["recovery:scratch"][0] == "pass"
    # repaired: the golden set exists, the hook is executable, a backup is taken (then made older than the RPO)
    (golden / "golden.json").write_text("{}")
    hook = tmp_path / "set-route"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    take_backup(asset)
    checks = found()
    assert checks["recovery:fraud"][0] == "pass", checks["recovery:fraud"]
    assert checks["asset:train"][0] == "pass", checks["asset:train"]
    take_backup(asset, now=time.time() - 3600)  # the only one left is 1 h old; the RPO is 600 s
    (newest,) = [b for b in list_backups(asset)[0] if b.taken_at > time.time() - 600]
    shutil.rmtree(newest.path)
    status, summary = found()["asset:train"]
    assert status == "fail"
    assert "past the RPO of 600 s" in summary
    assert not (tmp_path / "scratch").exists(), "the doctor restores nothing"
