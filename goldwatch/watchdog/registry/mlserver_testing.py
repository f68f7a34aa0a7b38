"""A real MLServer for tests and benchmarks: a model repository whose model directory is a serving pointer.

:func:`write_model_dir` lays out ``<repo>/<name>/`` with ``model-settings.json`` and a tiny custom runtime
(``npz_runtime.NpzModel``: an ``mlserver.MLModel`` that loads ``weights.npz`` from ``<name>/current/`` and answers
``x @ w``). :class:`MLServerProcess` starts ``mlserver start <repo>`` in a subprocess on 127.0.0.1 with free ports
(parallel workers off, so a reload is one load in one process) and stops it.

Nothing here imports mlserver: the server runs in its own process, which needs the ``mlserver`` package
(``pip install 'goldwatch[dev]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from goldwatch.errors import DependencyMissingError, ServerUnreachableError

__all__ = ["RUNTIME_SOURCE", "MLServerProcess", "free_port", "mlserver_available", "write_model_dir"]

RUNTIME_SOURCE = '''\
"""goldwatch test runtime: y = x @ w, with w read from current/weights.npz (no pickle)."""
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class NpzModel(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        with np.load(f"{uri}/weights.npz", allow_pickle=False) as data:
            self._w = np.ascontiguousarray(data["w"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        y = np.asarray(x, dtype=self._w.dtype) @ self._w
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", y)])
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mlserver_available() -> bool:
    return shutil.which("mlserver", path=str(Path(sys.executable).parent)) is not None


def write_model_dir(repo: Path, name: str) -> Path:
    """Create ``repo/name`` (model-settings.json + runtime); the serving pointer goes in it as ``current``."""
    model_dir = repo / name
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "npz_runtime.py").write_text(RUNTIME_SOURCE)
    settings = {"name": name, "implementation": "npz_runtime.NpzModel", "parameters": {"uri": "./current"}}
    (model_dir / "model-settings.json").write_text(json.dumps(settings))
    return model_dir


class MLServerProcess:
    """``with MLServerProcess(repo) as srv: srv.url`` -- a running MLServer on 127.0.0.1."""

    def __init__(self, repo: Path, *, start_timeout_s: float = 90.0, log_path: Path | None = None) -> None:
        exe = Path(sys.executable).with_name("mlserver")
        if not exe.exists():
            raise DependencyMissingError("the mlserver executable is not installed next to this Python",
                                         hint="pip install 'goldwatch[dev]'")
        self.repo = repo
        self.exe = exe
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path or repo / "mlserver.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MLServerProcess:
        settings = {
            "host": "127.0.0.1", "http_port": self.http_port, "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port, "parallel_workers": 0, "debug": False,
            "load_models_at_startup": True,
        }
        (self.repo / "settings.json").write_text(json.dumps(settings))
        env = {**os.environ, "MLSERVER_PARALLEL_WORKERS": "0", "PYTHONUNBUFFERED": "1"}
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen([str(self.exe), "start", str(self.repo)], stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.start_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    break
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise ServerUnreachableError(f"MLServer did not become ready: {tail}", where=self.url)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=15)
        self._log.close()
