"""Starting a real KServe Python ModelServer (Open Inference Protocol v2) in a subprocess, for tests and experiments.

KServe's ``kserve`` package pins a Starlette/FastAPI that MLServer's pins exclude, so it cannot share goldwatch's
environment: it lives in a virtual environment of its own (``.venv-kserve``, which ``.ci/run`` creates from
``constraints-kserve.txt``), found through ``$GOLDWATCH_KSERVE_PYTHON`` or ``<repository>/.venv-kserve``. The
server is a ``kserve.Model`` serving an ONNX file with ONNX Runtime, written as a script (:data:`SERVER_SOURCE`)
and run with that environment's Python on free 127.0.0.1 ports. Like KServe's own predictors by default, its
metadata lists no inputs or outputs (``metadata=True`` publishes them).

Usage::

    with start_kserve(model_path, name="encoder") as server:
        url = server.model_url("encoder")      # http://127.0.0.1:PORT/v2/models/encoder

Neither kserve nor onnxruntime is imported here (only the child process imports them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from goldwatch.errors import DependencyMissingError, ServerUnreachableError
from goldwatch.runtimes.mlserver_testing import free_ports

__all__ = ["KSERVE_PYTHON_ENV", "SERVER_SOURCE", "KServeProcess", "kserve_python", "start_kserve"]

KSERVE_PYTHON_ENV = "GOLDWATCH_KSERVE_PYTHON"
_REPO_VENV = Path(__file__).resolve().parents[2] / ".venv-kserve" / "bin" / "python"

SERVER_SOURCE = '''\
"""goldwatch test server: one ONNX model behind KServe's ModelServer (OIP v2 REST)."""
import argparse
import uuid

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

_OIP = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
        "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}
_ORT = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}


class OnnxModel(Model):
    def __init__(self, name, path, metadata):
        super().__init__(name)
        self.path = path
        self.metadata = metadata
        self.load()

    def load(self):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def _types(self, args):
        if not self.metadata:
            return []  # KServe's default: the metadata lists nothing
        return [{"name": a.name, "datatype": _ORT.get(a.type, "FP32"),
                 "shape": [d if isinstance(d, int) else -1 for d in a.shape]} for a in args]

    def get_input_types(self):
        return self._types(self.session.get_inputs())

    def get_output_types(self):
        return self._types(self.session.get_outputs())

    async def predict(self, payload, headers=None, response_headers=None):
        feed = {}
        for inp in payload.inputs:
            expected = next((a for a in self.session.get_inputs() if a.name == inp.name), None)
            if expected is None:
                raise ValueError(f"unknown input {inp.name!r}\\nthis model takes "
                                 f"{[a.name for a in self.session.get_inputs()]}")
            feed[inp.name] = inp.as_numpy()
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, self.session.run(names, feed)):
            value = np.asarray(value)
            out = InferOutput(name=name, shape=list(value.shape), datatype=_OIP[value.dtype.name])
            out.set_data_from_numpy(value, binary_data=False)
            outputs.append(out)
        # the protocol makes the request id optional; KServe's response needs one
        return InferResponse(model_name=self.name, infer_outputs=outputs, response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--publish-metadata", action="store_true")
    ours, _ = parser.parse_known_args()
    model = OnnxModel(ours.model_name, ours.model_path, ours.publish_metadata)
    ModelServer(workers=1, enable_grpc=False).start([model])
'''


@dataclasses.dataclass
class KServeProcess:
    """A running KServe ModelServer; ``stop()`` (or leaving the ``with`` block) terminates it."""

    process: subprocess.Popen[bytes]
    http_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def model_url(self, name: str) -> str:
        return f"{self.base_url}/v2/models/{name}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, *, model: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnreachableError(
                    f"KServe exited with code {self.process.returncode} during start-up; log tail: "
                    + self.log()[-2000:], where=self.base_url,
                )
            with contextlib.suppress(httpx.HTTPError):
                url = f"{self.base_url}/v2/models/{model}/ready"
                if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServerUnreachableError(f"KServe not ready after {timeout:.0f} s; log tail: " + self.log()[-2000:],
                                     where=self.base_url)

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)

    def __enter__(self) -> KServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kserve_python() -> Path | None:
    """The Python of the KServe environment: ``$GOLDWATCH_KSERVE_PYTHON``, else ``<repository>/.venv-kserve``."""
    configured = os.environ.get(KSERVE_PYTHON_ENV)
    if configured:
        return Path(configured)
    return _REPO_VENV if _REPO_VENV.exists() else None


def start_kserve(model_path: str | os.PathLike[str], *, name: str, workdir: str | os.PathLike[str],
                 publish_metadata: bool = False, timeout: float = 90.0) -> KServeProcess:
    """Serve the ONNX file ``model_path`` as ``name`` with KServe's ModelServer on a free 127.0.0.1 port."""
    python = kserve_python()
    if python is None or not python.exists():
        raise DependencyMissingError(
            "no KServe environment: set $GOLDWATCH_KSERVE_PYTHON or create .venv-kserve",
            hint="python3 -m venv .venv-kserve && .venv-kserve/bin/pip install -c constraints-kserve.txt kserve "
                 "onnxruntime (.ci/run does this)",
        )
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    script = work / "kserve_onnx_server.py"
    script.write_text(SERVER_SOURCE)
    http_port, grpc_port = free_ports(2)
    log = work / "kserve.log"
    args = [str(python), str(script), "--model-path", str(Path(model_path).resolve()), "--model-name", name,
            "--http_port", str(http_port), "--grpc_port", str(grpc_port)]
    if publish_metadata:
        args.append("--publish-metadata")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)  # the KServe environment must not see goldwatch's packages
    with open(log, "wb") as fh:
        process = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=work,
                                   start_new_session=True)
    server = KServeProcess(process, http_port, log)
    try:
        server.wait_ready(model=name, timeout=timeout)
    except BaseException:
        server.stop()
        raise
    return server
