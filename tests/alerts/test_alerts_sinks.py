"""Sinks map every HTTP answer and transport failure to delivered / retry / reject, per PagerDuty's retry table."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from goldwatch.errors import ConfigError
from goldwatch.watchdog.alerts import (
    AlertEvent,
    ChangeEvent,
    Outbox,
    PagerDutySink,
    RetryPolicy,
    SendResult,
    WebhookSink,
)

from .alerts_support import ROUTING_KEY


def _sink(handler: object) -> PagerDutySink:
    return PagerDutySink(ROUTING_KEY, events_url="https://pd.example/", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


TRIGGER = AlertEvent(action="trigger", dedup_key="k", summary="s", source="p", severity="error")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(202, "delivered"), (200, "delivered"), (400, "reject"), (401, "reject"), (403, "reject"), (404, "reject"),
     (413, "reject"), (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry")],
)
def test_status_codes(status: int, outcome: str) -> None:
    sink = _sink(lambda request: httpx.Response(status, json={"status": "x", "errors": ["why"]}))
    result = sink.send(*sink.render(TRIGGER))
    assert result.outcome == outcome
    assert result.status_code == status
    if outcome != "delivered":
        assert f"HTTP {status}" in result.detail


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                 httpx.RemoteProtocolError("eof")])
def test_transport_failures_are_retried(exc: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    result = _sink(fail).send(*_sink(fail).render(TRIGGER))
    assert result.outcome == "retry"
    assert result.status_code is None


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("-3", 0.0), ("soon", None)])
def test_retry_after_is_read(header: str, expected: float | None) -> None:
    sink = _sink(lambda request: httpx.Response(429, headers={"Retry-After": header}))
    assert sink.send(*sink.render(TRIGGER)).retry_after_s == expected


def test_outbox_honours_retry_after_up_to_the_cap(tmp_path: Path) -> None:
    now = [100.0]
    box = Outbox.open(tmp_path / "o.sqlite", policy=RetryPolicy(base_s=0.1, max_delay_s=30.0, jitter=0.0),
                      clock=lambda: now[0])

    class Slow:
        name, route, rate_limit_per_minute = "s", "s", None

        def send(self, kind: str, body: object) -> SendResult:
            return SendResult("retry", 429, "HTTP 429", retry_after_s=3600.0)

    box.enqueue("s", "alert", {}, order_key="k", route="s")
    box.deliver_once({"s": Slow()})
    assert box.entries()[0].next_attempt_at == pytest.approx(130.0)  # Retry-After 3600 capped at 30 s
    box.close()


def test_the_key_is_added_only_when_sending_and_paths_follow_the_kind() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        assert request.headers["content-type"] == "application/json"
        return httpx.Response(202)

    sink = _sink(record)
    kind, body = sink.render(TRIGGER)
    assert "routing_key" not in body
    sink.send(kind, body)
    sink.send(*sink.render(ChangeEvent(summary="promoted v2")))
    assert [p for p, _ in seen] == ["/v2/enqueue", "/v2/change/enqueue"]
    assert all(b["routing_key"] == ROUTING_KEY for _, b in seen)
    assert sink.send("page", {}).outcome == "reject"


def test_oversize_body_is_refused_before_sending() -> None:
    calls = []
    sink = _sink(lambda request: calls.append(1) or httpx.Response(202))
    result = sink.send("alert", {"event_action": "trigger", "blob": "x" * 600_000})
    assert result.outcome == "reject"
    assert "over PagerDuty's 524288" in result.detail
    assert calls == []


@pytest.mark.parametrize("key", ["", "x" * 31, "x" * 33, "x" * 16 + " " + "x" * 15])
def test_routing_key_shape_is_checked(key: str) -> None:
    with pytest.raises(ConfigError, match="expected 32"):
        PagerDutySink(key)


def test_urls_are_checked() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        PagerDutySink(ROUTING_KEY, events_url="events.pagerduty.com")
    with pytest.raises(ConfigError, match="not an http"):
        WebhookSink("hooks.slack.com/services/x", name="slack")


def test_backoff_draws_are_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, random.Random(5)) for n in range(1, 6)] == [
        policy.delay(n, random.Random(5)) for n in range(1, 6)]
