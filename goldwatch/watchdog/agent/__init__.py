"""The in-process agent: resident weights watched from inside the serving process, on CPU and CUDA.

* :func:`watch` -- start a background thread that fingerprints a torch module's parameters and buffers where they
  live (CPU: numpy on one core, GIL released; CUDA: the fused Triton kernel on a low-priority stream, no host copy),
  in slices under a duty-cycle budget, and compares them with the model's manifest block by block; a mismatch names
  the tensor, the 1 MiB block and its byte range. What cannot be compared with the file (dtype conversions, fused,
  quantized or computed tensors) is proven from the file or pinned at load -- :attr:`ResidentAgent.coverage` says
  which tensors are covered, how, and which are not.
* :func:`watch_onnx` -- ONNX Runtime does not expose its resident initializers: the file is verified at load and a
  small golden probe is replayed in-process on a schedule.
* Reporters: :class:`HttpReporter` posts evidence to the sidecar (``goldwatch serve``), :class:`CallbackReporter`
  hands it to a function; metrics go to prometheus_client (:mod:`goldwatch.watchdog.agent.metrics`).
* :mod:`goldwatch.watchdog.agent.mlserver` -- an MLServer runtime that serves a goldwatch model directory with the
  agent inside each worker (imported only by MLServer).

Importing this package imports neither torch nor onnxruntime; they are imported when a model of theirs is watched.
"""

from goldwatch.watchdog.agent.agent import DEFAULT_DUTY_CYCLE, DEFAULT_INTERVAL_S, ResidentAgent, verify_file, watch
from goldwatch.watchdog.agent.probe import ProbeAgent, watch_onnx
from goldwatch.watchdog.agent.reporter import CallbackReporter, HttpReporter, Reporter
from goldwatch.watchdog.agent.results import BlockMismatch, Coverage, Evidence, PassResult, TensorCoverage

__all__ = [
    "DEFAULT_DUTY_CYCLE",
    "DEFAULT_INTERVAL_S",
    "BlockMismatch",
    "CallbackReporter",
    "Coverage",
    "Evidence",
    "HttpReporter",
    "PassResult",
    "ProbeAgent",
    "Reporter",
    "ResidentAgent",
    "TensorCoverage",
    "verify_file",
    "watch",
    "watch_onnx",
]
