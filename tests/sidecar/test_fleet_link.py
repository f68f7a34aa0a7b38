"""The sidecar's link to a fleet registry: pages go through the fleet's book, and when the book cannot answer in
time the pod pages alone (a page is never held back for the book)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from goldwatch.checks import Check
from goldwatch.watchdog.alerts import AlertManager, Outbox, PagerDutySink, dedup_key
from goldwatch.watchdog.registry import Registry
from goldwatch.watchdog.sidecar.fleet import FleetLink
from tests.sidecar.support import ROUTING_KEY

BAD = Check(name="integrity:weights.npz", status="fail", summary="block 3 differs")


def _manager(path: Path, sent: list[dict[str, Any]]) -> AlertManager:
    def pagerduty(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(202, json={"status": "success"})

    sink = PagerDutySink(ROUTING_KEY, transport=httpx.MockTransport(pagerduty), rate_limit_per_minute=None)
    return AlertManager(Outbox.open(path), [sink])


def test_pods_page_through_the_book_and_alone_when_it_is_busy(tmp_path: Path, postgres_url: str) -> None:
    pods = {h: Registry.open(tmp_path / "shared", database=postgres_url, host=h) for h in ("pod-a", "pod-b")}
    sent: dict[str, list[dict[str, Any]]] = {h: [] for h in pods}
    links = {h: FleetLink(pods[h], heartbeat_s=30.0, renotify_s=3600.0) for h in pods}
    managers = {h: _manager(tmp_path / f"{h}.sqlite", sent[h]) for h in pods}
    try:
        assert all(link.shared for link in links.values())
        links["pod-a"].trigger(managers["pod-a"], "fraud", "integrity", checks=[BAD], severity="critical",
                               served_version="2")
        managers["pod-a"].flush(timeout_s=5)
        assert [e["event_action"] for e in sent["pod-a"]] == ["trigger"]
        assert sent["pod-a"][0]["payload"]["custom_details"]["fleet"]["pods_seeing_it"] == ["pod-a"]
        # pod-b's first page comes while the book is busy (another session holds the incident's row): it pages
        # alone, at once, on the same dedup key (PagerDuty keeps one incident)
        links["pod-b"].registry.incidents.timeout_s = 0.3
        holder = Registry.open(tmp_path / "shared", database=postgres_url, host="pod-c")
        try:
            with holder.db.transaction():
                holder.db.execute("SELECT * FROM fleet_incidents WHERE dedup_key = ? FOR UPDATE",
                                  (dedup_key("fraud", "integrity"),))
                # returns while the row is still held: it did not wait for the book
                links["pod-b"].trigger(managers["pod-b"], "fraud", "integrity", checks=[BAD], severity="critical",
                                       served_version="2")
        finally:
            holder.close()
        managers["pod-b"].flush(timeout_s=5)
        assert [(e["event_action"], e["dedup_key"]) for e in sent["pod-b"]] == [
            ("trigger", dedup_key("fraud", "integrity"))]
        # with the book answering again, pod-b's next evaluation joins the fleet's incident: nothing more is sent
        links["pod-b"].registry.incidents.timeout_s = 5.0
        links["pod-b"].trigger(managers["pod-b"], "fraud", "integrity", checks=[BAD], severity="critical",
                               served_version="2")
        managers["pod-b"].flush(timeout_s=5)
        assert len(sent["pod-b"]) == 1
        # recoveries: pod-a leaves (pod-b still sees it), pod-b's resolve is the fleet's
        links["pod-a"].resolve(managers["pod-a"], "fraud", "integrity", summary="fraud: integrity passes")
        managers["pod-a"].flush(timeout_s=5)
        assert [e["event_action"] for e in sent["pod-a"]] == ["trigger"]
        links["pod-b"].resolve(managers["pod-b"], "fraud", "integrity", summary="fraud: integrity passes")
        managers["pod-b"].flush(timeout_s=5)
        assert [e["event_action"] for e in sent["pod-b"]] == ["trigger", "resolve"]
    finally:
        for h in pods:
            managers[h].close()
            links[h].close()
