"""Progress of long work: counted exactly, shown on stderr (a bar on a terminal, log lines otherwise), and never
in the ``--json`` output on stdout."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import click
import numpy as np
import pytest

from goldwatch import progress
from goldwatch.cli._progress import LogReporter, TerminalReporter, make_reporter
from goldwatch.runtimes.base import ModelIdentity, Signature, TensorSpec, run_batches


class Collect:
    """A reporter that remembers every task and how each ended."""

    def __init__(self) -> None:
        self.started: list[progress.Task] = []
        self.ended: list[tuple[str, float, float | None, bool]] = []
        self.updates = 0

    def start(self, task: progress.Task) -> None:
        self.started.append(task)

    def update(self, task: progress.Task) -> None:
        self.updates += 1

    def finish(self, task: progress.Task, *, ok: bool) -> None:
        self.ended.append((task.label, task.snapshot().done, task.total, ok))


class NumpyLinear:
    """A Runtime in plain numpy: y = x @ w (what a user's own wrapper looks like)."""

    kind, device = "numpy", "cpu"

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
        self.signature = Signature(inputs=(TensorSpec("x", "float32", (None, 4)),),
                                   outputs=(TensorSpec("y", "float32", (None, 3)),))
        self.identity = ModelIdentity(kind="numpy", source="numpy-linear")
        self.calls = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"y": inputs["x"] @ self.w}

    def close(self) -> None:
        pass


def _fail_inside_a_task() -> None:
    with progress.task("broken", total=5):
        progress.advance(1)
        raise RuntimeError("boom")


def test_nothing_listens_by_default() -> None:
    assert not progress.listening()
    with progress.task("quiet", total=3) as task:
        progress.advance(3)
        assert progress.active() is None  # no reporter: the task is not even registered
    assert task.snapshot().done == 0


def test_nested_tasks_advance_the_innermost_and_failures_are_reported() -> None:
    seen = Collect()
    with progress.reporting(seen):
        with progress.task("outer", total=2, unit="steps") as outer:
            with progress.task("inner", total=10, unit="B"):
                progress.advance(4)
                progress.advance(6)
            outer.advance(2)
        with pytest.raises(RuntimeError, match="boom"):
            _fail_inside_a_task()
    assert seen.ended == [("inner", 10.0, 10, True), ("outer", 2.0, 2, True), ("broken", 1.0, 5, False)]
    assert progress.active() is None
    assert not progress.listening()


