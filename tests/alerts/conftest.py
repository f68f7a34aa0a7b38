"""Fixtures of the alert tests: the strict PagerDuty stub, a fast retry policy, an outbox in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goldwatch.watchdog.alerts import Outbox, PagerDutySink
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub

from .alerts_support import FAST, ROUTING_KEY


@pytest.fixture
def stub() -> Iterator[PagerDutyStub]:
    with PagerDutyStub(hang_s=10.0) as server:
        yield server


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "alerts.sqlite", policy=FAST, seed=0)
    yield box
    box.close()


@pytest.fixture
def pd_sink(stub: PagerDutyStub) -> Iterator[PagerDutySink]:
    sink = PagerDutySink(ROUTING_KEY, events_url=stub.url, timeout_s=2.0, rate_limit_per_minute=None)
    yield sink
    sink.close()
