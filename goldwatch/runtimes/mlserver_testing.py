"""Starting a real MLServer (Open Inference Protocol v2) in a subprocess, for tests and local experiments.

It binds 127.0.0.1 on free HTTP, gRPC and metrics ports, waits for ``/v2/health/ready``, and offers the model
repository API (load/unload). ``OnnxModel`` (:mod:`goldwatch.runtimes.mlserver_onnx`) serves goldwatch's ONNX
files; any other ``mlserver.MLModel`` importable by the server works too (``pythonpath`` adds folders).

For the registry's rollback tests, :func:`write_npz_model_dir` lays out a model folder whose weights are read from
a serving pointer ``<repo>/<name>/current/weights.npz`` by a tiny custom runtime (``npz_runtime.NpzModel``, which
answers ``x @ w``), so that switching the pointer and reloading the model changes the answers;
:class:`NpzReferenceRuntime` computes the same answers locally (to build golden sets for it).

Usage::

    repo = tmp_path / "repo"
    write_model_settings(repo, "tabular", uri=example.onnx)
    with start_mlserver(repo) as server:
        url = server.model_url("tabular")      # http://127.0.0.1:PORT/v2/models/tabular
        server.unload("tabular"); server.load("tabular")

mlserver is not imported here (only the child process imports it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from goldwatch.errors import DependencyMissingError, ServerUnreachableError

__all__ = [
    "NPZ_RUNTIME_SOURCE", "MLServerProcess", "NpzReferenceRuntime", "free_ports", "mlserver_available",
    "start_mlserver", "write_model_settings", "write_npz_model_dir",
]

ONNX_IMPLEMENTATION = "goldwatch.runtimes.mlserver_onnx.OnnxModel"

NPZ_RUNTIME_SOURCE = '''\
"""goldwatch test runtime: y = x @ w, with w read from current/weights.npz (no pickle).

Two hooks for the sidecar's tests: a ``VERSION`` file next to weights.npz is reported as the model's version in its
metadata, and a request parameter ``goldwatch_test_perturb`` (a number) adds that number to every weight *in
memory* before answering -- the files stay intact, the model silently answers wrong until it is reloaded.
"""
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse
from mlserver.utils import get_model_uri


class NpzModel(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        with np.load(f"{uri}/weights.npz", allow_pickle=False) as data:
            self._w = np.ascontiguousarray(data["w"])
        version = Path(uri, "VERSION")
        self._served_version = version.read_text().strip() if version.is_file() else None
        return True

    async def metadata(self) -> MetadataModelResponse:
        meta = await super().metadata()
        if self._served_version:
            meta.versions = [self._served_version]
        return meta

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        shift = getattr(payload.parameters, "goldwatch_test_perturb", None) if payload.parameters else None
        if shift:
            self._w = self._w + np.asarray(shift, dtype=self._w.dtype)
        x = NumpyCodec.decode_input(payload.inputs[0])
        y = np.asarray(x, dtype=self._w.dtype) @ self._w
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", y)])
'''


class NpzReferenceRuntime:
    """The answers ``NpzModel`` gives for a weights folder, computed here (``x @ w``): a
    :class:`~goldwatch.runtimes.base.Runtime` to build golden sets for it without a server.

    >>> import tempfile, pathlib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp()); np.savez(d / "weights.npz", w=np.eye(2, dtype=np.float32))
    >>> NpzReferenceRuntime(d).run({"x": np.array([[1.0, 2.0]], np.float32)})["y"].tolist()
    [[1.0, 2.0]]
    """

    kind = "npz-reference"
    device = "cpu"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        import numpy as np

        from goldwatch.runtimes.base import ModelIdentity, Signature, TensorSpec

        with np.load(Path(folder) / "weights.npz", allow_pickle=False) as data:
            self._w = np.ascontiguousarray(data["w"])
        rows, cols = self._w.shape
        dtype = self._w.dtype.name
        self.signature = Signature(inputs=(TensorSpec("x", dtype, (None, rows)),),
                                   outputs=(TensorSpec("y", dtype, (None, cols)),))
        self.identity = ModelIdentity(kind=self.kind, source=str(folder))

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        return {"y": np.asarray(inputs["x"], dtype=self._w.dtype) @ self._w}

    def close(self) -> None:
        pass


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago (all sockets held until all chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def write_model_settings(
    repository: str | os.PathLike[str],
    name: str,
    *,
    uri: str | os.PathLike[str] | None = None,
    implementation: str = ONNX_IMPLEMENTATION,
    version: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``REPOSITORY/NAME/model-settings.json``; returns the model folder."""
    folder = Path(repository) / name
    folder.mkdir(parents=True, exist_ok=True)
    parameters: dict[str, Any] = {}
    if uri is not None:
        parameters["uri"] = str(Path(uri).resolve())
    if version is not None:
        parameters["version"] = version
    settings: dict[str, Any] = {"name": name, "implementation": implementation, "parameters": parameters}
    settings.update(extra or {})
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return folder


