#!/usr/bin/env bash
# One short run on a CUDA machine: the `cuda` tests, then the GPU benchmarks, each with a time limit, logs and the
# updated RESULTS.md copied to $OUT. Meant for a machine whose `python3` already holds torch with CUDA, numpy,
# scipy, pandas, onnx and onnxruntime (the GPU image this project is lent); goldwatch's other pure-Python needs
# travel as wheels in .whl/ (git-ignored), fetched beforehand on a machine with the package index:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 blake3==1.0.11 \
#     prometheus-client==0.26.0 httpx==0.28.1 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 sniffio==1.3.1 \
#     idna==3.20 certifi==2026.10.19.post1
#
# (pydantic and pydantic-core must be a matching pair: `pip show pydantic` names the core it needs.)
# Run from the repository root:  bash benchmarks/gpu_check.sh [--quick]
# Total time: about 4 minutes with --quick, 10 without (budgets below); the benchmark sections land in
# benchmarks/RESULTS.md, which is copied to $OUT so that it comes back.
set -uo pipefail

out=${OUT:-/tmp/goldwatch-gpu}
quick=${1:-}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing .whl/*.whl failed" >&2; exit 2; }
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 DO_NOT_TRACK=1

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} 2>&1 | tee "$out/device.txt"

status=0
# the cuda-marked tests only: everything else already ran on the CPU machines
timeout 240 python3 -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$out/cuda-tests.log" || status=1
for bench in gpu_detectors gpu_integrity gpu_golden_sets gpu_agent; do
    limit=$([ "$quick" = "--quick" ] && echo 60 || echo 150)
    timeout "$limit" python3 -m "benchmarks.$bench" $quick 2>&1 | tee "$out/$bench.log" || status=1
done
cp benchmarks/RESULTS.md "$out/RESULTS.md"
exit $status
