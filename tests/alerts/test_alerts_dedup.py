"""Dedup keys are deterministic, bounded and distinct; the incident book opens, updates and resolves."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldwatch.errors import DataError
from goldwatch.watchdog.alerts.dedup import IncidentBook, check_class, dedup_key

names = st.text(min_size=1, max_size=400)


@given(names, names)
def test_dedup_key_is_stable_and_within_limits(model: str, cls: str) -> None:
    key = dedup_key(model, cls)
    assert key == dedup_key(model, cls)
    assert 1 <= len(key) <= 255
    assert key.isascii()


@given(names, names, names, names)
def test_different_problems_get_different_keys(m1: str, c1: str, m2: str, c2: str) -> None:
    if (m1, c1) != (m2, c2):
        assert dedup_key(m1, c1) != dedup_key(m2, c2)


@pytest.mark.parametrize(("a", "b"), [(("fraud model", "x"), ("fraud_model", "x")),
                                      (("a/b", "c"), ("a", "b/c")), (("m" * 300, "x"), ("m" * 301, "x"))])
def test_names_that_sanitize_alike_stay_apart(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert dedup_key(*a) != dedup_key(*b)
    assert len(dedup_key(*a)) <= 255
    assert len(dedup_key(*b)) <= 255


def test_readable_keys_and_classes() -> None:
    assert dedup_key("fraud-v2", "golden") == "goldwatch/fraud-v2/golden"
    assert dedup_key("fraud model/v2", "golden").startswith("goldwatch/fraud_model_v2/golden~")
    assert check_class("drift:ks:feature_3") == "drift"
    with pytest.raises(DataError, match="has no class"):
        check_class(":x")
    with pytest.raises(DataError, match="must be non-empty"):
        dedup_key("", "golden")


def test_incident_book_lifecycle() -> None:
    book = IncidentBook(sqlite3.connect(":memory:"))
    common = {"key": "k", "model": "m", "check_class": "golden", "severity": "critical", "summary": "s"}
    first = book.on_trigger(**common, fingerprint="a", now=0.0, renotify_s=100)
    assert (first.send, first.reason, first.incident.number) == (True, "new", 1)
    assert book.on_trigger(**common, fingerprint="a", now=10.0, renotify_s=100).reason == "unchanged"
    assert book.on_trigger(**common, fingerprint="b", now=20.0, renotify_s=100).reason == "changed"
    assert book.on_trigger(**common, fingerprint="b", now=90.0, renotify_s=100).reason == "unchanged"
    assert book.on_trigger(**common, fingerprint="b", now=120.0, renotify_s=100).reason == "renotify"
    # anti-flap: passing must last resolve_after_s before a resolve
    assert book.on_pass(key="k", now=130.0, resolve_after_s=50) is None
    assert book.on_pass(key="k", now=170.0, resolve_after_s=50) is None
    resolved = book.on_pass(key="k", now=180.0, resolve_after_s=50)
    assert resolved is not None
    assert resolved.state == "resolved"
    assert resolved.triggers == 5
    assert book.on_pass(key="k", now=190.0, resolve_after_s=0) is None  # nothing open
    reopened = book.on_trigger(**common, fingerprint="b", now=200.0, renotify_s=100)
    assert (reopened.reason, reopened.incident.number, reopened.incident.triggers) == ("new", 2, 1)
    assert [i.dedup_key for i in book.list(state="open")] == ["k"]


def test_a_failure_during_the_quiet_period_restarts_it() -> None:
    book = IncidentBook(sqlite3.connect(":memory:"))
    common = {"key": "k", "model": "m", "check_class": "drift", "severity": "warning", "summary": "s",
              "fingerprint": "f", "renotify_s": 1e9}
    book.on_trigger(**common, now=0.0)
    assert book.on_pass(key="k", now=10.0, resolve_after_s=60) is None
    book.on_trigger(**common, now=50.0)  # flapped back
    assert book.on_pass(key="k", now=80.0, resolve_after_s=60) is None  # 10 + 60 would have resolved
    assert book.on_pass(key="k", now=140.0, resolve_after_s=60) is not None
