"""The sidecar journal: incidents with their times, one open per class, rollbacks, pauses, checkpoints, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from goldwatch.checks import Check
from goldwatch.errors import StateError
from goldwatch.watchdog.sidecar.journal import Journal


def test_one_open_incident_per_model_and_class_with_ttd_ttr_and_rto(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    bad = Check("integrity:model.onnx", "fail", "tensor 'w' block 3 differs", details={"block": 3})
    a = j.open_incident(model="m", check_class="integrity", kind="files", severity="critical", summary="first",
                        started_at=10.0, detected_at=12.0, rto_s=5.0, checks=[bad], served_version="3")
    again = j.open_incident(model="m", check_class="integrity", kind="files", severity="critical", summary="again",
                            started_at=11.0, detected_at=13.0, rto_s=5.0)
    other = j.open_incident(model="m", check_class="server", kind="readiness", severity="error", summary="down",
                            started_at=None, detected_at=13.0, rto_s=5.0)
    assert again == a
    assert other != a
    j.mark_acted(a, at=12.1, action={"kind": "rollback", "from": "3", "to": "2"})
    done = j.resolve_incident(a, at=18.0)
    assert (done.state, done.ttd_s, done.ttr_s, done.within_rto) == ("resolved", 2.0, 6.0, False)
    assert done.checks[0].details == {"block": 3}
    assert done.summary == "again"
    reopened = j.open_incident(model="m", check_class="integrity", kind="files", severity="critical",
                               summary="back", started_at=20.0, detected_at=21.0, rto_s=5.0)
    assert reopened not in (a, other), "after a resolve, the same problem is a new incident"
    assert [i.id for i in j.incidents(state="open", model="m")] == [reopened, other]
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses a second open one
        j._conn.execute("INSERT INTO incidents (model, check_class, kind, state, severity, summary, detected_at) "
                        "VALUES ('m', 'server', 'readiness', 'open', 'error', 'x', 1)")
    j.close()


def test_state_survives_a_reopen_and_unfinished_rollbacks_are_found(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    rb = j.begin_rollback(model="m", incident_id=None, automatic=True, at=100.0, from_version="3", reason="files")
    j.begin_rollback(model="m", incident_id=None, automatic=False, at=50.0, from_version="2", reason="manual")
    j.finish_rollback(2, at=51.0, to_version="1", outcome="manual-ok", detail={"summary": "ok"})
    j.set_paused("m", until=500.0, reason="deploy")
    j.set_stopped("m", at=120.0, reason="flap guard")
    j.save_check(model="m", kind="files", status="pass", version="3", last_run_at=99.0, last_pass_at=99.0,
                 failing_since=None, consecutive=0, duration_s=0.01, checks=[Check("integrity:x", "pass")])
    j.save_source(model="m", source="agent:h:1", kind="resident", interval_s=30.0, first_seen=1.0, last_seen=2.0,
                  status="pass")
    j.record(model="m", kind="files", action="page", reason="why", at=101.0, detail={"n": 1})
    j.close()
    j = Journal.open(path)
    (open_rb,) = j.rollbacks(model="m", unfinished=True)
    assert (open_rb.id, open_rb.from_version, open_rb.automatic) == (rb, "3", True)
    state = j.model_state("m")
    assert (state.paused_until, state.paused_reason, state.stopped_reason) == (500.0, "deploy", "flap guard")
    (row,) = j.check_states("m")
    assert (row.status, row.last_pass_at, row.checks[0].name) == ("pass", 99.0, "integrity:x")
    assert j.sources("m")[0].source == "agent:h:1"
    (d,) = j.decisions(model="m")
    assert (d.action, d.detail) == ("page", {"n": 1})
    assert j.decisions(after=d.id) == []
    assert j.prune(older_than_s=10, now=200.0) >= 2  # the old decision and the finished rollback
    assert j.rollbacks(model="m") == [open_rb], "an unfinished rollback is never pruned"
    j.close()


def test_checkpoints_are_durable_key_value_state_for_any_component(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    j.put_checkpoint("drift", "m/window", {"n": 10, "stats": [0.5, 1.5]})
    j.put_checkpoint("drift", "m/window", {"n": 11})
    j.put_checkpoint("agent", "x", [1, 2])
    assert j.get_checkpoint("drift", "m/window") == {"n": 11}
    assert j.checkpoints("drift") == {"m/window": {"n": 11}}
    j.delete_checkpoint("drift", "m/window")
    assert j.get_checkpoint("drift", "m/window") is None
    assert j.writable()
    j.close()


def test_a_journal_from_a_newer_goldwatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="newer than this goldwatch"):
        Journal.open(path)
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StateError, match="cannot open the sidecar journal"):
        Journal.open(tmp_path / "dir.sqlite")
