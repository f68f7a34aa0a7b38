"""The foundation's promises: a light import, the CLI's exit codes, config validation, logging, the public API."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import goldwatch
from goldwatch import errors
from goldwatch.cli import main
from goldwatch.config import GoldwatchConfig, load_config, parse_config, resolve_secret
from goldwatch.logs import configure_logging, get_logger, redact

HEAVY = ("torch", "onnxruntime", "evidently", "mlserver", "psycopg", "dask", "distributed")
GOLDWATCH_BIN = Path(sys.executable).with_name("goldwatch")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=os.path.dirname(goldwatch.__file__),
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_goldwatch_loads_no_heavy_dependency() -> None:
    loaded = _modules_after("import goldwatch")
    assert not loaded & set(HEAVY), f"import goldwatch pulled in {sorted(loaded & set(HEAVY))}"


def test_detectors_and_integrity_load_no_dask_until_a_dask_input_arrives() -> None:
    loaded = _modules_after("import goldwatch.detectors, goldwatch.integrity, goldwatch.cluster")
    assert not loaded & set(HEAVY), f"the subpackages pulled in {sorted(loaded & set(HEAVY))}"


def test_cli_help_of_every_command_loads_no_heavy_dependency() -> None:
    # --help on the root lists every lazy subcommand, which imports each CLI module: all must stay light.
    code = (
        "from goldwatch.cli import main, COMMANDS\n"
        "import contextlib, io\n"
        "for args in [['--help']] + [[name, '--help'] for name in COMMANDS]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(args)\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (args, e.code)\n"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), f"goldwatch --help pulled in {sorted(loaded & set(HEAVY))}"


def test_public_api_is_curated_and_resolves() -> None:
    assert goldwatch.__all__ == sorted(goldwatch.__all__)
    for name in goldwatch.__all__:
        assert hasattr(goldwatch, name), name
    public = {n for n in dir(goldwatch) if not n.startswith("_") and n[0].isupper()}
    # every public class at the top level is listed; submodules are not re-exported by accident
    assert public <= set(goldwatch.__all__)
    # the exception tree: every error derives from the one base class
    for name in errors.__all__:
        obj = getattr(errors, name)
        assert callable(obj)
        if isinstance(obj, type):
            assert issubclass(obj, errors.GoldwatchError)


def test_version_and_help_through_the_console_script() -> None:
    out = subprocess.run([str(GOLDWATCH_BIN), "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert goldwatch.__version__ in out.stdout
    out = subprocess.run([str(GOLDWATCH_BIN), "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "Exit codes" in out.stdout
    assert "config" in out.stdout


def test_unknown_command_is_a_usage_error_exit_2() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2


# --- configuration ---------------------------------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg == GoldwatchConfig()
    assert cfg.alerts.pagerduty.routing_key_env == "GOLDWATCH_PAGERDUTY_ROUTING_KEY"


def test_valid_file_is_typed_and_frozen(tmp_path: Path) -> None:
    path = tmp_path / "goldwatch.toml"
    path.write_text('[detectors]\np_threshold = 0.01\ncorrection = "bh"\n[registry]\nkeep_known_good = 5\n')
    cfg = load_config(path)
    assert cfg.detectors.p_threshold == 0.01
    assert cfg.detectors.correction == "bh"
    assert cfg.registry.keep_known_good == 5
    with pytest.raises(Exception, match="frozen"):
        cfg.detectors.p_threshold = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[detectors]\nwindow = 3\n", "detectors.window: unknown key"),
        ("[detectors]\np_threshold = 'low'\n", "detectors.p_threshold: Input should be a valid number"),
        ("[detectors]\np_threshold = 1.5\n", "detectors.p_threshold: Input should be less than 1"),
        ("[[alerts.webhooks]]\nurl_env = 'SLACK'\n", "alerts.webhooks[0].name: Field required"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[detectors\n", "not valid TOML"),
        ("[alerts.pagerduty]\nrouting_key = 'R0123456789'\n", "secrets must not be written in the config file"),
    ],
)
def test_invalid_config_gives_one_message_with_key_path_and_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "goldwatch.toml"
    path.write_text(text)
    with pytest.raises(errors.ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message
    # and through the CLI: one line on stderr, exit code 2, no traceback
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(errors.ConfigError, match="2 problems") as info:
        parse_config("[gate]\nmin_top1_agreement = 2\nbogus = 1\n", source="x.toml")
    assert "gate.min_top1_agreement" in str(info.value)
    assert "gate.bogus: unknown key" in str(info.value)


def test_missing_config_file_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.toml"), "config", "show"])
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_config_show_prints_effective_config_as_json(tmp_path: Path) -> None:
    path = tmp_path / "goldwatch.toml"
    path.write_text("[golden]\nrepeats = 9\n")
    result = CliRunner().invoke(main, ["--config", str(path), "config", "show"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["golden"]["repeats"] == 9


def test_secrets_come_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("from-file-0123\n")
    monkeypatch.delenv("GW_TEST_KEY", raising=False)
    assert resolve_secret(env="GW_TEST_KEY", file=secret_file, what="routing key") == "from-file-0123"
    monkeypatch.setenv("GW_TEST_KEY", "from-env-4567")
    assert resolve_secret(env="GW_TEST_KEY", file=secret_file, what="routing key") == "from-env-4567"
    assert resolve_secret(env=None, file=None, what="routing key") is None
    with pytest.raises(errors.ConfigError, match="cannot read the routing key file"):
        resolve_secret(env=None, file=tmp_path / "missing", what="routing key")


# --- logging ---------------------------------------------------------------------------------------------------


def test_json_log_lines_with_extra_fields_and_redaction() -> None:
    import io

    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    redact("super-secret-routing-key")
    log = get_logger("goldwatch.test")
    log.info("sending with key %s", "super-secret-routing-key", extra={"model": "m1"})
    log.debug("not shown at info")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "info"
    assert entry["model"] == "m1"
    assert "super-secret-routing-key" not in lines[0]
    assert "[REDACTED]" in entry["msg"]
    configure_logging(level="info", fmt="text")
    logging.getLogger("goldwatch").handlers.clear()


# --- unexpected errors ------------------------------------------------------------------------------------------


def _command_raising(exc: BaseException):  # type: ignore[no-untyped-def]
    import click

    from goldwatch.cli._common import guarded

    @click.command()
    @guarded
    def boom() -> None:
        raise exc

    return boom


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError(13, "Permission denied", "/proc/report.xml"), "/proc/report.xml: cannot access the file"),
        (KeyError("logits"), "unexpected KeyError: 'logits'"),
        (errors.DataError("bad shape", where="inputs.npz"), "inputs.npz: bad shape"),
    ],
)
def test_any_error_is_one_line_and_exit_2_never_a_traceback(exc: BaseException, expected: str) -> None:
    result = CliRunner().invoke(_command_raising(exc), [])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unwritable_output_path_names_the_path_not_a_temp_file(tmp_path: Path) -> None:
    artifact = tmp_path / "w.bin"
    artifact.write_bytes(b"\0" * 64)
    target = tmp_path / "missing-dir" / "m.json"
    result = CliRunner().invoke(main, ["fingerprint", str(artifact), "--out", str(target)])
    assert result.exit_code == 2
    assert f"{target}: cannot access the file" in result.output
    assert not target.parent.exists()
