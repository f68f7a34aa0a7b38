"""Golden replay on a CUDA GPU: cross-device tolerances, false alarms CPU vs CUDA, fault matrix on the GPU.

Run on a machine with a GPU: ``.venv/bin/python -m benchmarks.gpu_golden_sets [--quick]``

1. For each example model, a golden set is built from the state-dict model on CPU with noise measured on CPU
   *and* CUDA (the tolerance covers cross-device kernel differences, e.g. TF32); the table shows the observed
   per-device noise and the resulting tolerance.
2. 100 clean replays on each device (and one cross-device replay) must raise no alarm.
3. The fault-injection matrix with the model resident on the GPU (golden set built there).
4. Replay overhead over raw inference on the GPU (same batches, alternating, best of each).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import record, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 clean replays instead of 100")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: this benchmark needs one (see benchmarks/bench_replay.py for the CPU figures)")
        sys.exit(2)
    from goldwatch.examples import KINDS, write_example
    from goldwatch.examples.faults import fault_matrix
    from goldwatch.golden_sets import build_golden_set, replay
    from goldwatch.golden_sets.build import run_batches
    from goldwatch.runtimes import load_model

    clean = 20 if args.quick else 100
    started = time.perf_counter()
    noise_rows, alarm_rows, speed_rows, matrices = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("tabular", "conv"):
            art = write_example(kind, Path(tmp) / kind, formats=("torch",))
            model = art.models["state_dict"]
            golden = build_golden_set(model, art.inputs, Path(tmp) / kind / "golden", labels=art.labels, repeats=5)
            tol = golden.tolerances["logits"]
            d = tol.derivation
            noise_rows.append([
                kind, ", ".join(d["devices"]), f"{d['per_device']['cpu']['max_abs']:.3g}",
                f"{d['per_device'].get('cuda', {}).get('max_abs', float('nan')):.3g}", f"{tol.atol:.3g}",
                d["bound_by"],
            ])
            cpu_rt, gpu_rt = load_model(model, device="cpu"), load_model(model, device="cuda")
            alarms = {dev: sum(not replay(rt, golden).ok for _ in range(clean)) for dev, rt in
                      (("cpu", cpu_rt), ("cuda", gpu_rt))}
            cross = replay(model, golden, cross_device=True)
            alarm_rows.append([kind, clean, alarms["cpu"], alarms["cuda"], "pass" if cross.ok else "FAIL"])
            spec = KINDS[kind]
            x, _ = spec.data(n=4096, seed=2)
            big = build_golden_set(gpu_rt, {spec.input_name: x}, None, repeats=2)
            raw_t, rep_t = [], []
            for _ in range(9):
                t0 = time.perf_counter()
                run_batches(gpu_rt, {spec.input_name: x}, batch_size=512)
                torch.cuda.synchronize()
                raw_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                replay(gpu_rt, big, batch_size=512)
                rep_t.append(time.perf_counter() - t0)
            raw, rep = min(raw_t), min(rep_t)
            speed_rows.append([kind, 4096, f"{raw * 1e3:.2f}", f"{rep * 1e3:.2f}", f"{rep / raw:.3f}"])
            matrices.append(fault_matrix(kind, device="cuda", clean_replays=clean))
            print(noise_rows[-1], alarm_rows[-1], speed_rows[-1], flush=True)
    body = "\n\n".join([
        "### Calibrated noise, CPU and CUDA\n\n" + table(
            ["model", "devices", "CPU noise (max abs)", "CUDA noise (max abs)", "atol", "bound by"], noise_rows),
        "### False alarms over clean replays\n\n" + table(
            ["model", "replays per device", "CPU alarms", "CUDA alarms", "cross-device replay"], alarm_rows),
        "### Fault matrix with the model on the GPU\n\n" + "\n\n".join(m.to_markdown() for m in matrices),
        "### Replay overhead on the GPU (same batches, best of 9)\n\n" + table(
            ["model", "samples", "raw run ms", "replay ms", "ratio"], speed_rows),
        f"Total run time {time.perf_counter() - started:.0f} s.",
    ])
    record("golden replay (GPU)", body, command="python -m benchmarks.gpu_golden_sets" + (" --quick" * args.quick))


if __name__ == "__main__":
    main()
