"""Alert outbox throughput: durable enqueue, and enqueue + deliver to a local PagerDuty stub over HTTP.

Issue 8 sets no target. Anchors measured in the same run: (a) the same events POSTed directly with httpx, no
outbox (what durability costs; best of one run before and one after), and (b) PagerDuty's own limit of ~120
events/min per routing key (the headroom: the outbox must never be the bottleneck). The outbox's rate limit is
switched off here to measure the machinery.

    .venv/bin/python -m benchmarks.bench_alerts_outbox [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._results import record, table
from goldwatch.watchdog.alerts import AlertEvent, Outbox, PagerDutySink
from goldwatch.watchdog.alerts.events import encode_body
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub

KEY = "BenchKey0123456789abcdef01234567"
PAGERDUTY_LIMIT_PER_S = 120 / 60


def _event(i: int) -> AlertEvent:
    return AlertEvent(action="trigger", dedup_key=f"goldwatch/model-{i % 50}/golden", summary=f"event {i}",
                      source="bench", severity="error", custom_details={"i": i, "measured": {"value": 0.1 * i}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 events instead of 2000")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    rows = []
    with PagerDutyStub() as stub, tempfile.TemporaryDirectory() as tmp:
        sink = PagerDutySink(KEY, events_url=stub.url, rate_limit_per_minute=None)
        rendered = [sink.render(_event(i)) for i in range(n)]

        def direct() -> float:
            """Anchor (a): the same events POSTed with httpx, no persistence."""
            with httpx.Client() as client:
                t0 = time.perf_counter()
                for _kind, body in rendered:
                    client.post(stub.url + "/v2/enqueue", content=encode_body({"routing_key": KEY, **body}),
                                headers={"Content-Type": "application/json"})
                return time.perf_counter() - t0

        direct_runs = [direct()]

        box = Outbox.open(Path(tmp) / "alerts.sqlite")
        t0 = time.perf_counter()
        for i, (kind, body) in enumerate(rendered):
            box.enqueue(sink.name, kind, body, order_key=f"goldwatch/model-{i % 50}/golden", route=sink.route)
        enqueue_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = box.drain({sink.name: sink}, timeout_s=600)
        deliver_s = time.perf_counter() - t0
        box.close()
        sink.close()
        direct_runs.append(direct())  # best of before and after, so warm-up and load drift do not favour us
        direct_s = min(direct_runs)
        if report.delivered != n or report.pending or stub.violations or len(stub.accepted) != 3 * n:
            raise SystemExit(f"benchmark run is invalid: {report}, {len(stub.violations)} schema violations")

    total_s = enqueue_s + deliver_s
    rows = [
        ["direct httpx POST (anchor a, no outbox)", f"{n / direct_s:,.0f}", "1.00"],
        ["outbox enqueue (SQLite WAL, synchronous=FULL)", f"{n / enqueue_s:,.0f}", f"{direct_s / enqueue_s:.2f}"],
        ["outbox deliver (claim, POST, delete)", f"{n / deliver_s:,.0f}", f"{direct_s / deliver_s:.2f}"],
        ["outbox enqueue + deliver", f"{n / total_s:,.0f}", f"{direct_s / total_s:.2f}"],
    ]
    headroom = (n / total_s) / PAGERDUTY_LIMIT_PER_S
    body = table(["path", "events/s", "speed vs direct POST"], rows) + (
        f"\n\n{n} trigger events over 50 dedup keys to the local strict stub on 127.0.0.1. "
        f"Anchor (b): PagerDuty accepts ~{PAGERDUTY_LIMIT_PER_S:.0f} events/s per routing key; the outbox's "
        f"enqueue + deliver path runs at {headroom:,.0f}x that, so the rate limit, not the outbox, bounds delivery. "
        f"Each enqueue is one fsync'd SQLite commit (the durability guarantee); delivery bookkeeping (lease, "
        f"delete after 202) commits without fsync, since undoing it only resends a deduplicated event. "
        f"Both paths are bounded by the stub (a stdlib http.server in the same process), so a ratio near 1 "
        f"means the outbox adds little per event; figures move by tens of percent between runs on a shared "
        f"2-core machine. Machine load at the end of the run: {os.getloadavg()[0]:.1f} "
        f"(1-min average; other work may share it)."
    )
    print(body)
    record("alerts_outbox", body, command="python -m benchmarks.bench_alerts_outbox" + (" --quick" * args.quick))


if __name__ == "__main__":
    main()
