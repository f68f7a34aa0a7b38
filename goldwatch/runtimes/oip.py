"""A remote model served over the Open Inference Protocol v2 (KServe v2: MLServer, Triton, KServe), via httpx.

The URL names the model: ``http://HOST:PORT/v2/models/NAME[/versions/VERSION]``. Loading fetches the model's
metadata (its signature) and checks that the server and the model are ready; ``run`` posts one ``/infer`` request
with the JSON tensor encoding (row-major flattened ``data``) and rebuilds numpy arrays from the response.

With ``probe=True`` every inference request is marked as goldwatch's own (see :mod:`goldwatch.probe`): the sidecar's
golden replay uses it.

A server that cannot be reached, times out, is not ready or answers 5xx raises
:class:`~goldwatch.errors.ServerUnreachableError` -- never a "model is wrong" result: a down server is not evidence
that the model is corrupt. A 4xx on ``/infer`` means the server refused our request (bad input): that is a
:class:`~goldwatch.errors.DataError`.

>>> numpy_to_oip("float32"), oip_to_numpy("INT64")
('FP32', 'int64')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

from goldwatch._http import client as http_client
from goldwatch._http import one_line
from goldwatch.errors import ArtifactError, DataError, InvalidInputError, ServerUnreachableError
from goldwatch.probe import mark_request, probe_headers
from goldwatch.runtimes.base import BatchedRuntime, ModelIdentity, Signature, TensorSpec

__all__ = ["OipRuntime", "numpy_to_oip", "oip_to_numpy"]

_DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_TO_OIP = {v: k for k, v in _DATATYPES.items()}
_URL = re.compile(r"^(?P<base>https?://[^/]+)(?P<path>/v2/models/(?P<name>[^/]+)(/versions/(?P<version>[^/]+))?)/?$")


def oip_to_numpy(datatype: str) -> str:
    """numpy dtype name of an OIP datatype ("" for BYTES and unknown types)."""
    return _DATATYPES.get(datatype.upper(), "")


def numpy_to_oip(dtype: str | np.dtype[Any]) -> str:
    """OIP datatype of a numpy dtype; unsupported dtypes are an input error."""
    name = np.dtype(dtype).name
    if name not in _TO_OIP:
        raise DataError(f"dtype {name} has no Open Inference Protocol datatype", hint="convert to a numeric dtype")
    return _TO_OIP[name]


def _spec(meta: Mapping[str, Any]) -> TensorSpec:
    shape = meta.get("shape")
    return TensorSpec(
        name=str(meta["name"]),
        dtype=oip_to_numpy(str(meta.get("datatype", ""))),
        shape=None if shape is None else tuple(None if int(d) < 0 else int(d) for d in shape),
    )


class OipRuntime(BatchedRuntime):
    """One model on a remote OIP v2 server. ``client`` may be given (e.g. with auth headers or a transport)."""

    kind = "oip"

    def __init__(self, url: str, *, timeout: float = 30.0, client: httpx.Client | None = None,
                 probe: bool = False) -> None:
        match = _URL.match(url)
        if not match:
            raise InvalidInputError(
                f"not an OIP v2 model URL: {url!r}", hint="use http://HOST:PORT/v2/models/NAME[/versions/V]"
            )
        self.url = url.rstrip("/")
        # probe: every /infer request carries goldwatch's marks (goldwatch.probe), so payload loggers and drift
        # windows can leave the sidecar's own golden replay out of the users' traffic
        self.probe = probe
        self.device = "cpu"  # as seen from here: the server decides where it runs
        self._base = match["base"]
        self._path = match["path"]
        # loopback (the server next to goldwatch) never goes through the environment's HTTP(S)_PROXY
        self._client = client or http_client(base_url=self._base, timeout=timeout)
        self._owns_client = client is None
        meta = self._get_json(self._path, what="model metadata")
        #: False when the server's metadata lists no inputs (KServe's default): see adopt_signature
        self.publishes_inputs = bool(meta.get("inputs"))
        try:
            self.signature = Signature(
                inputs=tuple(_spec(m) for m in meta.get("inputs") or ()),
                outputs=tuple(_spec(m) for m in meta.get("outputs") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed model metadata from the server ({exc!r})", where=self.url) from None
        self.metadata = meta
        self.identity = ModelIdentity(
            kind="oip",
            source=self.url,
            digest=None,  # the protocol exposes no digest of the served bytes
            name=str(meta.get("name", match["name"])),
            version=match["version"] or (meta.get("versions") or [None])[0],
        )
        self.ensure_ready()

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerUnreachableError(
                f"server unreachable: timed out waiting for {what}",
                where=self._base + path,
                hint="check that the inference server is up and not overloaded",
            ) from None
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(
                f"server unreachable: {what} failed ({type(exc).__name__}: {exc})",
                where=self._base + path,
                hint="check the host and port, and that the inference server is running",
            ) from None
        if response.status_code >= 500 or response.status_code in (404, 503):
            # 404: the model is not loaded (or unknown) on that server -- a deployment problem, not a wrong model
            raise ServerUnreachableError(
                f"server error: HTTP {response.status_code} for {what}: {_error_text(response)}",
                where=self._base + path,
                hint="check the server's logs and that the model is loaded",
            )
        return response

    def _get_json(self, path: str, *, what: str) -> dict[str, Any]:
        response = self._request("GET", path, what=what)
        if response.status_code != 200:
            raise ServerUnreachableError(
                f"HTTP {response.status_code} for {what}: {_error_text(response)}", where=self._base + path
            )
        try:
            data = response.json()
        except ValueError:
            raise ServerUnreachableError(f"{what} is not JSON", where=self._base + path) from None
        if not isinstance(data, dict):
            raise ServerUnreachableError(f"{what} is not a JSON object", where=self._base + path)
        return data

    def ensure_ready(self) -> None:
        """Raise :class:`ServerUnreachableError` unless the server and the model report ready."""
        for path, what in (("/v2/health/ready", "server readiness"), (self._path + "/ready", "model readiness")):
            response = self._request("GET", path, what=what)
            if response.status_code != 200:
                raise ServerUnreachableError(
                    f"not ready: {what} answered HTTP {response.status_code}",
                    where=self._base + path,
                    hint="wait for the server to finish loading the model",
                )

    def adopt_signature(self, signature: Signature) -> None:
        """Take the inputs (and, if the server lists none, the outputs) of ``signature`` -- e.g. a golden set's --
        where the server publishes no metadata for them. What the server does publish is kept."""
        self.signature = Signature(
            inputs=self.signature.inputs or signature.inputs,
            outputs=self.signature.outputs or signature.outputs,
        )

    def is_ready(self) -> bool:
        try:
            self.ensure_ready()
        except ServerUnreachableError:
            return False
        return True

    # -- inference ----------------------------------------------------------------------------------------------

    def encode(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The JSON body of an ``/infer`` request."""
        tensors = []
        for name in self.signature.input_names:
            array = np.asarray(inputs[name])
            tensors.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": numpy_to_oip(array.dtype),
                    # tolist() yields Python floats whose repr round-trips float32 exactly
                    "data": array.reshape(-1).tolist(),
                }
            )
        body: dict[str, Any] = {"inputs": tensors}
        if self.signature.outputs:  # none published: ask for nothing in particular, the server sends them all
            body["outputs"] = [{"name": n} for n in self.signature.output_names]
        return body

    def decode(self, body: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """numpy arrays from an ``/infer`` response, in the signature's output order."""
        got: dict[str, np.ndarray] = {}
        for out in body.get("outputs") or ():
            try:
                dtype = oip_to_numpy(str(out["datatype"])) or "float64"
                got[str(out["name"])] = np.asarray(out["data"], dtype=dtype).reshape(
                    [int(d) for d in out["shape"]]
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ServerUnreachableError(
                    f"malformed inference response ({exc!r})", where=self.url + "/infer"
                ) from None
        if not self.signature.outputs:
            return got
        missing = [n for n in self.signature.output_names if n not in got]
        if missing:
            raise ServerUnreachableError(
                f"the response lacks output(s) {missing} (got {sorted(got)})", where=self.url + "/infer"
            )
        return {n: got[n] for n in self.signature.output_names}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One checked batch as one ``/infer`` request (see :class:`BatchedRuntime` for ``run``)."""
        body = self.encode(inputs)
        headers = None
        if self.probe:
            mark_request(body)
            headers = probe_headers()
        response = self._request("POST", self._path + "/infer", what="inference", json=body, headers=headers)
        if response.status_code != 200:
            raise DataError(
                f"the server refused the inference request: HTTP {response.status_code}: {_error_text(response)}",
                where=self.url + "/infer",
                hint="check the inputs' names, dtypes and shapes against the model's metadata",
            )
        try:
            body = response.json()
        except ValueError:
            raise ServerUnreachableError("inference response is not JSON", where=self.url + "/infer") from None
        return self.decode(body)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"OipRuntime({self.url!r})"


def _error_text(response: httpx.Response) -> str:
    """The server's error, on one line (a traceback in the body must not break goldwatch's one-line error)."""
    try:
        data = response.json()
        if isinstance(data, dict):
            for key in ("error", "detail", "message"):  # MLServer/Triton, FastAPI (KServe), others
                if key in data:
                    return one_line(str(data[key]))
    except ValueError:
        pass
    return one_line(response.text) or response.reason_phrase
