"""goldwatch: a model integrity and drift watchdog.

It checksums model files and the weights resident in memory (CPU and CUDA), replays frozen golden sets and
compares the answers, runs vectorized drift tests, rolls back to the last verified known-good version, and pages
on-call through PagerDuty.

The top level is deliberately small and light: ``import goldwatch`` imports no model runtime (torch,
onnxruntime) and no report library (evidently). The working parts are subpackages:

* :mod:`goldwatch.detectors` -- vectorized statistical drift tests, batch and streaming
* :mod:`goldwatch.integrity` -- file digests and bit-exact tensor fingerprints (CPU and CUDA)
* :mod:`goldwatch.golden_sets` -- golden-set format, capture, calibrated tolerances, replay
* :mod:`goldwatch.runtimes` -- model runtimes behind one interface (torch, ONNX Runtime, remote OIP v2)
* :mod:`goldwatch.watchdog` -- registry, rollback, gate, alerting, the sidecar
"""

from goldwatch._version import __version__
from goldwatch.config import GoldwatchConfig, load_config
from goldwatch.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    DependencyMissingError,
    GoldenSetError,
    GoldwatchError,
    InvalidInputError,
    RegistryError,
    ServerUnreachableError,
    StateError,
)

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DependencyMissingError",
    "GoldenSetError",
    "GoldwatchConfig",
    "GoldwatchError",
    "InvalidInputError",
    "RegistryError",
    "ServerUnreachableError",
    "StateError",
    "__version__",
    "load_config",
]
