"""One model's ingestion and windows: pairing in either order, orphans, probes, bounded queues, count and time
windows, restarts mid-window, and the reference following a rollback."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from goldwatch.config import LiveDriftConfig, LiveDriftModelConfig, LiveDriftSection
from goldwatch.watchdog.live import LiveDrift, ModelMonitor, ReferenceStore, SqliteCheckpoints
from goldwatch.watchdog.live.events import from_binary
from goldwatch.watchdog.live.payload import Tensor, Tensors
from goldwatch.watchdog.live.reference import build_reference
from goldwatch.watchdog.live.schema import Column, Schema
from tests.live.support import kserve_headers, lower, v2_request, v2_response

F = 3
SCHEMA = Schema.from_columns([Column(f"x{i}", tensor="input-0", index=i) for i in range(F)],
                             [Column("p", tensor="output-0", index=1)])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reference(shift: float = 0.0, *, version: str | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    return build_reference(Tensors({"input-0": Tensor(rng.normal(shift, 1.0, size=(20_000, F)), "FP64")}),
                           Tensors({"output-0": Tensor(rng.random(size=(20_000, 2)), "FP64")}), SCHEMA,
                           version=version, source=f"reference shift {shift} ({version})")


def monitor(clock: Clock | None = None, **overrides) -> ModelMonitor:
    cfg = LiveDriftConfig(**({"window_rows": 1000, "min_window_rows": 200} | overrides))
    return ModelMonitor("fraud", cfg, references=ReferenceStore.fixed(reference()), schema=SCHEMA,
                        clock=clock or Clock())


def pair(ce_id: str, rows: int = 50, *, shift: float = 0.0, seed: int = 1, version: str | None = "1"):
    rng = np.random.default_rng(seed)
    req = from_binary(lower(kserve_headers(ce_id, "request")), v2_request(rng.normal(shift, 1.0, size=(rows, F))))
    resp = from_binary(lower(kserve_headers(ce_id, "response")), v2_response(rng.random(size=(rows, 2)),
                                                                              version=version))
    return req, resp


def test_requests_and_responses_pair_in_either_order_and_fill_count_windows() -> None:
    m = monitor()
    results = []
    for i in range(30):
        req, resp = pair(f"id-{i}", seed=i)
        first, second = (req, resp) if i % 2 else (resp, req)  # half the responses come first
        m.submit_event(first)
        results += m.process()
        m.submit_event(second)
        results += m.process()
    counts = m.counters.snapshot()
    assert counts["pairs"] == 30
    assert counts["rows"] == 1500
    assert counts["orphan_requests"] == 0
    assert [(r.index, r.rows, r.close_reason) for r in results] == [(0, 1000, "rows")]  # exactly N rows
    assert results[0].inputs.n_rows == 1000
    assert results[0].outputs is not None
    assert results[0].outputs.n_rows == 1000
    assert m.window is not None
    assert m.window.rows == 500
    assert not results[0].drifted
    assert results[0].tested


def test_orphans_expire_after_the_ttl_and_still_count_for_their_part() -> None:
    clock = Clock()
    m = monitor(clock, pair_ttl_s=5.0)
    req, _ = pair("lonely-request")
    _, resp = pair("lonely-response")
    m.submit_event(req)
    m.submit_event(resp)
    m.process()
    assert len(m.pairer) == 2
    clock.t += 4.0
    m.process()
    assert len(m.pairer) == 2  # not yet
    clock.t += 2.0
    m.process()
    counts = m.counters.snapshot()
    assert (counts["orphan_requests"], counts["orphan_responses"], len(m.pairer)) == (1, 1, 0)
    closed = m.flush()
    assert closed[0].inputs.n_rows == 50
    assert closed[0].outputs is not None
    assert closed[0].outputs.n_rows == 50
    assert closed[0].rows == 100  # two orphans, rows of one part each


def test_duplicates_and_goldwatch_probes_are_left_out() -> None:
    m = monitor()
    req, resp = pair("dup")
    for event in (req, req, resp):  # the agent resent the request
        m.submit_event(event)
    probe_req, probe_resp = pair("goldwatch-0b7e5b1e")  # the sidecar's own golden replay (Ce-Id prefix)
    body_probe = from_binary(lower(kserve_headers("plain-id", "request")),
                             v2_request(np.zeros((4, F)), parameters={"goldwatch_probe": True}))
    _, body_probe_resp = pair("plain-id")
    late_probe = from_binary(lower(kserve_headers("late", "request")),
                             v2_request(np.zeros((4, F)), parameters={"goldwatch_probe": True}))
    _, late_resp = pair("late")
    for event in (probe_req, probe_resp, body_probe, body_probe_resp, late_resp, late_probe):
        m.submit_event(event)
    m.process()
    counts = m.counters.snapshot()
    assert counts["duplicates"] == 1
    assert counts["probes"] == 6  # both halves of each of the three probes
    assert counts["pairs"] == 1
    assert counts["rows"] == 50
    assert len(m.pairer) == 0


def test_unusable_bodies_are_counted_by_reason_and_never_reach_a_window() -> None:
    m = monitor()
    bad = [
        (b'{"inputs": [{"name": "input-0", "shape": [1, 3], "data": [1, 2', "malformed_json"),
        (b'{"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "parameters": '
         b'{"binary_data_size": 12}}]}' + np.zeros(3, np.float32).tobytes(), "binary_tensor"),
        (json.dumps({"inputs": [{"name": "other", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode(),
         "missing_tensor"),
        (json.dumps({"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
         .encode(), "wrong_shape"),
    ]
    for i, (body, _) in enumerate(bad):
        m.submit_event(from_binary(lower(kserve_headers(f"bad-{i}", "request")), body))
    m.process()
    counts = m.counters.snapshot()
    for _, reason in bad[:2]:
        assert counts[f"unparseable:{reason}"] == 1, reason
    # the last two decode but do not fit the schema: they surface when a request completes their pair
    for i in (2, 3):
        m.submit_event(pair(f"bad-{i}")[1])
    m.process()
    counts = m.counters.snapshot()
    assert counts["unparseable:missing_tensor"] == 1
    assert counts["unparseable:wrong_shape"] == 1
    assert counts["rows"] == 0
    assert m.window is not None
    assert m.window.violations == {"missing_tensor": 1,
                                                                                    "wrong_shape": 1}


def test_a_sender_far_faster_than_the_consumer_is_bounded_and_counted() -> None:
    """The consumer stalls; 2,000 events arrive. The queue holds at most its bound, drops the rest and counts
    them, and the memory held stays under the byte bound."""
    m = monitor(max_queue_events=200, max_queue_bytes=1 << 20)
    req, _ = pair("template", rows=32)
    body = req.body
    assert isinstance(body, bytes)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    accepted = 0
    headers = lower(kserve_headers("fast", "request"))
    for i in range(2000):
        headers["ce-id"] = f"fast-{i}"
        accepted += m.submit_event(from_binary(headers, bytes(body)))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert accepted == len(m.queue) <= 200
    assert m.queue.dropped == 2000 - accepted
    assert m.counters.snapshot()["dropped_queue_full"] == 2000 - accepted
    assert m.queue.nbytes <= 1 << 20
    assert held < 2 << 20, held  # the dropped events were not kept
    m.process()
    assert m.counters.snapshot()["events"] == accepted


def test_time_windows_and_the_minimum_size() -> None:
    clock = Clock()
    m = monitor(clock, window_rows=100_000, window_seconds=60.0, min_window_rows=300)
    rng = np.random.default_rng(3)
    m.submit_rows({"input-0": rng.normal(size=(200, F))})
    assert m.process() == []
    clock.t += 61
    (small,) = m.process()
    assert (small.close_reason, small.rows, small.tested) == ("time", 200, False)
    assert "too small: 200 rows < 300" in small.inputs.reason
    assert small.drift_checks()[0].status == "skip"
    m.submit_rows({"input-0": rng.normal(size=(400, F))})
    assert m.process() == []  # the next window opens with its first rows
    clock.t += 30
    assert m.process() == []
    clock.t += 31
    (big,) = m.process()
    assert (big.close_reason, big.rows, big.tested, big.index) == ("time", 400, True, 1)


def test_restart_mid_window_continues_the_window_and_the_page_rule(tmp_path) -> None:
    """A drifted window, then half a window, then the process dies (its last checkpoint is what survives): the
    restarted one finishes the same window at the same row count, and its drift is the second in a row: a page."""
    path = tmp_path / "live.sqlite"
    section = LiveDriftSection(models=[LiveDriftModelConfig(
        name="fraud", window_rows=1000, min_window_rows=200,
        inputs=[{"name": c.name, "tensor": c.tensor, "index": c.index} for c in SCHEMA.inputs],
        outputs=[{"name": "p", "tensor": "output-0", "index": 1}])])

    def start() -> LiveDrift:
        live = LiveDrift.from_config(section, store=SqliteCheckpoints(path))
        live.monitor("fraud").references = ReferenceStore.fixed(reference())
        live.restore()
        return live

    rng = np.random.default_rng(5)
    first = start()
    first.observe("fraud", {"input-0": rng.normal(0.5, 1.0, size=(1000, F))})
    (w0,) = first.process()
    assert w0.drifted
    assert not w0.state.paging
    first.observe("fraud", {"input-0": rng.normal(0.5, 1.0, size=(600, F))})
    assert first.process() == []
    first.checkpoint()
    del first  # killed: nothing more is written

    second = start()
    mon = second.monitor("fraud")
    assert mon.window is not None
    assert (mon.window.index, mon.window.rows) == (1, 600)
    assert mon.state.consecutive == 1
    second.observe("fraud", {"input-0": rng.normal(0.5, 1.0, size=(400, F))})
    (w1,) = second.process()
    assert (w1.index, w1.rows, w1.inputs.n_rows) == (1, 1000, 1000)
    assert w1.drifted
    assert w1.state.consecutive == 2
    assert w1.state.paging
    assert w1.drift_checks()[0].status == "fail"


def test_streaming_detector_state_survives_a_restart(tmp_path) -> None:
    m = monitor(min_effect=None)
    rng = np.random.default_rng(6)
    for _ in range(3):  # a small shift (p ~ 0.02 a window before the correction): the CUSUM sums grow
        m.submit_rows({"input-0": rng.normal(size=(1000, F)) + np.array([0.12, 0.0, 0.0])})
        m.process()
    sums = m.trend["inputs"].detector.s_up.copy()
    assert sums[0] > 0
    restored = monitor(min_effect=None)
    restored.load_state_dict(*m.state_dict())
    np.testing.assert_array_equal(restored.trend["inputs"].detector.s_up, sums)
    assert restored.window is not None
    assert restored.window.index == m.window.index == 3


def test_reference_follows_the_served_version_after_a_rollback() -> None:
    """Version 2 was trained on shifted data, version 1 on the original: traffic like version 1's reference drifts
    against version 2's and not against version 1's. A rollback (responses start naming version 1, or the sidecar
    says so) closes the window in progress and tests the next against version 1's reference."""
    refs = {"1": reference(0.0, version="1"), "2": reference(0.6, version="2")}
    store = ReferenceStore(lambda v: refs[v])
    clock = Clock()
    m = ModelMonitor("fraud", LiveDriftConfig(window_rows=600, min_window_rows=100), references=store,
                     schema=SCHEMA, clock=clock)
    results = []
    for i in range(13):  # one window of 600 rows, and 50 rows of the next
        for event in pair(f"v2-{i}", seed=i, version="2"):
            m.submit_event(event)
    results += m.process()
    assert [r.version for r in results] == ["2"]
    assert results[0].drifted
    assert results[0].reference.endswith("(2)")
    for i in range(6):  # a rollback to version 1: responses name it
        for event in pair(f"v1-{i}", seed=100 + i, version="1"):
            m.submit_event(event)
    results = m.process()
    assert [(r.version, r.close_reason, r.rows) for r in results] == [("2", "version", 50)]
    assert m.version == "1"
    for i in range(6, 12):
        for event in pair(f"v1-{i}", seed=100 + i, version="1"):
            m.submit_event(event)
    (after,) = m.process()
    assert (after.version, after.close_reason, after.drifted) == ("1", "rows", False)
    assert after.reference.endswith("(1)")
    # the sidecar pins the version: responses naming another one are counted and left out
    m.set_version("2")
    m.process()
    for event in pair("stray", version="1"):
        m.submit_event(event)
    m.process()
    assert m.version == "2"
    assert m.counters.snapshot()["other_version"] == 1


