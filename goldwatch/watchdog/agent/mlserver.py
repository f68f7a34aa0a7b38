"""An MLServer runtime that serves a goldwatch model (torch directory or ONNX) with the agent inside each worker.

``model-settings.json``::

    {"name": "fraud", "implementation": "goldwatch.watchdog.agent.mlserver.GoldwatchModel",
     "parameters": {"uri": "./current",
                    "extra": {"goldwatch": {"sidecar_url": "http://127.0.0.1:9180", "interval_s": 60}}}}

``uri`` names a goldwatch model directory (``goldwatch-model.json``), an ``.onnx`` file or a directory holding one;
a registry ``current`` link works and tells the runtime which manifest and version it serves. ``extra.goldwatch``
takes the options of :class:`~goldwatch.watchdog.agent.serving.ServingOptions` (the ``[agent]`` section of
goldwatch.toml, which ``$GOLDWATCH_CONFIG`` may name, plus ``manifest``, ``golden``, ``device``, ``dtype``,
``version``, ``trusted_factories``; relative paths are relative to ``model-settings.json``, as ``uri`` is). Loading
verifies the files first: a model whose files fail their manifest is
refused, and MLServer reports the load as failed with goldwatch's message (file, tensor, byte range).

Loading, verifying and the first fingerprints run off the event loop, so the server's health endpoints keep
answering. MLServer runs ``load`` in every inference worker (``parallel_workers``): each worker has its own agent,
reporting as ``agent:<host>:<pid>``. The model's metadata reports the device it runs on and whether that device can
still run a kernel (``parameters.goldwatch_device``, ``goldwatch_device_ok``, ``goldwatch_device_error``): the
sidecar's device check reads it (disaster recovery: GPU capacity gone). This module imports mlserver: only an
MLServer process imports it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters
from mlserver.utils import get_model_uri, to_absolute_path

from goldwatch.errors import ArtifactError, ConfigError, GoldwatchError
from goldwatch.probe import PROBE_HEADER, PROBE_PARAMETER, is_probe_id
from goldwatch.runtimes.mlserver_onnx import tensor_metadata
from goldwatch.watchdog.agent.serving import ServedModel, serving_options

__all__ = ["GoldwatchModel", "ModelRefused", "is_probe_request"]


def is_probe_request(payload: InferenceRequest) -> bool:
    """Whether a request is goldwatch's own golden replay (either mark of :mod:`goldwatch.probe`; MLServer hands
    the HTTP headers over in ``parameters.headers``): kept out of live drift."""
    params = payload.parameters
    if params is None:
        return False
    if getattr(params, PROBE_PARAMETER, None) is True:
        return True
    headers = params.headers or {}
    return any(k.lower() == PROBE_HEADER.lower() and is_probe_id(v) for k, v in headers.items())


class ModelRefused(MLServerError):
    """goldwatch would not load the model; the message says what was wrong, where, and how to fix it."""

    def __init__(self, name: str, error: GoldwatchError) -> None:
        status = 422 if isinstance(error, ArtifactError) else 400 if isinstance(error, ConfigError) else 500
        super().__init__(f"goldwatch refused to load model {name!r}: {error}", status_code=status)


class GoldwatchModel(MLModel):
    """Serve ``parameters.uri`` verified, with the resident-weights agent (or the ONNX golden probe) running."""

    _served: ServedModel | None = None
    _device_lost: str | None = None  # set by the drill runtime (mlserver_faults) to simulate a lost device

    def _extra(self) -> dict[str, Any]:
        params = self.settings.parameters
        extra = (params.extra if params is not None else None) or {}
        options = extra.get("goldwatch", {})
        if not isinstance(options, dict):
            raise ConfigError(f"expected an object, got {type(options).__name__}",
                              where=f"model {self.name}: parameters.extra.goldwatch")
        return dict(options)

    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        try:
            options = serving_options(self._extra(), where=f"model {self.name}: parameters.extra.goldwatch")
            # relative paths are relative to the model-settings.json, like parameters.uri
            relative = {key: Path(to_absolute_path(self._settings, str(value))) for key in
                        ("manifest", "golden", "token_file")
                        if (value := getattr(options, key)) is not None and not Path(value).is_absolute()}
            options = options.model_copy(update=relative)
            self._served = await asyncio.to_thread(ServedModel.load, uri, name=self.name, options=options)
        except GoldwatchError as err:
            raise ModelRefused(self.name, err) from None
        signature = self._served.runtime.signature
        self.inputs = [tensor_metadata(t) for t in signature.inputs]
        self.outputs = [tensor_metadata(t) for t in signature.outputs]
        return True

    def served(self) -> ServedModel:
        """The loaded model (a method, not a property: MLServer inspects every attribute of a model)."""
        if self._served is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        return self._served

    async def device_status(self) -> tuple[str, bool, str]:
        served = self.served()
        if self._device_lost is not None:
            return str(served.runtime.device), False, self._device_lost
        if str(served.runtime.device).startswith("cuda"):  # a hung device must not block the event loop
            return await asyncio.to_thread(served.device_status)
        return served.device_status()

    async def metadata(self) -> MetadataModelResponse:
        meta = await super().metadata()
        if self._served is None:
            return meta
        device, ok, error = await self.device_status()
        params = meta.parameters.model_dump(exclude_none=True) if meta.parameters is not None else {}
        params.update(goldwatch_device=device, goldwatch_device_ok=ok, goldwatch_device_error=error or None)
        meta.parameters = Parameters(**params)
        return meta

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if self._device_lost is not None:
            raise MLServerError(f"device {self.served().runtime.device} lost: {self._device_lost}", status_code=500)
        feed = {inp.name: NumpyCodec.decode_input(inp) for inp in payload.inputs}
        outputs = self.served().predict(feed, probe=is_probe_request(payload))
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()],
        )

    async def unload(self) -> bool:
        served, self._served = self._served, None
        if served is not None:
            await asyncio.to_thread(served.close)
        return True
