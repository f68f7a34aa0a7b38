"""The in-process agent on CPU: its fingerprinting speed, a full pass over a 100 MB and a 1 GB model, whether it
really releases the GIL, and what it costs a real MLServer under steady inference load.

Targets (issue 13): with the agent at its default interval (60 s) and duty cycle (1% of a core), a steady inference
load on MLServer loses at most 1% throughput and its p99 latency rises at most 2%; report bytes/s checked and the
time of one full pass over a 100 MB and a 1 GB model.

Measured in the same run, with their anchors:

* pass speed: the agent's unthrottled pass (one thread, 4 MiB slices) against the single-threaded fingerprint of
  one contiguous buffer (the kernel it slices) and a single-threaded numpy read of the same bytes (``sum`` over a
  uint64 view: what one core's memory reads allow); the paced pass at the default duty cycle;
* the GIL: a pure-Python counting thread and a torch inference thread (1 intra-op thread), each alone and while
  the agent runs unthrottled (a thread that held the GIL would halve the first);
* serving: the same MLServer model (a ~100 MB torch MLP, ``GoldwatchModel``) without the agent and with it, in
  alternating windows (A B A B) of closed-loop load from client threads; throughput and p99 per window. The spread
  between the two baseline windows is the noise floor the difference is to be read against. A stress point runs the
  agent continuously (interval 1 s) at the default duty cycle.

    .venv/bin/python -m benchmarks.bench_agent [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks._results import record, table
from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer
from goldwatch.integrity.manifest import ArtifactManifest, FileEntry
from goldwatch.runtimes.mlserver_testing import start_mlserver, write_model_settings
from goldwatch.watchdog.agent import DEFAULT_DUTY_CYCLE, watch

MB = 10**6
_EMPTY = ArtifactManifest(kind="file", digest="sha256", files=(FileEntry("none", 0, "0" * 64, "file"),))


def _module(total_bytes: int, tensor_bytes: int = 64 << 20) -> Any:
    import torch

    module = torch.nn.Module()
    gen = torch.Generator().manual_seed(0)
    left, i = total_bytes, 0
    while left > 0:
        n = min(tensor_bytes, left) // 4
        module.register_parameter(f"w{i}", torch.nn.Parameter(torch.randn(n, generator=gen)))
        left -= n * 4
        i += 1
    return module


def pass_speed(size: int, *, paced: bool) -> dict[str, float]:
    """Unthrottled pass and its anchors (interleaved, best of 3 each), and the paced pass at the default duty."""
    module = _module(size)
    agent = watch(module, manifest=_EMPTY, model=f"bench-{size}", start=False)  # every tensor pinned at load
    flat = [p.detach().numpy().view(np.uint8) for p in module.parameters()]
    agent.check_now(report=False)  # warm caches and page tables
    t_agent, t_kernel, t_read = [], [], []
    for _ in range(3):
        agent.check_now(report=False)
        assert agent.last_pass is not None
        t_agent.append(agent.last_pass.wall_s)  # unthrottled: wall time, like the anchors
        t0 = time.perf_counter()
        for a in flat:
            fingerprint_buffer(a, threads=1)
        t_kernel.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for a in flat:
            a.view(np.uint64).sum()
        t_read.append(time.perf_counter() - t0)
    out = {"bytes": float(size), "agent_s": min(t_agent), "agent_bps": size / min(t_agent),
           "kernel_bps": size / min(t_kernel), "read_bps": size / min(t_read)}
    if paced:
        agent._check(paced=True)
        assert agent.last_full_pass is not None
        out["paced_wall_s"] = agent.last_full_pass.wall_s
        out["paced_duty"] = agent.last_full_pass.duty_cycle
    out["paced_pred_s"] = min(t_agent) / DEFAULT_DUTY_CYCLE
    return out


def _rate_alongside(work: Callable[[], None], seconds: float, competitor: Callable[[], None] | None) -> float:
    """Iterations/s of ``work`` on this thread while ``competitor`` runs in a loop on another (or alone)."""
    stop = threading.Event()
    other = None
    if competitor is not None:
        def loop() -> None:
            while not stop.is_set():
                competitor()
        other = threading.Thread(target=loop, daemon=True)
        other.start()
        time.sleep(0.2)
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        work()
        count += 1
    rate = count / (time.perf_counter() - t0)
    stop.set()
    if other is not None:
        other.join()
    return rate


def gil_check(seconds: float) -> dict[str, dict[str, float]]:
    """Rates of a pure-Python loop and of torch inference next to: nothing, hashlib (C code that releases the GIL:
    the anchor for "only the core is shared"), the agent, and a pure-Python loop (holds the GIL: the other anchor)."""
    import torch

    agent = watch(_module(64 << 20), manifest=_EMPTY, model="bench-gil", start=False)
    blob = np.random.default_rng(0).integers(0, 255, 16 << 20, dtype=np.uint8).tobytes()

    def python_work() -> None:
        x = 0
        for i in range(2000):
            x += i * i

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 16)).eval()
    x = torch.randn(64, 256)

    def torch_work() -> None:
        with torch.inference_mode():
            net(x)

    competitors: dict[str, Callable[[], None] | None] = {
        "alone": None, "hashlib": lambda: hashlib.sha256(blob).digest(),
        "agent": lambda: agent.check_now(report=False), "python loop": python_work,
    }
    out: dict[str, dict[str, float]] = {}
    for name, work in (("pure-Python loop", python_work), ("torch inference (1 thread)", torch_work)):
        out[name] = {c: statistics.median(_rate_alongside(work, seconds, fn) for _ in range(3))
                     for c, fn in competitors.items()}
    return out


def _write_served_model(root: Path, hidden: int) -> Path:
    import torch
    from safetensors.torch import save_file

    from goldwatch.examples import KINDS
    from goldwatch.examples.models import tabular_mlp
    from goldwatch.integrity import build_manifest

    torch.manual_seed(0)
    module = tabular_mlp(hidden=hidden)
    folder = root / "model"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "weights.safetensors"))
    descriptor = {"format": "goldwatch-model", "version": 1, "factory": KINDS["tabular"].factory,
                  "kwargs": {"hidden": hidden}, "weights": "weights.safetensors",
                  "signature": KINDS["tabular"].signature.to_dict()}
    (folder / "goldwatch-model.json").write_text(json.dumps(descriptor))
    build_manifest(folder).save(root / "model.manifest.json")
    return folder


def _load_window(url: str, seconds: float, clients: int, rows: int) -> tuple[float, list[float]]:
    """Closed-loop load from ``clients`` threads for ``seconds``: (requests/s, latencies in s)."""
    x = np.random.default_rng(1).standard_normal((rows, 8)).astype(np.float32)
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        with httpx.Client(timeout=60, trust_env=False) as c:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = c.post(url, json=body)
                latencies[i].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(r.text[:300])
                    return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    flat = [v for lat in latencies for v in lat]
    return len(flat) / (time.perf_counter() - t0), flat


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _agent_busy(server: Any) -> float:
    """The server's goldwatch_agent_busy_seconds_total (0 without an agent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10, trust_env=False).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "goldwatch_agent_busy_seconds_total")