def test_advance_from_worker_threads_counts_every_unit() -> None:
    seen = Collect()
    with progress.reporting(seen), progress.task("threads", total=8 * 10_000) as task:
        workers = [threading.Thread(target=lambda: [progress.advance(1) for _ in range(10_000)]) for _ in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert task.snapshot().done == 80_000


def test_batches_report_every_sample_once() -> None:
    runtime = NumpyLinear()
    x = np.ones((103, 4), dtype=np.float32)
    seen = Collect()
    with progress.reporting(seen), progress.task("replay", total=103, unit="samples"):
        out = run_batches(runtime, {"x": x}, batch_size=10)
    assert out["y"].shape == (103, 3)
    assert runtime.calls == 11
    assert seen.ended == [("replay", 103.0, 103, True)]
    assert seen.updates == 11  # one per batch, the short last one included


def test_golden_build_reports_every_run(tmp_path: Path) -> None:
    from goldwatch.golden_sets import build_golden_set

    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    seen = Collect()
    with progress.reporting(seen):
        build_golden_set(NumpyLinear(), {"x": x}, tmp_path / "golden", repeats=3, batch_size=16)
    (build,) = [e for e in seen.ended if e[0].startswith("golden build")]
    assert build == ("golden build: 50 samples x 4 runs", 200.0, 200, True)  # the answers + 3 repeats


def test_log_lines_with_rate_and_eta_and_json_fields() -> None:
    from goldwatch.logs import configure_logging

    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    try:
        reporter = LogReporter(delay_s=0.0, interval_s=0.05)
        with progress.reporting(reporter), progress.task("hashing w.bin", total=4 << 20, unit="B"):
            progress.advance(1 << 20)
            threading.Event().wait(0.3)  # the ticker writes a running line meanwhile
            progress.advance(3 << 20)
    finally:
        configure_logging(level="info", fmt="text")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    running = [e for e in lines if e["progress"]["state"] == "running"]
    assert running, lines
    first = running[0]
    assert first["logger"] == "goldwatch.progress"
    assert first["msg"].startswith("hashing w.bin: 1.0 MiB of 4.0 MiB (25%), ")
    assert " left" in first["msg"]
    assert first["progress"]["total"] == 4 << 20
    assert first["progress"]["rate_per_s"] > 0
    assert lines[-1]["progress"]["state"] == "done"
    assert lines[-1]["msg"].startswith("hashing w.bin: done in ")


def test_short_work_prints_nothing() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("goldwatch.progress").addHandler(handler)
    try:
        with progress.reporting(LogReporter(delay_s=30.0, interval_s=10.0)), progress.task("quick", total=1):
            progress.advance(1)
    finally:
        logging.getLogger("goldwatch.progress").removeHandler(handler)
    assert stream.getvalue() == ""


def test_terminal_bar_shows_rate_and_eta() -> None:
    out = io.StringIO()
    with progress.reporting(TerminalReporter(delay_s=0.0, file=out)), progress.task("hashing", total=100, unit="B"):
        for _ in range(4):
            progress.advance(25)
            threading.Event().wait(0.25)
    text = out.getvalue()
    assert "hashing" in text
    assert "100%" in text
    assert "B/s" in text


def test_modes() -> None:
    assert make_reporter("off") is None
    assert isinstance(make_reporter("log"), LogReporter)
    assert isinstance(make_reporter("bar"), TerminalReporter)


@pytest.mark.parametrize("mode", ["log", "bar"])
def test_cli_progress_goes_to_stderr_never_into_json(tmp_path: Path, mode: str) -> None:
    artifact = tmp_path / "big.bin"
    artifact.write_bytes(os.urandom(8 << 20))
    env = {**os.environ, "GOLDWATCH_PROGRESS": mode, "GOLDWATCH_PROGRESS_DELAY": "0",
           "GOLDWATCH_PROGRESS_INTERVAL": "0.05", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["--log-format", "json"] if mode == "log" else []
    done = subprocess.run(
        [sys.executable, "-c", "from goldwatch.cli import main; main(prog_name='goldwatch')", *args,
         "fingerprint", str(artifact), "--out", str(tmp_path / "m.json"), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"] == 8 << 20  # stdout: the result, and only the result
    if mode == "log":
        events = [json.loads(line) for line in done.stderr.splitlines()]
        ends = [e["progress"] for e in events if e.get("progress", {}).get("state") == "done"]
        assert [(e["task"], e["done"]) for e in ends] == [("fingerprinting big.bin", 8 << 20)]
    else:
        assert "fingerprinting big.bin" in done.stderr
        assert "100%" in done.stderr


def test_registry_add_reports_the_bytes_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from safetensors.numpy import save_file

    from goldwatch.cli import main

    save_file({"w": np.ones((512, 512), np.float32), "b": np.zeros(512, np.float32)}, str(tmp_path / "m.safetensors"))
    monkeypatch.setenv("GOLDWATCH_PROGRESS", "log")
    monkeypatch.setenv("GOLDWATCH_PROGRESS_DELAY", "0")
    result = CliRunner().invoke(main, ["--log-format", "json", "registry", "--registry-root", str(tmp_path / "reg"),
                                       "add", "m", str(tmp_path / "m.safetensors"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "1"
    (done,) = [json.loads(line)["progress"] for line in result.stderr.splitlines() if '"state": "done"' in line]
    # copied into the store, digested, and its tensors fingerprinted: three reads of the tensor bytes, two of the
    # header; the estimate is within the header's size
    assert done["task"] == "registry add m.safetensors"
    assert 0.999 < done["done"] / done["total"] <= 1.0


@click.command()
def fake_service() -> None:
    """Stands for `goldwatch serve`: reports whether a progress reporter is installed."""
    click.echo(f"listening={progress.listening()}")


def test_services_never_show_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from goldwatch.cli import main

    monkeypatch.setenv("GOLDWATCH_PROGRESS", "log")
    monkeypatch.setitem(main.lazy, "serve", "tests.test_progress:fake_service")  # type: ignore[attr-defined]
    monkeypatch.setitem(main.lazy, "not-a-service", "tests.test_progress:fake_service")  # type: ignore[attr-defined]
    assert CliRunner().invoke(main, ["serve"]).stdout.strip() == "listening=False"
    assert CliRunner().invoke(main, ["not-a-service"]).stdout.strip() == "listening=True"


def test_isolated_work_does_not_advance_the_task_counting_its_own_units() -> None:
    """A drill counts scenarios; the bytes hashed while it restores a version go to no task of theirs."""
    seen = Collect()
    with progress.reporting(seen), progress.task("drill", total=2, unit="scenarios"):
        for _ in range(2):
            with progress.isolated():
                progress.advance(1 << 20)
                with progress.task("golden build", total=8, unit="samples"):
                    progress.advance(8)
            progress.advance(1)
    assert seen.ended == [("golden build", 8.0, 8, True), ("golden build", 8.0, 8, True), ("drill", 2.0, 2, True)]
    assert progress.active() is None
