"""Resident fingerprint on a CUDA GPU: the fused Triton kernel and the eager torch path, with a 7B-parameter set.

Allocates bf16 tensors shaped like a 7B decoder (32 layers of attention + MLP weights, embeddings; ~13.5 GB), then
times, in the same run: a plain device read of the same bytes (``sum`` over an int32 view: the HBM read anchor),
the fused kernel, and the eager torch path. Before timing it checks that fused, eager and the CPU numpy path give
the same fingerprint bit for bit on a sample of tensors. Needs a GPU with ~16 GB free; ``--quick`` uses 1/8 of it.

    .venv/bin/python -m benchmarks.gpu_integrity [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from benchmarks._results import record, table


def _shapes(scale: int) -> list[tuple[str, tuple[int, int]]]:
    hidden, inter, vocab, layers = 4096, 11008, 32000, 32 // scale
    shapes = [("embed_tokens.weight", (vocab, hidden)), ("lm_head.weight", (vocab, hidden))]
    for i in range(layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes.append((f"layers.{i}.self_attn.{name}.weight", (hidden, hidden)))
        for name, shape in (("gate_proj", (inter, hidden)), ("up_proj", (inter, hidden)),
                            ("down_proj", (hidden, inter))):
            shapes.append((f"layers.{i}.mlp.{name}.weight", shape))
    return shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from goldwatch.integrity.fingerprint_torch import fingerprint_tensor, triton_available

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    gen = torch.Generator(device=device).manual_seed(0)
    tensors = {}
    for tname, shape in _shapes(8 if args.quick else 1):
        t = torch.empty(shape, dtype=torch.bfloat16, device=device)
        t.view(torch.int16).random_(-(2**15), 2**15, generator=gen)
        tensors[tname] = t
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    params = sum(t.numel() for t in tensors.values())

    # correctness first: the three paths agree bit for bit on a sample (whole tensors, incl. a non-contiguous one)
    sample = [tensors["layers.0.mlp.down_proj.weight"], tensors["layers.0.self_attn.q_proj.weight"][:, 5:].t()]
    fused_ok = triton_available()
    for t in sample:
        cpu = fingerprint_tensor(t.cpu(), backend="numpy")
        assert fingerprint_tensor(t, backend="torch") == cpu, "eager CUDA fingerprint differs from the CPU's"
        if fused_ok:
            assert fingerprint_tensor(t, backend="triton") == cpu, "fused CUDA fingerprint differs from the CPU's"

    def timed(fn: Callable[[], object]) -> float:
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(args.repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    def read_anchor() -> None:
        for t in tensors.values():
            t.view(torch.int32).sum()

    rows = []
    t_read = timed(read_anchor)
    rows.append(["device read (int32 sum, anchor)", f"{nbytes / t_read / 1e12:.3f}", "1.00"])
    backends = (["triton"] if fused_ok else []) + ["torch"]
    for backend in backends:
        seconds = timed(lambda b=backend: [fingerprint_tensor(t, backend=b) for t in tensors.values()])
        label = "fused Triton kernel" if backend == "triton" else "eager torch (int64, chunked)"
        rows.append([f"resident fingerprint, {label}", f"{nbytes / seconds / 1e12:.3f}", f"{t_read / seconds:.2f}"])
    body = (
        f"Device: {name}. {len(tensors)} bf16 tensors, {params / 1e9:.2f} B parameters, {nbytes / 1e9:.2f} GB, "
        f"best of {args.repeats}. Fused, eager and CPU numpy fingerprints checked identical before timing"
        f"{'' if fused_ok else ' (Triton not installed: fused path not measured)'}.\n\n"
        + table(["what", "TB/s", "ratio to device read"], rows)
        + "\n\nTarget from issue 4: fused resident fingerprint >= 1.5 TB/s on an H100 with a 7B-sized tensor set."
    )
    print(body)
    record("integrity-gpu", body, command=f"python -m benchmarks.gpu_integrity{' --quick' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
