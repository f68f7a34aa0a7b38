"""Rollback of a 100 MB model served by a real MLServer: pointer switch + reload + ready, phase by phase.

Target (issue 6): switch + reload + ready <= 2 s on this machine. Anchor measured in the same run: restarting
MLServer to pick up the old version (process start to ready, the usual way to "roll back" a server without a
repository API). Ratios are printed and recorded in benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.bench_rollback [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._results import record, table
from goldwatch.runtimes.mlserver_testing import start_mlserver, write_npz_model_dir
from goldwatch.watchdog.registry import OipReloader, Registry, Serving, make_pointer

TARGET_S = 2.0
PHASES = ["select", "switch", "verify_after", "reload", "ready"]


def _weights(path: Path, seed: int, size_mb: int) -> Path:
    path.mkdir(parents=True)
    rows = size_mb * 2**20 // (4 * 4)
    w = np.random.default_rng(seed).standard_normal((rows, 4), dtype=np.float32)
    np.savez(path / "weights.npz", w=w)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 MB model, 3 rollbacks (for development)")
    args = parser.parse_args()
    size_mb, repeats = (10, 3) if args.quick else (100, 5)

    with tempfile.TemporaryDirectory(prefix="gw-bench-rollback-") as d:
        tmp = Path(d)
        repo = tmp / "repo"
        model_dir = write_npz_model_dir(repo, "fraud")
        reg = Registry.open(tmp / "reg")
        # MLServer reads one model directory (no numbered versions): the current-link layout is the one it uses.
        pointer = make_pointer("current-link", model_dir)
        reg.attach("fraud", Serving(pointer))
        for seed in (1, 2):
            mv = reg.add("fraud", _weights(tmp / "src" / str(seed), seed, size_mb))
            reg.promote("fraud", mv.version, reason="benchmark setup")
        artifact_mb = reg.get("fraud", "1").size_bytes / 2**20

        with start_mlserver(repo) as server:
            reloader = OipReloader(server.base_url, model_name="fraud")
            reg.attach("fraud", Serving(pointer, reloader=reloader, ready_timeout_s=60))
            runs = []
            for _ in range(repeats):
                # alternate 2 -> 1 -> 2 ...: both stay known-good so every run is a full, verified rollback
                result = reg.rollback("fraud", actor="benchmark", reason="benchmark", quarantine_current=False)
                if not result.ok:
                    raise SystemExit(f"rollback failed: {result.error}")
                runs.append(result.phases)
            reloader.close()

        # anchor: a cold MLServer start that loads the same model (what a restart-based rollback costs)
        restarts = []
        for _ in range(2 if args.quick else 3):
            t0 = time.perf_counter()
            with start_mlserver(repo):
                restarts.append(time.perf_counter() - t0)
        reg.close()

    med = {p: statistics.median(r[p] for r in runs) for p in PHASES}
    critical = med["switch"] + med["reload"] + med["ready"]
    total = sum(med.values())
    restart = statistics.median(restarts)
    rows = [[p, f"{med[p] * 1000:.1f}"] for p in PHASES]
    rows += [["**switch + reload + ready**", f"**{critical * 1000:.1f}**"], ["total (incl. verification)",
                                                                           f"{total * 1000:.1f}"]]
    lines = [
        f"Model: {artifact_mb:.0f} MB weights.npz, MLServer 1.7 (parallel workers off), current-link layout, "
        f"median of {repeats} rollbacks (each re-verifies the target's SHA-256 manifest in `select`).",
        "",
        table(["phase", "median ms"], rows),
        "",
        f"- target switch + reload + ready <= {TARGET_S:.0f} s: **{critical:.3f} s** "
        f"({'met' if critical <= TARGET_S else 'NOT met'}; {critical / TARGET_S:.2f}x of the budget)",
        f"- anchor, MLServer restart to ready with the old version: {restart:.2f} s; rollback via the repository "
        f"API is {restart / critical:.1f}x faster (whole rollback incl. verification: {restart / total:.1f}x)",
        "- The switch now includes copying the version into the serving directory (the served files are a private "
        "copy, so corrupting them cannot touch the stored backups); most of `switch` is that 100 MB copy.",
    ]
    body = "\n".join(lines)
    print(body)
    record("bench_rollback", body, command="python -m benchmarks.bench_rollback" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
