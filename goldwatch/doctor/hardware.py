"""What the machine offers: CPU features and memory, CUDA devices, the Triton fingerprint kernel, ONNX Runtime's
execution providers. torch and onnxruntime are imported here (doctor is the one command that must look)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from goldwatch.checks import Check
from goldwatch.doctor.software import importable

__all__ = ["cpu", "cuda", "onnxruntime_providers", "triton_kernel"]

# The CPU features the fast paths use: numpy's vectorized fingerprint and the blake3 / xxh3 digests pick the
# widest of these at run time.
_X86 = ("SSE42", "AVX2", "AVX512F", "AVX512BW")
_ARM = ("NEON", "ASIMD", "SVE")


def _cpu_features() -> dict[str, bool]:
    import importlib

    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            found = importlib.import_module(name).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return {str(k): bool(v) for k, v in found.items()}
    return {}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu() -> list[Check]:
    features = _cpu_features()
    wanted = _ARM if platform.machine().lower() in ("aarch64", "arm64") else _X86
    have = [f for f in wanted if features.get(f)]
    lack = [f for f in wanted if not features.get(f)]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        usable = os.cpu_count() or 1
    memory = _memory_bytes()
    summary = (f"{_cpu_model()}, {usable} usable core(s) of {os.cpu_count()}"
               + (f", {memory / 1024**3:.0f} GiB memory" if memory else "")
               + f"; SIMD: {', '.join(have) or 'none of ' + ', '.join(wanted)}"
               + (f" (no {', '.join(lack)}: hashing and CPU fingerprints use the narrower paths)" if lack else ""))
    return [Check(name="cpu", status="pass", summary=summary,
                  details={"machine": platform.machine(), "model": _cpu_model(), "cores": os.cpu_count(),
                           "usable_cores": usable, "memory_bytes": memory,
                           "features": {f: features.get(f, False) for f in wanted}})]


def _torch() -> Any | None:
    if not importable("torch"):
        return None
    import torch

    return torch


def cuda() -> list[Check]:
    torch = _torch()
    if torch is None:
        return [Check(name="cuda", status="skip",
                      summary="torch is not installed: no CUDA replay, resident-weight or GPU fingerprints "
                              "(pip install 'goldwatch[torch]')")]
    built = torch.version.cuda
    if not torch.cuda.is_available():
        why = (f"torch {torch.__version__} is a CPU build" if built is None
               else f"torch {torch.__version__} (CUDA {built}) sees no device: check the driver and "
                    "CUDA_VISIBLE_DEVICES")
        return [Check(name="cuda", status="skip",
                      summary=f"no CUDA device: {why}; --device cuda and GPU fingerprints are unavailable, "
                              "everything runs on CPU", details={"torch": torch.__version__, "built_for_cuda": built})]
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append({"index": i, "name": props.name, "capability": f"{props.major}.{props.minor}",
                        "memory_bytes": int(props.total_memory)})
    listed = "; ".join(f"cuda:{d['index']} {d['name']} (sm {d['capability']}, "
                       f"{d['memory_bytes'] / 1024**3:.0f} GiB)" for d in devices)
    return [Check(name="cuda", status="pass", summary=f"{len(devices)} device(s): {listed}; torch CUDA {built}",
                  details={"torch": torch.__version__, "built_for_cuda": built, "devices": devices})]


def triton_kernel() -> list[Check]:
    """Compile and run the fused Triton fingerprint kernel on a small tensor; its answer must equal the CPU's."""
    name = "triton"
    torch = _torch()
    if torch is None or not torch.cuda.is_available():
        return [Check(name=name, status="skip", summary="no CUDA device: the Triton fingerprint kernel is not needed")]
    if not importable("triton"):
        return [Check(name=name, status="skip",
                      summary="triton is not installed: CUDA fingerprints use the torch backend (slower; "
                              "pip install triton)")]
    from goldwatch.integrity.fingerprint_torch import fingerprint_tensor

    host = torch.arange(3 * (1 << 18) + 5, dtype=torch.int32)  # 3 MiB and a tail: several blocks, a partial one
    expected = fingerprint_tensor(host, backend="numpy")
    started = time.perf_counter()
    try:
        got = fingerprint_tensor(host.to("cuda"), backend="triton")
        torch.cuda.synchronize()
    except Exception as exc:  # a compiler or driver failure: whatever it is, GPU fingerprints would fail too
        return [Check(name=name, status="fail",
                      summary=f"the Triton fingerprint kernel does not compile or run: {type(exc).__name__}: {exc}",
                      details={"hint": "check the CUDA driver and the triton version matching torch"})]
    seconds = time.perf_counter() - started
    if got != expected:
        return [Check(name=name, status="fail",
                      summary="the Triton fingerprint kernel runs but disagrees with the CPU: GPU fingerprints "
                              "cannot be trusted on this machine; report it")]
    import triton

    return [Check(name=name, status="pass",
                  summary=f"triton {triton.__version__}: the fused fingerprint kernel compiles and agrees with the "
                          f"CPU bit for bit (first run, compile included: {seconds:.1f} s)",
                  duration_s=seconds)]


def onnxruntime_providers() -> list[Check]:
    if not importable("onnxruntime"):
        return [Check(name="onnxruntime", status="skip",
                      summary="ONNX Runtime is not installed: no .onnx models (pip install 'goldwatch[onnx]')")]
    import onnxruntime

    providers = list(onnxruntime.get_available_providers())
    checks = [Check(name="onnxruntime", status="pass",
                    summary=f"ONNX Runtime {onnxruntime.__version__}, providers: {', '.join(providers)}",
                    details={"version": onnxruntime.__version__, "providers": providers})]
    torch = _torch()
    gpu = torch is not None and torch.cuda.is_available()
    if "CUDAExecutionProvider" in providers:
        checks.append(Check(name="onnxruntime:cuda", status="pass",
                            summary="CUDAExecutionProvider present: ONNX models can run on the GPU"))
    else:
        checks.append(Check(
            name="onnxruntime:cuda", status="skip",
            summary=("a CUDA device is present but ONNX Runtime has no CUDAExecutionProvider: ONNX models run on CPU "
                     "only (pip install onnxruntime-gpu)") if gpu
            else "no CUDAExecutionProvider: ONNX models run on CPU"))
    return checks
