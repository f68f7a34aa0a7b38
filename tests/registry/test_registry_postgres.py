"""PostgreSQL-only behaviour of the fleet registry: the database going away mid-operation, schema upgrades by
command, and credentials that never appear in a config file, an error or a log line."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.errors import DatabaseUnavailableError, StateError
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.registry.journal import open_intents
from goldwatch.watchdog.registry.storage import DATABASE_URL_ENV
from goldwatch.watchdog.registry.storage.schema import SCHEMA_VERSION, statements
from tests.registry.registry_helpers import write_weights

pytestmark = pytest.mark.parametrize("database_backend", ["postgresql"], indirect=True)


def _served(tmp_path: Path) -> tuple[Registry, str]:
    """pod-a serving v1 of 'm', with v2 added as a candidate."""
    reg = Registry.open(tmp_path / "reg", host="pod-a",
                        serving={"m": Serving(make_pointer("current-link", tmp_path / "serve"))})
    reg.promote("m", reg.add("m", write_weights(tmp_path / "src" / "1", 1, n=4)).version, reason="v1")
    return reg, reg.add("m", write_weights(tmp_path / "src" / "2", 2, n=4)).version


@pytest.mark.slow
def test_the_database_going_away_before_the_switch(tmp_path: Path, postgres_server, database_backend: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    reg, v2 = _served(tmp_path)
    pointer = reg.serving_for("m").pointer
    stage = pointer.stage

    def stage_then_lose_the_database(*args, **kwargs):
        staged = stage(*args, **kwargs)
        postgres_server.stop("immediate")  # like a crash of the database server, or a failover
        return staged

    pointer.stage = stage_then_lose_the_database
    try:
        with pytest.raises(DatabaseUnavailableError) as err, caplog.at_level(logging.WARNING):
            reg.promote("m", v2, reason="gate passed")
        message = str(err.value)
        assert "registry database" in message
        assert "nothing was half-written" in message
        assert postgres_server.password not in message
        assert "goldwatch:***@" in message
        assert postgres_server.password not in caplog.text
        # while it is down, opening says so in one line, exit 2
        done = CliRunner().invoke(main, ["registry", "--registry-root", str(tmp_path / "reg"), "list"])
        assert done.exit_code == 2
        assert done.output.count("\n") == 1
        assert "cannot connect to the registry database" in done.output
        assert postgres_server.password not in done.output
    finally:
        pointer.stage = stage
        postgres_server.start()
    # The same object reconnects on its next statement and reverts its own interrupted promote.
    assert reg.get("m", v2).state == "candidate"
    assert [a.outcome for a in reg.recovered] == ["reverted"]
    assert open_intents(reg.db) == []
    assert reg.serving_target("m")[0] == "1"
    assert pointer.read().source == reg.get("m", "1").path.resolve()
    assert reg.promote("m", v2, reason="again").serving  # and it works
    reg.close()


@pytest.mark.slow
def test_the_database_going_away_after_the_switch(tmp_path: Path, postgres_server, database_backend: str) -> None:
    reg, v2 = _served(tmp_path)
    pointer = reg.serving_for("m").pointer
    switch = pointer.switch

    def switch_then_lose_the_database(staged):
        switch(staged)
        postgres_server.stop("immediate")

    pointer.switch = switch_then_lose_the_database
    try:
        with pytest.raises(DatabaseUnavailableError):
            reg.promote("m", v2, reason="gate passed")
    finally:
        pointer.switch = switch
        postgres_server.start()
    reg.close()
    # The pointer switched; the database never heard. The next start on this host completes the promote.
    serving = {"m": Serving(make_pointer("current-link", tmp_path / "serve"))}
    with Registry.open(tmp_path / "reg", host="pod-a", serving=serving) as again:
        assert [a.outcome for a in again.recovered] == ["completed"]
        assert again.get("m", v2).state == "known-good"
        assert again.serving_target("m")[0] == v2
        assert again.check("m").checks[-1].status == "pass"  # pointer and registry agree
        # another host never resolves pod-a's intents: it cannot see pod-a's pointer
        assert [e.action for e in again.history("m")][-3:] == ["promote", "serve", "recover-promote"]


def test_an_older_schema_is_refused_until_the_migrate_command(tmp_path: Path, database_backend: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with psycopg.connect(os.environ[DATABASE_URL_ENV], autocommit=True) as conn:  # as goldwatch 0.1 left it
        for statement in statements(1, "postgresql"):
            conn.execute(statement)
        conn.execute("CREATE TABLE goldwatch_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
        conn.execute("INSERT INTO goldwatch_schema VALUES (1, 1)")
        conn.execute("INSERT INTO models VALUES ('m', '2026-01-01T00:00:00+00:00')")
        conn.execute("INSERT INTO serving VALUES ('m', NULL, '/models/fallback', '2026-01-01T00:00:00+00:00')")
    with pytest.raises(StateError, match="older than this goldwatch") as err:
        Registry.open(tmp_path / "reg")
    assert "goldwatch registry migrate" in str(err.value)
    monkeypatch.setenv("GOLDWATCH_HOST", "pod-a")
    runner = CliRunner()
    done = runner.invoke(main, ["registry", "--registry-root", str(tmp_path / "reg"), "migrate"])
    assert done.exit_code == 0, done.output
    assert f"from schema 1 to {SCHEMA_VERSION}" in done.output
    assert "already" in runner.invoke(main, ["registry", "--registry-root", str(tmp_path / "reg"), "migrate"]).output
    with Registry.open(tmp_path / "reg") as reg:
        assert [(s.host, s.target) for s in reg.served_by("m")] == [("pod-a", "/models/fallback")]


def test_credentials_come_from_a_file_or_the_environment_never_the_config(
        tmp_path: Path, postgres_server, database_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    full = os.environ[DATABASE_URL_ENV]
    password = postgres_server.password
    bare = full.replace(f":{quote(password, safe='')}@", "@")
    assert password not in bare
    monkeypatch.delenv(DATABASE_URL_ENV)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.chdir(tmp_path)
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n")
    config = tmp_path / "fleet.toml"
    config.write_text(f'[registry]\nroot = "{tmp_path / "reg"}"\ndatabase_url = "{bare}"\n'
                      f'database_password_file = "{secret}"\n')
    runner = CliRunner()
    src = write_weights(tmp_path / "src", 1, n=4)
    done = runner.invoke(main, ["--config", str(config), "registry", "add", "m", str(src)])
    assert done.exit_code == 0, done.output
    # a wrong password: one line, exit 2, and the wrong password is not printed either
    secret.write_text("not-the-password-4711\n")
    done = runner.invoke(main, ["--config", str(config), "registry", "list"])
    assert done.exit_code == 2
    assert "password authentication failed" in done.output
    assert "not-the-password-4711" not in done.output
    # a password on the command line or in the config file is refused before anything connects
    done = runner.invoke(main, ["registry", "--db", full, "list"])
    assert done.exit_code == 2
    assert "carries a password" in done.output
    assert password not in done.output
    config.write_text(f'[registry]\ndatabase_url = "{full}"\n')
    done = runner.invoke(main, ["--config", str(config), "registry", "list"])
    assert done.exit_code == 2
    assert "secrets never live in the config file" in done.output
    assert password not in done.output
    # the whole URL in the environment (a Kubernetes secret) works
    monkeypatch.setenv(DATABASE_URL_ENV, full)
    done = runner.invoke(main, ["registry", "--registry-root", str(tmp_path / "reg"), "list", "--json"])
    assert done.exit_code == 0, done.output
    assert password not in done.output


def test_a_host_stuck_inside_a_transaction_does_not_hold_the_fleet(tmp_path: Path, database_backend: str) -> None:
    import psycopg

    from goldwatch.errors import ConcurrentChangeError

    reg, v2 = _served(tmp_path)
    reg.db.execute("SET lock_timeout = 300")  # (120 s in service; short here)
    with psycopg.connect(os.environ[DATABASE_URL_ENV], autocommit=True) as stuck:
        stuck.execute("BEGIN")
        stuck.execute("SELECT rev FROM models WHERE name = 'm' FOR UPDATE")  # a host that stalls mid-commit
        with pytest.raises(ConcurrentChangeError, match="collided") as err:
            reg.quarantine("m", v2, reason="bad")
        assert "nothing was changed" in str(err.value)
        stuck.execute("ROLLBACK")
    assert reg.get("m", v2).state == "candidate"
    assert reg.quarantine("m", v2, reason="bad").state == "quarantined"  # once it lets go
    reg.close()
