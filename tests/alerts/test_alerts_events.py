"""Events: the PagerDuty wire format, its limits, and trimming -- checked against the stub's strict validator."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldwatch.errors import DataError
from goldwatch.watchdog.alerts.events import (
    MAX_EVENT_BYTES,
    MAX_SUMMARY_CHARS,
    AlertEvent,
    ChangeEvent,
    Image,
    Link,
    encode_body,
    fit_to_size,
    truncate_text,
)
from goldwatch.watchdog.alerts.pagerduty_stub import validate_alert, validate_change

from .alerts_support import ROUTING_KEY

T0 = dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.timezone.utc)


def _trigger(**kw: object) -> AlertEvent:
    base: dict[str, object] = {"action": "trigger", "dedup_key": "goldwatch/m/integrity", "summary": "s",
                               "source": "pod-1", "severity": "critical", "timestamp": T0}
    base.update(kw)
    return AlertEvent(**base)  # type: ignore[arg-type]


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_truncate_text_keeps_whole_characters(text: str, limit: int) -> None:
    out = truncate_text(text, limit)
    assert len(out) <= limit
    out.encode("utf-8")  # never half a multi-byte sequence
    if len(text) <= limit:
        assert out == text
    else:
        assert out.endswith("…")
        assert text.startswith(out[:-1])


def test_summary_is_cut_to_1024_characters_on_a_character_boundary() -> None:
    body = _trigger(summary="é" * 3000).to_pagerduty()
    summary = body["payload"]["summary"]
    assert len(summary) == MAX_SUMMARY_CHARS
    assert summary.endswith("…")
    assert validate_alert({"routing_key": ROUTING_KEY, **body}) == []


def test_full_trigger_matches_the_documented_schema() -> None:
    ev = _trigger(component="fraud", group="integrity", event_class="integrity",
                  custom_details={"measured": 3, "nested": {"a": [1, 2]}},
                  links=[Link("https://runbooks.example/x", "Runbook")],
                  images=[Image("https://img.example/p.png", href="https://img.example", alt="plot")],
                  client_url="https://goldwatch.example")
    body = {"routing_key": ROUTING_KEY, **ev.to_pagerduty()}
    assert validate_alert(body) == []
    assert body["payload"]["class"] == "integrity"
    assert body["images"][0]["src"].startswith("https://")
    assert dt.datetime.fromisoformat(body["payload"]["timestamp"]) == T0


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_follow_up_events_carry_only_the_key(action: str) -> None:
    body = {"routing_key": ROUTING_KEY, **AlertEvent(action=action, dedup_key="k").to_pagerduty()}  # type: ignore[arg-type]
    assert set(body) == {"routing_key", "event_action", "dedup_key"}
    assert validate_alert(body) == []


def test_change_event_has_only_documented_fields() -> None:
    ev = ChangeEvent(summary="promoted fraud v7", source="ci", timestamp=T0, custom_details={"version": "v7"},
                     links=[Link("https://ci.example/1")])
    body = {"routing_key": ROUTING_KEY, **ev.to_pagerduty()}
    assert validate_change(body) == []
    assert set(body) == {"routing_key", "payload", "links"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"severity": "fatal"}, "unknown severity 'fatal'"),
        ({"summary": "  "}, "non-empty summary and source"),
        ({"source": ""}, "non-empty summary and source"),
        ({"dedup_key": "k" * 256}, "dedup_key has 256 characters"),
        ({"dedup_key": ""}, "dedup_key has 0 characters"),
        ({"timestamp": dt.datetime(2026, 1, 1)}, "has no time zone"),
        ({"action": "escalate"}, "unknown event action 'escalate'"),
    ],
)
def test_bad_events_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        _trigger(**kwargs)


def test_images_must_be_https() -> None:
    with pytest.raises(DataError, match="not an HTTPS URL"):
        Image("http://img.example/p.png")


def test_oversize_details_are_trimmed_largest_first_and_the_event_stays_valid() -> None:
    details = {"measured": {"max_abs_error": 0.25}, "served_version": "v6",
               "evidence": {"per_feature": list(range(200_000))}, "log": "x" * 300_000}
    ev = _trigger(custom_details=details, links=[Link("https://runbooks.example/x")])
    body = {"routing_key": ROUTING_KEY, **ev.to_pagerduty()}
    size = len(encode_body(body))
    assert size <= MAX_EVENT_BYTES
    assert validate_alert(body) == []
    kept = body["payload"]["custom_details"]
    # the small numbers a responder needs survive; the report says what was cut
    assert kept["measured"] == {"max_abs_error": 0.25}
    assert kept["served_version"] == "v6"
    trimmed = kept["goldwatch_trimmed"]
    assert trimmed["original_bytes"] > MAX_EVENT_BYTES
    assert set(trimmed["cut"]) | set(trimmed["dropped"]) <= {"evidence", "log"}
    assert trimmed["cut"]
    assert body["links"] == [{"href": "https://runbooks.example/x"}]


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.one_of(st.integers(), st.text(max_size=3000),
                  st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=300)),
        max_size=12,
    ),
    st.integers(min_value=600, max_value=20_000),
)
def test_fit_to_size_always_fits_or_says_why(details: dict[str, object], limit: int) -> None:
    body = {"event_action": "trigger", "payload": {"summary": "s", "source": "p", "severity": "info",
                                                   "custom_details": details}}
    before = json.loads(json.dumps(body))
    out = fit_to_size(body, max_bytes=limit)
    assert len(encode_body(out)) <= limit
    assert body == before  # the input is never modified
    if len(encode_body(before)) <= limit:
        assert out == before


def test_an_event_that_cannot_fit_says_why() -> None:
    body = {"event_action": "trigger", "payload": {"summary": "s", "source": "p" * 5000, "custom_details": {}}}
    with pytest.raises(DataError, match="even without details"):
        fit_to_size(body, max_bytes=1000)


events = st.builds(
    AlertEvent,
    action=st.just("trigger"),
    dedup_key=st.text(min_size=1, max_size=255),
    summary=st.text(min_size=1, max_size=3000).filter(str.strip),
    source=st.text(min_size=1, max_size=200).filter(str.strip),
    severity=st.sampled_from(["critical", "error", "warning", "info"]),
    timestamp=st.datetimes(timezones=st.just(dt.timezone.utc)),
    component=st.none() | st.text(max_size=50),
    group=st.none() | st.text(max_size=50),
    event_class=st.none() | st.text(max_size=50),
    custom_details=st.dictionaries(st.text(max_size=30), st.integers() | st.text(max_size=200), max_size=10),
    links=st.lists(st.builds(Link, href=st.just("https://x.example/r"), text=st.none() | st.text(max_size=20)),
                   max_size=3),
)


@given(events)
def test_every_rendered_trigger_passes_the_strict_validator(event: AlertEvent) -> None:
    body = {"routing_key": ROUTING_KEY, **event.to_pagerduty()}
    assert validate_alert(body) == []
    assert len(encode_body(body)) <= MAX_EVENT_BYTES
