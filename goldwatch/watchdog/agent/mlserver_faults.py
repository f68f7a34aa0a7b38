"""A drill/test variant of the MLServer runtime that injects faults on request, at the runtime boundary.

``implementation: goldwatch.watchdog.agent.mlserver_faults.FaultInjectingModel``. An inference request whose
``parameters`` hold ``goldwatch_fault`` does one of these, in the worker that serves it, instead of running the model:

* ``{"tensor": NAME, "byte": B, "bit": K}`` flips bit ``K`` of byte ``B`` of that resident tensor and answers with
  the flipped block (output ``flipped_block``): corrupted resident weights;
* ``{"perturb": X}`` adds ``X`` to every floating-point weight in memory (the files stay intact: the model
  silently answers wrong until it is reloaded, which undoes it);
* ``{"device": "lost"}`` makes the model's device unusable as a lost GPU is: every inference fails with a device
  error and the model's metadata reports the device lost; ``{"device": "restored"}`` undoes it;
* ``{"agent": "stop"}`` silences the worker's agent (a wedged agent: the sidecar must call its checks stale, never
  roll back) and ``{"agent": "start"}`` starts it again (output ``agent_running``).

Refused unless the server runs with ``GOLDWATCH_FAULT_INJECTION=1``, so that a production server given this class
by mistake cannot be corrupted through its API.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

from goldwatch.errors import GoldwatchError
from goldwatch.watchdog.agent.faults import FAULT_INJECTION_ENV, flip_resident_bit
from goldwatch.watchdog.agent.mlserver import GoldwatchModel

__all__ = ["FAULT_PARAMETER", "FaultInjectingModel"]

FAULT_PARAMETER = "goldwatch_fault"


class FaultInjectingModel(GoldwatchModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        params = payload.parameters.model_dump() if payload.parameters is not None else {}
        fault = params.get(FAULT_PARAMETER)
        if fault is None:
            return await super().predict(payload)
        if os.environ.get(FAULT_INJECTION_ENV) != "1":
            raise InferenceError(f"fault injection is disabled: start the server with {FAULT_INJECTION_ENV}=1")
        if not isinstance(fault, dict):
            raise InferenceError(f"bad {FAULT_PARAMETER} parameter: expected an object, got {type(fault).__name__}")
        if "agent" in fault:
            return self._agent_fault(str(fault["agent"]))
        if "device" in fault:
            return self._device(fault["device"])
        if "perturb" in fault:
            return self._perturb(fault["perturb"])
        module = self.served().module
        if module is None:
            raise InferenceError("fault injection needs a torch model (ONNX Runtime's memory is not reachable)")
        try:
            flip = flip_resident_bit(module, str(fault["tensor"]), byte=int(fault["byte"]), bit=int(fault["bit"]))
        except (KeyError, TypeError, ValueError, GoldwatchError) as exc:
            raise InferenceError(f"bad {FAULT_PARAMETER} parameter: {exc}") from None
        return InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output("flipped_block", np.array([flip.block], dtype=np.int64))],
            parameters={"goldwatch_flip": dataclasses.asdict(flip)},
        )

    def _applied(self, what: dict[str, object]) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("fault_applied", np.array([1], dtype=np.int64))],
                                 parameters={"goldwatch_fault_applied": what})

    def _device(self, state: object) -> InferenceResponse:
        if state == "lost":
            self._device_lost = ("simulated device loss (goldwatch drill): the runtime fails every request as on a "
                                 "lost GPU")
        elif state == "restored":
            self._device_lost = None
        else:
            raise InferenceError(f'bad {FAULT_PARAMETER}.device: expected "lost" or "restored", got {state!r}')
        return self._applied({"device": str(state)})

    def _perturb(self, amount: object) -> InferenceResponse:
        import torch

        module = self.served().module
        if module is None:
            raise InferenceError("perturbing weights needs a torch model (ONNX Runtime's memory is not reachable)")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise InferenceError(f"bad {FAULT_PARAMETER}.perturb: expected a number, got {amount!r}")
        changed = 0
        with torch.no_grad():
            for tensor in module.parameters():
                if tensor.is_floating_point():
                    tensor.add_(float(amount))
                    changed += 1
        return self._applied({"perturb": float(amount), "tensors": changed})

    def _agent_fault(self, what: str) -> InferenceResponse:
        agent = self.served().agent
        if agent is None:
            raise InferenceError("this model runs no agent (watch = false, or an ONNX model without a golden probe)")
        if what == "stop":
            agent.stop(close_reporter=False)  # silent, as a wedged agent is: nothing more reaches the sidecar
        elif what == "start":
            agent.start()
        else:
            raise InferenceError(f'bad {FAULT_PARAMETER} parameter: agent must be "stop" or "start", got {what!r}')
        return InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output("agent_running", np.array([int(agent.running)], dtype=np.int64))],
        )