def write_npz_model_dir(repository: str | os.PathLike[str], name: str) -> Path:
    """Create ``REPOSITORY/NAME`` (model-settings.json + ``npz_runtime.py``); the serving pointer goes in it as
    ``current`` (a folder or a link to one holding ``weights.npz``). Returns the model folder."""
    folder = write_model_settings(
        repository, name, implementation="npz_runtime.NpzModel", extra={"parameters": {"uri": "./current"}}
    )
    (folder / "npz_runtime.py").write_text(NPZ_RUNTIME_SOURCE)
    return folder


@dataclasses.dataclass
class MLServerProcess:
    """A running MLServer; ``stop()`` (or leaving the ``with`` block) terminates it and its children."""

    process: subprocess.Popen[bytes]
    repository: Path
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def model_url(self, name: str, version: str | None = None) -> str:
        url = f"{self.base_url}/v2/models/{name}"
        return f"{url}/versions/{version}" if version else url

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _repository_call(self, name: str, action: str, timeout: float) -> None:
        response = httpx.post(
            f"{self.base_url}/v2/repository/models/{name}/{action}", timeout=timeout, trust_env=False
        )
        if response.status_code != 200:
            raise ServerUnreachableError(
                f"MLServer refused to {action} {name!r}: HTTP {response.status_code} {response.text[:300]}",
                where=self.base_url,
            )

    def load(self, name: str, *, timeout: float = 60.0) -> None:
        """Load (or reload) model ``name`` from the repository folder."""
        self._repository_call(name, "load", timeout)

    def unload(self, name: str, *, timeout: float = 60.0) -> None:
        self._repository_call(name, "unload", timeout)

    def wait_ready(self, *, timeout: float = 90.0, model: str | None = None) -> None:
        """Poll ``/v2/health/ready`` (and ``/v2/models/MODEL/ready``) until 200, the process dies, or timeout."""
        deadline = time.monotonic() + timeout
        path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnreachableError(
                    f"MLServer exited with code {self.process.returncode} during start-up; log tail:\n"
                    + self.log()[-2000:],
                    where=self.base_url,
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + path, timeout=2.0, trust_env=False).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServerUnreachableError(
            f"MLServer not ready after {timeout:.0f} s; log tail:\n" + self.log()[-2000:], where=self.base_url
        )

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            # the server runs in its own process group: signal the group so worker processes go too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)

    def __enter__(self) -> MLServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _find_mlserver() -> str | None:
    beside = Path(sys.executable).with_name("mlserver")
    return str(beside) if beside.exists() else shutil.which("mlserver")


def mlserver_available() -> bool:
    """Whether the ``mlserver`` command is installed (next to this Python or on PATH): for ``skipif`` marks."""
    return _find_mlserver() is not None


def _mlserver_executable() -> str:
    found = _find_mlserver()
    if not found:
        raise DependencyMissingError("the mlserver command is not installed", hint="pip install 'goldwatch[demo]'")
    return found


def start_mlserver(
    repository: str | os.PathLike[str],
    *,
    timeout: float = 90.0,
    pythonpath: Sequence[str | os.PathLike[str]] = (),
    settings: Mapping[str, Any] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> MLServerProcess:
    """Start ``mlserver start REPOSITORY`` on free 127.0.0.1 ports and wait until it is ready (``env``: more
    environment variables for the server, on top of this process's)."""
    repo = Path(repository).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_ports(3)
    server_settings: dict[str, Any] = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,  # inference in the server process: quicker start, one process to stop
        "load_models_at_startup": True,
        "model_repository_root": str(repo),
        "metrics_dir": str(repo / ".metrics"),
    }
    server_settings.update(settings or {})
    # ports given in ``settings`` win (e.g. restarting a server where its clients expect it)
    http_port, grpc_port, metrics_port = (int(server_settings[k]) for k in ("http_port", "grpc_port", "metrics_port"))
    (repo / "settings.json").write_text(json.dumps(server_settings, indent=2))
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}  # the log tail shown on a failed start is complete
    extra = os.pathsep.join(str(Path(p).resolve()) for p in pythonpath)
    if extra:
        env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log = Path(log_path) if log_path else repo / "mlserver.log"
    with open(log, "ab") as fh:  # a restarted server (same log) keeps the first run's lines
        process = subprocess.Popen(
            [_mlserver_executable(), "start", str(repo)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo,
            start_new_session=True,
        )
    server = MLServerProcess(process, repo, http_port, grpc_port, metrics_port, log)
    try:
        server.wait_ready(timeout=timeout)
    except BaseException:
        server.stop()
        raise
    return server
