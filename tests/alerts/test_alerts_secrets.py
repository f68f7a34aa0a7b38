"""The routing key never appears in logs (JSON or text, ours or httpx's) nor in the outbox on disk."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldwatch.checks import Check
from goldwatch.config import parse_config
from goldwatch.errors import ConfigError
from goldwatch.logs import configure_logging
from goldwatch.watchdog.alerts import AlertManager, Outbox, PagerDutySink, build_sinks
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub

from .alerts_support import FAST, ROUTING_KEY


class RawRecords(logging.Handler):
    """Sees records before any redacting filter: proves goldwatch never *tries* to log the key."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + " " + " ".join(str(v) for v in record.__dict__.values()))


@pytest.fixture(params=["json", "text"])
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[io.StringIO, RawRecords]]:
    stream = io.StringIO()
    configure_logging(level="debug", fmt=request.param, stream=stream)
    raw = RawRecords()
    logger = logging.getLogger("goldwatch")
    logger.handlers.insert(0, raw)
    yield stream, raw
    logger.removeHandler(raw)
    configure_logging()


def _run_everything(tmp_path: Path, stub: PagerDutyStub) -> None:
    sink = PagerDutySink(ROUTING_KEY, events_url=stub.url, timeout_s=0.5, rate_limit_per_minute=None)
    mgr = AlertManager(Outbox.open(tmp_path / "alerts.sqlite", policy=FAST), [sink], source="pod-1",
                       runbook_url="https://runbooks.example/x")
    stub.script(500, 429, "hang", 400)
    mgr.trigger("fraud", "integrity", checks=[Check(name="integrity:digest", status="fail", summary="differs")])
    mgr.trigger("fraud", "drift", summary="drifted", severity="warning")
    mgr.change("rolled back fraud v7 -> v6", model="fraud")
    mgr.resolve("fraud", "integrity")
    mgr.flush(timeout_s=10)
    stub.release()
    sink.close()
    mgr.outbox.close()
    # a second sink pointing at a closed port: the network-error path logs too
    dead = PagerDutySink(ROUTING_KEY, events_url="http://127.0.0.1:9", timeout_s=0.5)
    box = Outbox.open(tmp_path / "alerts2.sqlite", policy=FAST)
    AlertManager(box, [dead], source="pod-1").trigger("m", "server", summary="down", severity="error")
    box.deliver_once({dead.name: dead})
    box.close()


def test_routing_key_never_logged(
    tmp_path: Path, stub: PagerDutyStub, captured: tuple[io.StringIO, RawRecords],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream, raw = captured
    caplog.set_level(logging.DEBUG)  # httpx / httpcore loggers propagate to the root
    _run_everything(tmp_path, stub)
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY[:-1])  # a mistyped key: error path
    with pytest.raises(ConfigError) as err:
        build_sinks(parse_config("").alerts)
    logging.getLogger("goldwatch.test").error("config failed: %s", err.value)
    text = stream.getvalue()
    assert "delivered via pagerduty" in text
    assert "rejected by pagerduty" in text
    assert len(raw.lines) > 5
    assert caplog.records
    for where, content in [("formatted log", text), ("raw records", "\n".join(raw.lines)),
                           ("third-party logs", caplog.text), ("error", str(err.value))]:
        assert ROUTING_KEY not in content, where
        assert ROUTING_KEY[:-1] not in content, where
    # the stub did get it: the key was sent, just never logged
    assert all(r.body["routing_key"] == ROUTING_KEY for r in stub.requests)


def test_routing_key_never_written_to_the_outbox(tmp_path: Path, stub: PagerDutyStub) -> None:
    _run_everything(tmp_path, stub)
    files = list(tmp_path.iterdir())
    assert any(f.name == "alerts.sqlite" for f in files)
    for f in files:
        assert ROUTING_KEY.encode() not in f.read_bytes(), f.name


def test_sink_repr_hides_the_key(stub: PagerDutyStub) -> None:
    sink = PagerDutySink(ROUTING_KEY, events_url=stub.url)
    assert ROUTING_KEY not in repr(sink)
    assert ROUTING_KEY not in str(vars(sink).get("route"))
    sink.close()


def test_webhook_url_is_masked_in_httpx_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import httpx

    from goldwatch.watchdog.alerts import WebhookSink

    url = "https://hooks.example/services/T000/B000/SeCrEtToKeN123"
    sink = WebhookSink(url, name="webhook:slack", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    box = Outbox.open(tmp_path / "a.sqlite", policy=FAST)
    caplog.set_level(logging.DEBUG)
    mgr = AlertManager(box, [sink], source="pod-1")
    mgr.trigger("m", "drift", summary="drifted", severity="warning")
    assert mgr.flush(timeout_s=5).delivered == 1
    mgr.close()
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log the request
    assert "SeCrEtToKeN123" not in caplog.text
    assert b"SeCrEtToKeN123" not in (tmp_path / "a.sqlite").read_bytes()
