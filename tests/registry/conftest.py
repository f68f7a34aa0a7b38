"""Fixtures of the registry tests: small artifacts, an open registry, a serving directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from tests.registry.registry_helpers import write_weights


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