@pytest.mark.parametrize("bad", [{"input-0": np.zeros((5, 2))}, np.zeros((5, 7))])
def test_in_process_rows_that_do_not_fit(bad) -> None:
    m = monitor()
    m.submit_rows(bad)
    assert m.process() == []
    assert m.counters.snapshot()["unparseable"] == 1


def test_the_adaptive_sample_keeps_or_leaves_out_whole_pairs() -> None:
    """Under a sender faster than the consumer, the sample rate falls; a request and its response always share the
    decision (a hash of the pair's id), so sampling makes no orphans; the rate comes back when the consumer keeps
    up."""
    m = monitor()
    m.sampler.adjust(arrived=20_000, processed=1_000, busy_s=1.0, elapsed_s=1.0)
    assert 0.03 < m.sampler.rate < 0.05
    for i in range(400):
        for event in pair(f"s-{i}", rows=5, seed=i):
            m.submit_event(event)
    m.process()
    counts = m.counters.snapshot()
    assert counts["sampled_out"] % 2 == 0
    assert counts["sampled_out"] > 600
    assert counts["pairs"] * 2 + counts["sampled_out"] == 800
    assert len(m.pairer) == 0
    assert counts["orphan_requests"] == counts["orphan_responses"] == 0
    for _ in range(12):  # the consumer keeps up again
        m.sampler.adjust(arrived=100, processed=100, busy_s=0.001, elapsed_s=1.0)
    assert m.sampler.rate == 1.0
