"""GPU drift benchmark: KS on 1,000,000 x 1,000 CUDA tensors vs a scipy per-column loop on the CPU; MMD on CUDA.

Needs a CUDA GPU and torch. The data are generated on the device (no host transfer in the timing). The scipy
loop over 1,000 columns of 1,000,000 rows would take many minutes, so it runs on ``--scipy-columns`` columns (the
same columns, copied to the host) and its time is scaled linearly to all columns -- the loop is per column, so
the scaling is exact up to noise. p-values are compared on those columns.

Run: ``.venv/bin/python -m benchmarks.gpu_detectors [--quick]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._results import record, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 x 100 instead of 1,000,000 x 1,000")
    parser.add_argument("--scipy-columns", type=int, default=10)
    args = parser.parse_args()

    import torch
    from scipy import stats

    from goldwatch.detectors import ks_2samp, mmd_test

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    n, features = (100_000, 100) if args.quick else (1_000_000, 1_000)
    gen = torch.Generator(device=device).manual_seed(0)
    ref = torch.randn(n, features, device=device, dtype=torch.float64, generator=gen)
    cur = torch.randn(n, features, device=device, dtype=torch.float64, generator=gen)
    cur[:, : features // 10] += 0.005

    ks_2samp(ref[:1000, :4], cur[:1000, :4])  # CUDA context, kernels, scipy imports out of the timing
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = ks_2samp(ref, cur)
    torch.cuda.synchronize()
    t_gpu = time.perf_counter() - t0

    cols = np.linspace(0, features - 1, args.scipy_columns).astype(int)
    host_ref = ref[:, cols].cpu().numpy()
    host_cur = cur[:, cols].cpu().numpy()
    t0 = time.perf_counter()
    p_scipy = np.array([stats.ks_2samp(host_ref[:, i], host_cur[:, i]).pvalue for i in range(cols.size)])
    t_cols = time.perf_counter() - t0
    t_scipy = t_cols * features / cols.size
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(res.pvalue[cols] - p_scipy) / np.abs(p_scipy)
    max_diff = float(np.max(np.where(res.pvalue[cols] == p_scipy, 0.0, diff)))

    m = 20_000 if args.quick else 100_000
    sub_ref, sub_cur = ref[:m, :16], cur[:m, :16]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    mmd = mmd_test(sub_ref, sub_cur, n_permutations=100)
    torch.cuda.synchronize()
    t_mmd = time.perf_counter() - t0

    rows = [
        [f"KS {n:,} x {features:,} (asymptotic)", f"{t_gpu:.2f}", f"{t_scipy:.1f} (from {cols.size} columns)",
         f"{t_scipy / t_gpu:.0f}x", f"{max_diff:.1e}"],
        [f"MMD {m:,} x 16 per side, 100 permutations", f"{t_mmd:.2f}", "-", "-", f"p={mmd.pvalue:.3f}"],
    ]
    body = table(["case", "goldwatch on GPU s", "scipy loop on CPU s", "speed-up", "max rel. p diff / result"],
                 rows) + f"\n\nGPU: {name}."
    print(body)
    record("detectors-gpu", body, command="python -m benchmarks.gpu_detectors" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
