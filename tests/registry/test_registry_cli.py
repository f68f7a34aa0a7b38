"""``goldwatch registry``: exit codes 0/1/2, --json, one-line errors, the config section, the real script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from tests.registry.registry_helpers import corrupt, set_schema_version, write_golden_set, write_weights


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no stray ./goldwatch.toml
    monkeypatch.delenv("GOLDWATCH_CONFIG", raising=False)
    runner = CliRunner()
    base = ["registry", "--registry-root", str(tmp_path / "reg"), "--serving-dir", str(tmp_path / "serve")]

    def run(*args: str, base_args: list[str] | None = None):
        return runner.invoke(main, [*(base if base_args is None else base_args), *args], catch_exceptions=False)

    return run


def test_add_promote_list_show_rollback_check(cli, tmp_path: Path) -> None:
    for seed in (1, 2):
        src = write_weights(tmp_path / f"m{seed}", seed)
        res = cli("add", "fraud", str(src), "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["state"] == "candidate"
    assert cli("promote", "fraud", "1", "--reason", "gate ok", "--evidence", '{"run": 1}').exit_code == 0
    res = cli("promote", "fraud", "2", "--reason", "gate ok", "--actor", "alice")
    assert res.exit_code == 0
    assert res.stdout.strip() == "promoted fraud 2 to known-good (serving)"
    assert "warning: no server was told to reload" in res.stderr  # reload is 'none' by default
    res = cli("list", "--json")
    assert [(v["version"], v["state"], v["serving"]) for v in json.loads(res.output)] == [
        ("1", "known-good", False), ("2", "known-good", True)]
    res = cli("check", "fraud", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["target"] == "1"
    res = cli("rollback", "fraud", "--reason", "v2 drifted", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["from_version"], out["to_version"], out["ok"]) == ("2", "1", True)
    assert {"select", "switch", "verify_after"} <= set(out["phases"])
    res = cli("show", "fraud", "--json")
    shown = json.loads(res.output)
    assert shown["serving"]["version"] == "1"
    assert [e["action"] for e in shown["history"]][-2:] == ["quarantine", "serve"]
    res = cli("show", "fraud", "2")
    assert "quarantined" in res.output
    assert "v2 drifted" in res.output
    # nothing left to roll back to: exit 1, and the check says why
    res = cli("rollback", "fraud", "--reason", "again")
    assert res.exit_code == 1
    assert "no verified known-good version" in res.output
    res = cli("check", "fraud")
    assert res.exit_code == 1
    assert "FAIL  registry:fraud:target" in res.output


def test_bad_input_exits_2_with_one_message_and_changes_nothing(cli, tmp_path: Path) -> None:
    src = write_weights(tmp_path / "m1", 1)
    assert cli("add", "fraud", str(src)).exit_code == 0
    cases = [
        (("promote", "nope", "1", "--reason", "x"), "unknown model 'nope' (known: fraud)"),
        (("promote", "fraud", "9", "--reason", "x"), "unknown version '9' of 'fraud' (known: 1)"),
        (("add", "fraud", str(tmp_path / "missing")), "artifact not found"),
        (("promote", "fraud", "1", "--reason", "x", "--evidence", "[1]"), "--evidence: must be a JSON object"),
    ]
    for args, message in cases:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("goldwatch: error: ")
        assert message in lines[0]
    reg = tmp_path / "reg" / "store" / "trees"
    corrupt(next(reg.glob("*/m1/weights.npz")))
    res = cli("promote", "fraud", "1", "--reason", "x")
    assert res.exit_code == 2
    assert "fails verification" in res.stderr
    assert json.loads(cli("list", "--json").output)[0]["state"] == "candidate"
    assert not (tmp_path / "serve").exists()
    set_schema_version(tmp_path / "reg", 99)
    res = cli("list")
    assert res.exit_code == 2
    assert "schema version 99, newer than this goldwatch understands" in res.stderr
    assert "upgrade goldwatch; nothing was changed" in res.stderr
    (tmp_path / "notreg").mkdir()
    (tmp_path / "notreg" / "README").write_text("x")
    res = cli("list", base_args=["registry", "--registry-root", str(tmp_path / "notreg")])
    assert res.exit_code == 2
    assert "is not a goldwatch registry (no registry.db" in res.stderr
    assert sorted(p.name for p in (tmp_path / "notreg").iterdir()) == ["README"]


def test_config_section_drives_serving_and_reload(cli, tmp_path: Path) -> None:
    log = tmp_path / "reloads.log"
    (tmp_path / "goldwatch.toml").write_text(
        "[registry]\n"
        f'root = "{tmp_path / "reg"}"\n'
        f'serving_dir = "{tmp_path / "triton" / "fraud"}"\n'
        'layout = "numbered"\n'
        'reload = "command"\n'
        f'reload_command = ["sh", "-c", "echo $GOLDWATCH_VERSION >> {log}"]\n'
    )
    for seed in (1, 2):
        src = write_weights(tmp_path / f"m{seed}", seed)
        assert cli("add", "fraud", str(src), base_args=["registry"]).exit_code == 0
        assert cli("promote", "fraud", str(seed), "--reason", "ok", base_args=["registry"]).exit_code == 0
    res = cli("rollback", "fraud", "--reason", "bad", base_args=["registry"])
    assert res.exit_code == 0, res.output
    assert log.read_text().split() == ["1", "2", "1"]
    assert sorted(p.name for p in (tmp_path / "triton" / "fraud").iterdir() if p.name.isdigit()) == ["3"]


def test_console_script_subprocess(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("goldwatch")
    src = write_weights(tmp_path / "m1", 1)
    env_args = [str(exe), "registry", "--registry-root", str(tmp_path / "reg")]
    done = subprocess.run([*env_args, "add", "fraud", str(src), "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "1"
    done = subprocess.run([*env_args, "quarantine", "fraud", "1"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 2
    assert "Missing option '--reason'" in done.stderr


def test_mlflow_layout_needs_a_registry_uri(cli, tmp_path: Path) -> None:
    (tmp_path / "goldwatch.toml").write_text('[registry]\nlayout = "mlflow-alias"\n')
    src = write_weights(tmp_path / "m1", 1)
    base = ["registry", "--registry-root", str(tmp_path / "reg")]
    assert cli("add", "fraud", str(src), base_args=base).exit_code == 0
    res = cli("promote", "fraud", "1", "--reason", "x", base_args=base)
    assert res.exit_code == 2
    assert "registry.mlflow_registry_uri: layout 'mlflow-alias' needs mlflow_registry_uri" in res.stderr


def test_registry_config_section_validates() -> None:
    from goldwatch.config import parse_config
    from goldwatch.errors import ConfigError

    cfg = parse_config('[registry]\nlayout = "mlflow-alias"\nmlflow_registry_uri = "sqlite:///m.db"\n')
    assert (cfg.registry.layout, cfg.registry.mlflow_alias) == ("mlflow-alias", "champion")
    with pytest.raises(ConfigError, match=r"registry\.layout"):
        parse_config('[registry]\nlayout = "flat"\n')


def test_prune_uses_the_configured_retention(cli, tmp_path: Path) -> None:
    (tmp_path / "goldwatch.toml").write_text(f'[registry]\nroot = "{tmp_path / "reg"}"\nkeep_known_good = 2\n')
    for seed in (1, 2, 3):
        src = write_weights(tmp_path / f"m{seed}", seed)
        assert cli("add", "fraud", str(src), base_args=["registry"]).exit_code == 0
        assert cli("promote", "fraud", str(seed), "--reason", "ok", base_args=["registry"]).exit_code == 0
    res = cli("prune", "fraud", "--json", base_args=["registry"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["kept"], out["retired"]) == (["3", "2"], ["1"])
    assert out["deleted_bytes"] > 0
    assert cli("prune", "fraud", "--keep", "0", base_args=["registry"]).exit_code == 2


def test_add_with_a_bad_golden_set_exits_2_and_creates_no_registry(cli, tmp_path: Path) -> None:
    src = write_weights(tmp_path / "m1", 1)
    (tmp_path / "not-golden").mkdir()
    for golden, message in ((tmp_path / "missing", "golden set not found"),
                            (tmp_path / "not-golden", "the golden set does not load")):
        res = cli("add", "fraud", str(src), "--golden", str(golden))
        assert res.exit_code == 2, res.output
        assert message in res.stderr
        assert not (tmp_path / "reg").exists()
    res = cli("add", "fraud", str(tmp_path / "missing-model"))
    assert res.exit_code == 2
    assert not (tmp_path / "reg").exists()
    res = cli("add", "fraud", str(src), "--golden", str(write_golden_set(tmp_path / "golden")), "--json")
    assert res.exit_code == 0, res.output
    assert Path(json.loads(res.output)["golden"][0]).is_relative_to(tmp_path / "reg" / "store" / "golden")


def test_rollback_output_says_which_skipped_versions_were_quarantined(cli, tmp_path: Path, monkeypatch) -> None:
    from goldwatch.watchdog.registry import rollback as rollback_module

    for seed in (1, 2, 3, 4):
        assert cli("add", "fraud", str(write_weights(tmp_path / f"m{seed}", seed))).exit_code == 0
        assert cli("promote", "fraud", str(seed), "--reason", "ok").exit_code == 0
    # v3's golden replay cannot run (not proof it is wrong): skipped, not quarantined; v2 is chosen
    monkeypatch.setattr(rollback_module, "replay_golden_sets",
                        lambda mv: (None, "could not run") if mv.version == "3" else (True, "ok"))
    res = cli("rollback", "fraud", "--reason", "v4 bad", "--golden")
    assert res.exit_code == 0, res.output
    assert "skipped 3: could not run (not quarantined)" in res.stdout
    assert "warning: no server was told to reload" in res.stderr
    res = cli("rollback", "fraud", "--reason", "v2 bad", "--replay-golden", "--keep-current", "--json")
    out = json.loads(res.stdout)
    assert (out["from_version"], out["to_version"]) == ("2", "1")
    assert out["skipped"] == [{"version": "3", "reason": "could not run", "quarantined": False}]
    assert out["server_ready"] is None
    assert out["warnings"]
    assert "no server was told to reload" in out["warnings"][0]
