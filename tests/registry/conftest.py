"""Fixtures of the registry tests: small artifacts, an open registry, a serving directory -- on both backends.

Every test of the modules that open a registry database runs twice: on SQLite (the default) and on a real
PostgreSQL server started once per session (``initdb`` in a temp dir, a free port on 127.0.0.1; see
:mod:`goldwatch.watchdog.registry.storage.pg_testing`; its fixtures live in ``tests/conftest.py``, shared with the
sidecar's fleet tests). The PostgreSQL run gives each test a schema of its own and points
``$GOLDWATCH_DATABASE_URL`` at it, so ``Registry.open(root)`` -- in the test and in any subprocess it starts -- uses
PostgreSQL without the test saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.registry.storage import DATABASE_URL_ENV
from tests.registry.registry_helpers import write_weights

# Modules that never open a registry database (the store, pointers, reloaders, imports) run once.
_DATABASE_FREE = {
    "test_registry_store", "test_registry_pointer", "test_registry_reload", "test_registry_integrity_adapter",
    "test_registry_imports", "test_registry_db",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    chosen = any("database_backend" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if "database_backend" in metafunc.fixturenames and module not in _DATABASE_FREE and not chosen:
        metafunc.parametrize("database_backend", ["sqlite", "postgresql"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The crash tests kill at every step, with every pointer layout, on SQLite; on PostgreSQL at every step with one
    # layout (the layout and the database are independent: the layouts' crash behaviour is covered on SQLite).
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = getattr(item, "module", None)
        if (module is not None and module.__name__.endswith("test_registry_crash")
                and params.get("database_backend") == "postgresql" and params.get("layout") == "numbered"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """'sqlite' or 'postgresql': the backend every registry in this test (and its subprocesses) opens."""
    backend = getattr(request, "param", "sqlite")
    patch = pytest.MonkeyPatch()  # our own: a test's monkeypatch.undo() must not switch the backend mid-test
    if backend == "postgresql":
        patch.setenv(DATABASE_URL_ENV, request.getfixturevalue("postgres_url"))
    else:
        patch.delenv(DATABASE_URL_ENV, raising=False)
    yield str(backend)
    patch.undo()


@pytest.fixture
def artifact(tmp_path: Path) -> Callable[[int], Path]:
    def make(seed: int) -> Path:
        return write_weights(tmp_path / "src" / f"model-{seed}", seed)

    return make


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(tmp_path / "reg")
    yield reg
    reg.close()


@pytest.fixture(params=["current-link", "numbered"])
def served_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry with model 'm' served through a pointer of each layout."""
    reg = Registry.open(tmp_path / "reg")
    reg.attach("m", Serving(make_pointer(request.param, tmp_path / "serve" / "m")))
    yield reg
    reg.close()
