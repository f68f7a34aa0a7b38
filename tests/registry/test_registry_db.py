"""The database: WAL, schema version, refusal of newer schemas and of files that are not databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from goldwatch.errors import RegistryError, StateError
from goldwatch.watchdog.registry import Registry
from goldwatch.watchdog.registry.db import SCHEMA_VERSION, connect, schema_version


def test_new_database_is_wal_at_current_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "r.db")
    assert schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"models", "versions", "events", "serving", "intents", "golden_links"} <= tables
    conn.close()


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path, artifact) -> None:
    with Registry.open(tmp_path / "reg") as reg:
        reg.add("m", artifact(1))
    db = tmp_path / "reg" / "registry.db"
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = db.read_bytes()
    with pytest.raises(StateError, match=rf"schema version {SCHEMA_VERSION + 1}, newer") as err:
        Registry.open(tmp_path / "reg")
    assert err.value.exit_code == 2
    assert "upgrade goldwatch" in str(err.value)
    assert db.read_bytes() == before


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    (root / "registry.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="not a usable SQLite database"):
        Registry.open(root)


def test_a_store_directory_that_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "somefile").write_text("x")
    with pytest.raises(RegistryError, match="not a directory"):
        Registry.open(tmp_path / "somefile")
    other = tmp_path / "project"
    other.mkdir()
    (other / "README").write_text("unrelated")
    with pytest.raises(RegistryError, match="not a goldwatch registry"):
        Registry.open(other)
    assert sorted(p.name for p in other.iterdir()) == ["README"]


def test_open_is_idempotent_and_keeps_data(tmp_path: Path, artifact) -> None:
    with Registry.open(tmp_path / "reg") as reg:
        reg.add("m", artifact(1))
    with Registry.open(tmp_path / "reg") as reg:
        assert [v.version for v in reg.list("m")] == ["1"]
        assert reg.recovered == []


def test_a_schema_1_database_is_upgraded_when_opened(tmp_path: Path) -> None:
    """SQLite has one host: an older registry.db is migrated at open, its serving rows kept (host 'local')."""
    from goldwatch.watchdog.registry.storage.schema import statements

    root = tmp_path / "reg"
    root.mkdir()
    raw = sqlite3.connect(root / "registry.db")  # as goldwatch 0.1 left it
    for statement in statements(1, "sqlite"):
        raw.execute(statement)
    raw.execute("INSERT INTO models VALUES ('m', '2026-01-01T00:00:00+00:00')")
    raw.execute("INSERT INTO serving VALUES ('m', NULL, '/models/fallback', '2026-01-01T00:00:00+00:00')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with Registry.open(root) as reg:
        assert reg.db.schema_version() == SCHEMA_VERSION
        assert reg.serving_target("m") == (None, "/models/fallback")
        assert [(s.host, s.version) for s in reg.served_by("m")] == [("local", None)]
