"""Crash safety: SIGKILL promote and rollback at every step, reopen, and find a consistent state.

Consistent means: no operation left open, the database and the pointer name the same target, the states match
what is served (completed) or what was there before (reverted), no staged leftovers, and the next operation works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.registry.journal import CRASH_ENV, STEPS
from tests.registry.registry_helpers import write_weights

DRIVER = Path(__file__).with_name("crash_driver.py")
LAYOUTS = ["current-link", "numbered"]


def _setup(tmp_path: Path, layout: str, *, serve_v2: bool) -> tuple[Path, Path]:
    root, serve = tmp_path / "reg", tmp_path / "serve" / "m"
    with Registry.open(root) as reg:
        reg.attach("m", Serving(make_pointer(layout, serve)))
        for seed in (1, 2):
            reg.add("m", write_weights(tmp_path / "src" / str(seed), seed))
        reg.promote("m", "1", reason="setup")
        if serve_v2:
            reg.promote("m", "2", reason="setup")
    return root, serve


def _run(root: Path, serve: Path, layout: str, step: str, *args: str) -> int:
    env = {**os.environ, CRASH_ENV: step}
    done = subprocess.run([sys.executable, str(DRIVER), str(root), str(serve), layout, *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def _assert_consistent(reg: Registry, serve: Path) -> str:
    """The pointer and the database agree; returns the version served."""
    assert reg.db.one("SELECT COUNT(*) FROM intents WHERE status = 'open'")[0] == 0
    assert reg.db.integrity_problems() == []
    version, target = reg.serving_target("m")
    state = reg.serving_for("m").pointer.read()
    assert str(state.source) == target
    assert not [p for p in serve.iterdir() if ".tmp-" in p.name]
    assert not any((reg.root / "store" / "tmp").iterdir())
    served = reg.serving_for("m").pointer.served_path()
    mv = reg.get("m", version)
    assert (served / "weights.npz").read_bytes() == (mv.path / "weights.npz").read_bytes()
    return version


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("step", STEPS["promote"])
def test_promote_killed_at_each_step(tmp_path: Path, layout: str, step: str) -> None:
    root, serve = _setup(tmp_path, layout, serve_v2=False)
    assert _run(root, serve, layout, step, "promote", "2") == -signal.SIGKILL
    with Registry.open(root, serving={"m": Serving(make_pointer(layout, serve))}) as reg:
        served = _assert_consistent(reg, serve)
        switched = step in ("promote:switched", "promote:committed")
        assert served == ("2" if switched else "1")
        assert reg.get("m", "2").state == ("known-good" if switched else "candidate")
        outcomes = [a.outcome for a in reg.recovered]
        expected = {"promote:intent": ["reverted"], "promote:staged": ["reverted"],
                    "promote:switched": ["completed"], "promote:committed": []}[step]
        assert outcomes == expected
        if expected:
            assert reg.history("m")[-1].action == "recover-promote"
        # and the registry keeps working
        reg.promote("m", "2", reason="after the crash")
        assert _assert_consistent(reg, serve) == "2"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("step", STEPS["rollback"])
def test_rollback_killed_at_each_step(tmp_path: Path, layout: str, step: str) -> None:
    root, serve = _setup(tmp_path, layout, serve_v2=True)
    assert _run(root, serve, layout, step, "rollback") == -signal.SIGKILL
    with Registry.open(root, serving={"m": Serving(make_pointer(layout, serve))}) as reg:
        served = _assert_consistent(reg, serve)
        switched = step in ("rollback:switched", "rollback:committed", "rollback:reloaded")
        assert served == ("1" if switched else "2")
        assert reg.get("m", "2").state == ("quarantined" if switched else "known-good")
        assert reg.get("m", "1").state == "known-good"
        assert [a.outcome for a in reg.recovered] == (
            ["reverted"] if step in ("rollback:intent", "rollback:staged") else
            ["completed"] if step == "rollback:switched" else []
        )
        if not switched:
            result = reg.rollback("m", reason="after the crash")
            assert result.ok
            assert result.to_version == "1"
            assert _assert_consistent(reg, serve) == "1"


def test_uninterrupted_driver_run_needs_no_recovery(tmp_path: Path) -> None:
    root, serve = _setup(tmp_path, "current-link", serve_v2=True)
    assert _run(root, serve, "current-link", "no-such-step", "rollback") == 0
    with Registry.open(root, serving={"m": Serving(make_pointer("current-link", serve))}) as reg:
        assert reg.recovered == []
        assert _assert_consistent(reg, serve) == "1"


def test_a_failing_switch_in_a_live_process_resolves_its_own_intent(tmp_path: Path, monkeypatch) -> None:
    root, serve = _setup(tmp_path, "numbered", serve_v2=False)
    reg = Registry.open(root, serving={"m": Serving(make_pointer("numbered", serve))})
    pointer = reg.serving_for("m").pointer

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    # before the rename: the switch never happened -> reverted, nothing applied
    monkeypatch.setattr(pointer, "stage", disk_full)
    with pytest.raises(OSError, match="No space left"):
        reg.promote("m", "2", reason="x")
    monkeypatch.undo()
    assert reg.get("m", "2").state == "candidate"
    assert _assert_consistent(reg, serve) == "1"
    # after the rename (dropping the old number fails): the switch happened -> completed at once
    monkeypatch.setattr(pointer, "_drop_below", disk_full)
    with pytest.raises(OSError, match="No space left"):
        reg.promote("m", "2", reason="x")
    monkeypatch.undo()
    assert reg.get("m", "2").state == "known-good"
    assert reg.serving_target("m")[0] == "2"
    assert [e.reason for e in reg.history("m")][-1] == "interrupted promote: completed"
    reg.close()
    with Registry.open(root, serving={"m": Serving(make_pointer("numbered", serve))}) as again:
        assert again.recovered == []
        assert _assert_consistent(again, serve) == "2"  # cleanup dropped the stale number
