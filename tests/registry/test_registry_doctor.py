"""``goldwatch doctor`` on the registry: SQLite in the root or a fleet's PostgreSQL (this module runs on both), and
a database that cannot be reached."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from goldwatch.doctor import diagnose
from goldwatch.watchdog.registry import Registry
from goldwatch.watchdog.registry.storage import DATABASE_URL_ENV
from goldwatch.watchdog.registry.storage.schema import SCHEMA_VERSION


def _registry_check(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("GOLDWATCH_REGISTRY_ROOT", str(root))
    (check,) = [c for c in diagnose(None, only=["registry"]).checks if c.name == "registry"]
    return {"status": check.status, "summary": check.summary}


def test_doctor_reads_the_registry_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            artifact: Callable[[int], Path], database_backend: str) -> None:
    root = tmp_path / "reg"
    before = _registry_check(root, monkeypatch)
    assert before["status"] == "pass"
    if database_backend == "sqlite":
        assert before["summary"].endswith("does not exist yet; the first `goldwatch registry add` creates it")
        assert not root.exists()  # doctor created nothing
    else:
        assert "PostgreSQL, reachable, empty" in before["summary"]
        assert "***@" in before["summary"]  # the password is masked
    with Registry.open(root) as reg:
        reg.add("m", artifact(1))
    after = _registry_check(root, monkeypatch)
    assert after["status"] == "pass"
    backend = "SQLite, readable, integrity ok" if database_backend == "sqlite" else "PostgreSQL, reachable"
    assert f"{backend}, schema {SCHEMA_VERSION}" in after["summary"]


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)  # the URL below is the point: one run
def test_doctor_reports_an_unreachable_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                database_backend: str) -> None:
    from goldwatch.runtimes.mlserver_testing import free_ports

    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'goldwatch[postgres]')")
    monkeypatch.setenv(DATABASE_URL_ENV, f"postgresql://goldwatch:pw-123456@127.0.0.1:{free_ports(1)[0]}/registry")
    found = _registry_check(tmp_path / "reg", monkeypatch)
    assert found["status"] == "fail"
    assert "the registry database is not reachable" in found["summary"]
    assert "pw-123456" not in found["summary"]
