"""Live inputs and outputs from inside the serving process to the sidecar's drift windows, never holding up serving.

When the model runs in Python (the MLServer runtime, :class:`~goldwatch.watchdog.agent.serving.ServedModel`, a
server of the user's own), there may be no payload logger in front of it. :class:`HttpObserver` is the in-process
``observe(inputs, outputs)``: each served batch is copied into a bounded buffer and the call returns; a background
thread sends what gathered, at most every ``flush_s`` or once ``batch_rows`` rows wait, to
``{sidecar_url}/v1/models/{model}/observe`` as OIP v2 tensors under their own names (what a payload logger would
have sent), with the sidecar's bearer token.

Drift is a statistical signal: losing rows costs power, never correctness, while holding the server up costs
latency for every user. So nothing here blocks or retries: a full buffer drops the batch, an unreachable sidecar
or one whose queue is full (503) loses the batch it was sent, and every row is counted by outcome in
``goldwatch_agent_observed_rows_total{model, outcome}`` (``delivered`` / ``dropped`` / ``failed`` / ``rejected``).
goldwatch's own golden probes are never observed (the caller says so: :meth:`ServedModel.predict`'s ``probe``).

>>> import httpx, json
>>> import numpy as np
>>> seen = []
>>> def sidecar(request):
...     body = json.loads(request.content)
...     seen.append((request.url.path, [t["shape"] for t in body["inputs"]], body["outputs"][0]["datatype"]))
...     return httpx.Response(202)
>>> obs = HttpObserver("http://127.0.0.1:9", "fraud", token="s3cret-token", transport=httpx.MockTransport(sidecar))
>>> obs.observe({"x": np.ones((4, 3), np.float32)}, {"scores": np.zeros((4, 2))})
True
>>> obs.observe({"x": np.ones((2, 3), np.float32)}, {"scores": np.zeros((2, 2))})
True
>>> obs.close()
>>> seen  # both batches in one request
[('/v1/models/fraud/observe', [[6, 3]], 'FP64')]
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from goldwatch.config import resolve_secret
from goldwatch.errors import ConfigError
from goldwatch.logs import get_logger, redact
from goldwatch.watchdog.agent.metrics import agent_metrics

__all__ = ["HttpObserver", "observe_url"]

log = get_logger(__name__)

_DATATYPES = {"f": {2: "FP16", 4: "FP32", 8: "FP64"}, "i": {1: "INT8", 2: "INT16", 4: "INT32", 8: "INT64"},
              "u": {1: "UINT8", 2: "UINT16", 4: "UINT32", 8: "UINT64"}}


def observe_url(sidecar_url: str, model: str) -> str:
    """``{sidecar_url}/v1/models/{model}/observe`` (the model name percent-encoded)."""
    return f"{sidecar_url.rstrip('/')}/v1/models/{urllib.parse.quote(model, safe='')}/observe"


def _tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    kind = array.dtype.kind
    if kind == "b":
        datatype, data = "BOOL", array.ravel().tolist()
    elif kind in _DATATYPES and array.dtype.itemsize in _DATATYPES[kind]:
        datatype, data = _DATATYPES[kind][array.dtype.itemsize], array.ravel().tolist()
    else:  # text and anything else: strings, as BYTES tensors carry them in JSON
        datatype, data = "BYTES", [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                   for v in array.ravel().tolist()]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


class _Batch:
    """Copies of one served batch, waiting to be sent."""

    __slots__ = ("inputs", "outputs", "rows", "version")

    def __init__(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], rows: int,
                 version: str | None) -> None:
        self.inputs, self.outputs, self.rows, self.version = inputs, outputs, rows, version

    def layout(self) -> tuple[Any, ...]:
        return (self.version, *((k, v.dtype.str, v.shape[1:]) for k, v in self.inputs.items()), "|",
                *((k, v.dtype.str, v.shape[1:]) for k, v in self.outputs.items()))


def _rows(arrays: Mapping[str, np.ndarray]) -> int | None:
    counts = {a.shape[0] if a.ndim else 1 for a in arrays.values()}
    return counts.pop() if len(counts) == 1 else None


class HttpObserver:
    """Send served batches to the sidecar's live drift (see the module docstring).

    ``max_rows`` bounds the rows held in memory; ``batch_rows`` and ``flush_s`` decide when a request goes out;
    ``token`` (tests, embedding) or ``token_env`` / ``token_file`` supply the bearer token (required: the sidecar's
    observe endpoint takes the same token as its evidence endpoint).
    """

    def __init__(self, sidecar_url: str, model: str, *, token: str | None = None,
                 token_env: str | None = "GOLDWATCH_SERVE_TOKEN", token_file: str | Path | None = None,
                 transport: httpx.BaseTransport | None = None, timeout_s: float = 5.0, max_rows: int = 65_536,
                 batch_rows: int = 4_096, flush_s: float = 1.0, metrics_registry: Any = None) -> None:
        if not sidecar_url.startswith(("http://", "https://")):
            raise ConfigError(f"the sidecar URL must start with http:// or https://, got {sidecar_url!r}",
                              where="agent.sidecar_url", hint="e.g. http://127.0.0.1:9180")
        if token is None:
            token = resolve_secret(env=token_env, file=Path(token_file) if token_file else None, what="agent token")
        if not token:
            raise ConfigError("no bearer token for the sidecar", where=f"${token_env}" if token_env else
                              "agent.token_file", hint=f"set ${token_env or 'GOLDWATCH_SERVE_TOKEN'} or "
                              "agent.token_file to the token `goldwatch serve` accepts, or set agent.observe = false")
        redact(token)
        if max_rows < 1 or batch_rows < 1 or flush_s <= 0 or timeout_s <= 0:
            raise ConfigError("max_rows >= 1, batch_rows >= 1, flush_s > 0 and timeout_s > 0 are required",
                              where="HttpObserver")
        self.url = observe_url(sidecar_url, model)
        self.model = model
        self.max_rows, self.batch_rows, self.flush_s = max_rows, min(batch_rows, max_rows), flush_s
        self._client = httpx.Client(transport=transport, timeout=timeout_s, trust_env=False,
                                    headers={"Authorization": f"Bearer {token}", "User-Agent": "goldwatch-agent"})
        self._counter = agent_metrics(metrics_registry).observed_rows
        self._pending: collections.deque[_Batch] = collections.deque()
        self._rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._warned: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="goldwatch-agent-observer", daemon=True)
        self._thread.start()

    @property
    def buffered_rows(self) -> int:
        """Rows waiting in the buffer (not those being sent)."""
        return self._rows

    # -- producer side (the serving thread): copies and returns ----------------------------------------------------

    def observe(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any], *, version: str | None = None) -> bool:
        """Queue one served batch (arrays of one row count, keyed by tensor name); False when it was dropped."""
        ins = {str(k): np.array(v, copy=True) for k, v in inputs.items()}
        outs = {str(k): np.array(v, copy=True) for k, v in outputs.items()}
        n_in, n_out = _rows(ins), _rows(outs)
        rows = n_in if n_in is not None else n_out
        if rows is None or (n_in is not None and n_out is not None and n_in != n_out) or not (ins or outs):
            self._count("rejected", max(n_in or 0, n_out or 0, 1))
            self._warn_once(400, "a batch whose tensors have different row counts was not observed")
            return False
        with self._cond:
            if self._closing or self._rows + rows > self.max_rows:
                self._count("dropped", rows)
                return False
            self._pending.append(_Batch(ins, outs, rows, version))
            self._rows += rows
            if self._rows >= self.batch_rows:
                self._cond.notify()
        return True

    def _count(self, outcome: str, rows: int) -> None:
        self._counter.labels(model=self.model, outcome=outcome).inc(rows)

    def _warn_once(self, status: int, message: str) -> None:
        if status not in self._warned:
            self._warned.add(status)
            log.warning("%s: %s (%s)", self.model, message, self.url)

    # -- consumer side ---------------------------------------------------------------------------------------------

    def _take(self) -> list[_Batch]:
        """Batches of one layout, in order, up to ``batch_rows`` rows (at least one batch)."""
        first = self._pending.popleft()
        taken, rows, layout = [first], first.rows, first.layout()
        while self._pending and rows + self._pending[0].rows <= self.batch_rows and \
                self._pending[0].layout() == layout:
            batch = self._pending.popleft()
            taken.append(batch)
            rows += batch.rows
        self._rows -= rows
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_s
                while not self._closing and self._rows < self.batch_rows:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._pending:
                    if self._closing:
                        return
                    continue
                batches = self._take()
            self._send(batches)

    def _send(self, batches: list[_Batch]) -> None:
        rows = sum(b.rows for b in batches)
        body: dict[str, Any] = {}
        for part in ("inputs", "outputs"):
            names = list(getattr(batches[0], part))
            if names:
                body[part] = [_tensor(name, np.concatenate([getattr(b, part)[name] for b in batches]))
                              if len(batches) > 1 else _tensor(name, getattr(batches[0], part)[name])
                              for name in names]
        if batches[0].version is not None:
            body["version"] = batches[0].version
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            self._count("failed", rows)
            self._warn_once(0, f"could not send observed rows: {type(exc).__name__}: {exc}")
            return
        if 200 <= response.status_code < 300:
            self._count("delivered", rows)
        elif response.status_code in (429, 503):  # the sidecar's queue is full: it counted the drop as well
            self._count("dropped", rows)
        elif response.status_code >= 500:
            self._count("failed", rows)
            self._warn_once(response.status_code, f"the sidecar answered {response.status_code}")
        else:
            self._count("rejected", rows)
            self._warn_once(response.status_code, f"the sidecar refused observed rows: HTTP {response.status_code} "
                            f"{response.text[:200]!r} (check the agent's token and the model's live_drift schema)")

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is buffered within ``timeout_s`` (what is left is dropped, counted), then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout_s))
        with self._cond:
            for batch in self._pending:
                self._count("dropped", batch.rows)
            self._pending.clear()
            self._rows = 0
        if not self._thread.is_alive():
            self._client.close()
