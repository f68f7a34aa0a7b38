"""The disaster-recovery drill's targets (issue 15), measured by ``goldwatch drill all --local-stack`` itself.

Each run is the command a user runs (a subprocess: the local stack is built, every scenario's fault is injected,
measured, undone, the stack restored and torn down) and its JSON report is read back. Targets:

* serving RTO for scenarios 1-4 at most 5 s, 2 s for scenarios 2 and 3 (the figure is the later of the sidecar's
  verified recovery and the moment the clients' answers, sent through the gateway every 50 ms, were right for good);
* the RPO of scenario 5 measured exactly: the sidecar must name the newest backup that restores and verifies and
  give its age to the microsecond against the backup's own record;
* the whole drill (stack built, six faults, stack torn down) under 3 minutes.

Anchors in the same run: MLServer started from cold with the model (what recovering by hand starts with: a person
restarting or redeploying the server), and, for the restore-and-verify of scenario 5, a bare copy of the same
snapshot plus hashlib's SHA-256 of it (the floor of "restore it and check it").

    .venv/bin/python -m benchmarks.bench_drill [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._results import record, table

TOTAL_TARGET_S = 180.0
TARGETS = {"1": 5.0, "2": 2.0, "3": 2.0, "3b": 5.0, "4": 5.0}


def _drill(out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "goldwatch", "drill", "all", "--local-stack", "--out", str(out),
                           "--json"], capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"goldwatch drill failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    data["wall_s"] = wall
    data["exit"] = done.returncode
    return data


def _restore_anchor(size_mb: int) -> tuple[float, float, int]:
    """(bare copy + SHA-256 of a snapshot's files, goldwatch's restore-and-verify of the same snapshot, bytes):
    medians of 3 after a warm-up, on an asset of ``size_mb`` MiB in 4 MiB files."""
    from goldwatch.config import AssetConfig
    from goldwatch.watchdog.recovery.assets import take_backup, verify_backup

    root = Path(tempfile.mkdtemp(prefix="bench-drill-restore-"))
    try:
        data = root / "dataset"
        data.mkdir()
        rng = os.urandom
        for i in range(max(1, size_mb // 4)):
            (data / f"part-{i:03d}.bin").write_bytes(rng(4 << 20))
        asset = AssetConfig(name="bench", path=data, backups=root / "backups", rpo_seconds=3600)
        backup = take_backup(asset)
        size = sum(p.stat().st_size for p in backup.data.rglob("*") if p.is_file())

        def bare() -> float:
            t0 = time.perf_counter()
            copy = root / "copy"
            shutil.copytree(backup.data, copy)
            for path in sorted(copy.rglob("*")):
                if path.is_file():
                    digest = hashlib.sha256()
                    with open(path, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            digest.update(chunk)
            shutil.rmtree(copy)  # the same work as goldwatch's: the scratch copy does not stay
            return time.perf_counter() - t0

        def ours() -> float:
            t0 = time.perf_counter()
            result = verify_backup(asset, backup, root / "scratch")
            took = time.perf_counter() - t0
            assert result.ok, result.problems
            return took

        bare()
        ours()  # warm: imports, page cache
        anchor = statistics.median(bare() for _ in range(3))
        mine = statistics.median(ours() for _ in range(3))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return anchor, mine, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="drills to run (each builds its own stack)")
    parser.add_argument("--quick", action="store_true", help="one run, not recorded in RESULTS.md")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-drill-") as tmp:
        for i in range(runs):
            out = Path(tmp) / f"run{i}"
            data = _drill(out)
            results.append(data)
            print(f"run {i + 1}/{runs}: {'PASS' if data['ok'] else 'FAIL'} in {data['wall_s']:.1f} s: "
                  + ", ".join(f"{r['key']} {r['measured_s']}" for r in data["results"]), file=sys.stderr)
    load_after = os.getloadavg()[0]
    anchor_s, ours_s, size = _restore_anchor(32 if args.quick else 256)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for data in results:
        for r in data["results"]:
            by_key.setdefault(r["key"], []).append(r)
    rows = []
    all_met = all(d["ok"] for d in results)
    for key, items in by_key.items():
        measured = [float(r["measured_s"]) for r in items if r["measured_s"] is not None]
        first = items[0]
        target = first["target_s"]
        worst = max(measured) if measured else None
        met = all(r["met"] for r in items)

        def med(name: str, items: list[dict[str, Any]] = items) -> str:
            values = [float(r[name]) for r in items if r.get(name) is not None]
            return f"{statistics.median(values):.2f}" if values else "-"

        lost = [int(r["client"]["lost"]) for r in items if r.get("client")]
        name = first["slug"] + (" (no known-good left)" if key == "3b" else "")
        rows.append([key, name, f"{first['target_name']} <= {target:g} s",
                     f"{statistics.median(measured):.3f}" if measured else "-",
                     f"{worst:.3f}" if worst is not None else "-", "met" if met else "**NOT met**",
                     med("detected_s"), med("page_delivered_s"), med("acted_s"), med("restored_s"),
                     med("resolved_s"), f"{max(lost)}" if lost else "-"])
    rpo = [r["rpo"] for r in by_key.get("5", []) if r.get("rpo")]
    exact = all(p["exact"] for p in rpo) and bool(rpo)
    walls = [d["wall_s"] for d in results]
    mlserver = statistics.median(d.get("mlserver_start_s") or 0.0 for d in results)
    serving = [float(r["measured_s"]) for k, items in by_key.items() if k != "5" for r in items
               if r["measured_s"] is not None]
    body = [
        f"### 1. `goldwatch drill all --local-stack`, {runs} run(s), each on a freshly built stack",
        "",
        "Two MLServer 1.7 processes (the primary with goldwatch's fault-injecting runtime; a CPU server with the "
        "fallback and the CPU variant), the gateway, the strict PagerDuty stand-in and `goldwatch serve` at the "
        "drill stack's intervals (files 0.25 s, golden 0.4 s, readiness/device 0.25 s, server grace 1 s, route "
        "back after 0.5 s). Seconds after the fault; median over the runs, and the worst measured figure.",
        "",
        table(["#", "scenario", "target", "measured (median)", "measured (worst)", "status", "detected",
               "page at PagerDuty", "acted", "restored", "resolved", "client requests lost (max)"], rows),
        "",
        f"- the whole drill (stack built, six faults measured and undone, stack torn down): median "
        f"{statistics.median(walls):.1f} s, worst {max(walls):.1f} s; target < {TOTAL_TARGET_S:.0f} s: "
        + ("met" if max(walls) < TOTAL_TARGET_S else "**NOT met**"),
        f"- anchor, MLServer started from cold with the model (a person restarting or redeploying it): "
        f"{mlserver:.2f} s (median), {mlserver / max(serving):.1f}x the worst serving recovery measured above "
        f"({max(serving):.2f} s), before anything is checked or routed" if serving and mlserver
        else "- anchor: not measured",
        f"- scenario 5: the RPO was exact in {sum(1 for p in rpo if p['exact'])} of {len(rpo)} run(s) (the sidecar "
        f"named the backup before the corrupted one and gave its age to the microsecond): "
        + ("met" if exact else "**NOT met**"),
        "",
        f"### 2. Restore-and-verify of one snapshot: {size / 2**20:.0f} MiB in 4 MiB files (median of 3, warm)",
        "",
        table(["", "s", "MB/s", "ratio"], [
            ["goldwatch: restore (copy) into scratch, SHA-256 of every file against the snapshot's manifest, "
             "scratch removed",
             f"{ours_s:.3f}", f"{size / ours_s / 1e6:.0f}", f"{ours_s / anchor_s:.2f}x"],
            ["anchor: shutil.copytree + hashlib SHA-256 of the copy, then the copy removed", f"{anchor_s:.3f}",
             f"{size / anchor_s / 1e6:.0f}", "1.00x"]]),
        "",
        f"- every target met in every run: {'yes' if all_met else '**no**'}",
        f"- load average (1 min) before the drills {load_before:.1f}, after them {load_after:.1f}: "
        + ("a busy shared 2-core machine (other work was running); the figures are upper bounds"
           if max(load_before, load_after) > 2 else "a quiet machine"),
    ]
    text = "\n".join(body)
    print(text)
    if not args.quick:
        record("drill", text, command=f"python -m benchmarks.bench_drill --runs {runs}")
    return 0 if all_met and max(walls) < TOTAL_TARGET_S and exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