def _signal(server: Any, sig: int) -> None:
    os.killpg(server.process.pid, sig)  # the server and its children run in their own process group


def serving(root: Path, *, hidden: int, window_s: float, rounds: int,
            conditions: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One MLServer per condition, all started once; windows rotate between them (the servers not being measured
    are stopped with SIGSTOP, so an idle server -- and its agent -- takes no CPU from the one measured). The order
    alternates between rounds, so slow drifts of the machine's load fall on every condition alike."""
    folder = _write_served_model(root, hidden)
    servers: dict[str, Any] = {}
    out: dict[str, dict[str, Any]] = {label: {"rps": [], "lat": [], "busy": 0.0, "cpu": 0.0}
                                      for label, _ in conditions}
    try:
        for label, options in conditions:
            repo = root / f"repo-{len(servers)}"
            write_model_settings(repo, "m", implementation="goldwatch.watchdog.agent.mlserver.GoldwatchModel",
                                 extra={"parameters": {"uri": str(folder), "extra": {"goldwatch": options}}})
            servers[label] = start_mlserver(repo, timeout=180)
            servers[label].wait_ready(model="m", timeout=180)
            _signal(servers[label], signal.SIGSTOP)
        labels = [label for label, _ in conditions]
        for r in range(rounds):
            for label in labels if r % 2 == 0 else labels[::-1]:
                server = servers[label]
                _signal(server, signal.SIGCONT)
                try:
                    url = f"{server.model_url('m')}/infer"
                    _load_window(url, 1.0, 2, 16)  # warm-up after the pause
                    busy0, cpu0 = _agent_busy(server), _cpu_seconds(server.process.pid)
                    rps, lat = _load_window(url, window_s, 2, 16)
                    out[label]["busy"] += _agent_busy(server) - busy0
                    out[label]["cpu"] += _cpu_seconds(server.process.pid) - cpu0
                finally:
                    _signal(server, signal.SIGSTOP)
                out[label]["rps"].append(rps)
                out[label]["lat"] += lat
                print(f"  round {r} {label:24s} {rps:8.1f} req/s", flush=True)
    finally:
        for server in servers.values():
            with contextlib.suppress(ProcessLookupError):
                _signal(server, signal.SIGCONT)
            server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 2 rounds, the 1 GB pass unpaced only")
    args = parser.parse_args()
    window, rounds = (5.0, 2) if args.quick else (10.0, 8)

    print("pass speed ...", flush=True)
    speed = {100: pass_speed(100 * MB, paced=True), 1000: pass_speed(1000 * MB, paced=False)}
    print("GIL ...", flush=True)
    gil = gil_check(1.0 if args.quick else 2.0)
    print("serving ...", flush=True)
    conditions = [("baseline (no agent)", {"watch": False}), ("agent (defaults)", {}),
                  ("agent (a pass every 1 s)", {"interval_s": 1.0})]
    with tempfile.TemporaryDirectory(prefix="gw-bench-agent-") as d:
        served = serving(Path(d), hidden=3500, window_s=window, rounds=rounds, conditions=conditions)

    base = served["baseline (no agent)"]
    serve_rows = []
    verdict = []
    for label, _ in conditions:
        got = served[label]
        ratios = [a / b for a, b in zip(got["rps"], base["rps"])]  # paired: the same round
        p99 = float(np.percentile(got["lat"], 99) * 1000)
        p99_base = float(np.percentile(base["lat"], 99) * 1000)
        change = statistics.median(ratios) - 1
        spread = (min(ratios) - 1, max(ratios) - 1)
        share = got["busy"] / got["cpu"] if got["cpu"] > 0 else float("nan")
        serve_rows.append([label, f"{statistics.mean(got['rps']):.1f}", f"{change:+.2%}",
                           f"{spread[0]:+.1%} .. {spread[1]:+.1%}", f"{p99:.1f}", f"{p99 / p99_base - 1:+.1%}",
                           f"{share:.3%}"])
        if label == "agent (defaults)":
            verdict.append(f"with the agent at its defaults: throughput {change:+.2%} (median of {len(ratios)} "
                           f"paired windows; target: loss <= 1%), p99 {p99 / p99_base - 1:+.1%} (target <= +2%); "
                           f"the agent used {share:.3%} of the server's CPU time, the most it can take from "
                           "CPU-bound serving")
    halves = [statistics.mean(base["rps"][i::2]) for i in (0, 1)]
    noise = abs(halves[0] / halves[1] - 1) if halves[1] else float("nan")
    verdict.append(f"noise floor: the baseline's even vs odd windows differ by {noise:.1%}")

    speed_rows = []
    for mb, sp in speed.items():
        paced = f"{sp['paced_wall_s']:.1f} s measured (duty {sp['paced_duty']:.3f})" if "paced_wall_s" in sp \
            else f"{sp['paced_pred_s']:.0f} s (busy / duty)"
        speed_rows.append([f"{mb} MB", f"{sp['agent_s']:.3f} s", f"{sp['agent_bps'] / 1e9:.2f} GB/s",
                           f"{sp['agent_bps'] / sp['kernel_bps']:.2f}", f"{sp['agent_bps'] / sp['read_bps']:.2f}",
                           paced])
    comps = ["alone", "hashlib", "agent", "python loop"]
    gil_rows = [[work, *(f"{rates[c]:.0f}/s ({rates[c] / rates['alone']:.2f})" for c in comps)]
                for work, rates in gil.items()]
    model_mb = 4 * (8 * 3500 + 3500 + 2 * (3500 * 3500 + 3500) + 3500 * 3 + 3) / 1e6
    body = f"""
Full pass over resident float32 weights (64 MB tensors) on one thread, unthrottled, and at the default duty cycle
({DEFAULT_DUTY_CYCLE:.0%} of a core). Anchors: the single-threaded fingerprint kernel over the same whole buffers,
and a single-threaded numpy read of them (`sum` of a uint64 view).

{table(["model", "unthrottled pass", "bytes/s checked", "vs kernel", "vs numpy read", "pass at the default duty"],
       speed_rows)}

Does the agent release the GIL? Iterations/s of work on one thread while another thread runs, in a loop: nothing;
hashlib.sha256 over 16 MB (C code that releases the GIL: only the CPU is shared); the agent's unthrottled pass; a
pure-Python loop (holds the GIL). Ratio to "alone" in brackets. The agent's column should match hashlib's, not the
pure-Python loop's.

{table(["work measured", *comps], gil_rows)}

Serving: MLServer (`GoldwatchModel`, tabular MLP with 3500 hidden units, {model_mb:.0f} MB of float32 weights),
closed-loop load from 2 client threads (16 rows per request). One server per condition, all started once; {rounds}
rounds of {window:.0f} s windows rotate between them (order reversed every other round); the servers not measured
are paused with SIGSTOP. The agent server's pass schedule runs on wall time while it is paused, so it does about
three times the steady-state work per measured second: the figures overstate the agent's cost. Change: median of
the per-round ratios to the baseline (range in the next column); p99 over all requests of a condition. The last
column is independent of the machine's other load: the agent's busy time (its own metric) over the server
process's CPU time (/proc) in the same windows -- an upper bound on the throughput a CPU-bound server can lose.

{table(["server", "requests/s", "change", "range", "p99 ms", "p99 change", "agent / server CPU time"],
       serve_rows)}

{"; ".join(verdict)}.
"""
    print(body)
    record("agent", body, command="python -m benchmarks.bench_agent" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
