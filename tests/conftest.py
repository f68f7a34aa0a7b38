"""Shared test setup: markers, the hypothesis CI profile, and small fixtures every area uses."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# CI: more examples, no deadline (a 2-core runner under load is slow, and a timed assertion is flaky).
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'goldwatch[torch]')"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (CUDA paths run on a GPU machine; see benchmarks/RESULTS.md)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    reason = _cuda_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_progress_unless_asked() -> Iterator[None]:
    """Progress lines go to stderr after a task has run for 2 s, and click's CliRunner mixes stderr into
    ``result.output``: on a busy machine they would land among the output a test parses. The progress tests turn
    it back on (``monkeypatch.setenv("GOLDWATCH_PROGRESS", ...)``). Not through ``monkeypatch``: an autouse
    fixture that requests it would set it up before every other fixture, and its undo would then run last,
    undoing later fixtures' own environment restores (tests/registry's database backend)."""
    old = os.environ.get("GOLDWATCH_PROGRESS")
    os.environ["GOLDWATCH_PROGRESS"] = "off"
    yield
    if old is None:
        os.environ.pop("GOLDWATCH_PROGRESS", None)
    else:
        os.environ["GOLDWATCH_PROGRESS"] = old


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One PostgreSQL server for the whole session (skipped, with the reason, where the binaries are missing)."""
    from goldwatch.watchdog.registry.storage.pg_testing import find_postgres_bin, running_postgres

    if find_postgres_bin() is None:
        if os.environ.get("GOLDWATCH_REQUIRE_POSTGRES"):
            pytest.fail("GOLDWATCH_REQUIRE_POSTGRES is set but the PostgreSQL server binaries are missing")
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'goldwatch[postgres]')")
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A URL of a fresh, empty schema of the session's server (password included: it stands for the env var)."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return str(postgres_server.url(schema=schema))
