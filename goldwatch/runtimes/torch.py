"""PyTorch models behind the :class:`~goldwatch.runtimes.base.Runtime` interface, on CPU or CUDA.

Three on-disk forms are accepted, none of which unpickles arbitrary objects:

* TorchScript (``.pt``) via ``torch.jit.load``;
* a ``torch.export`` program (``.pt2``) via ``torch.export.load``;
* a directory with a ``goldwatch-model.json`` descriptor: a state dict (``.safetensors``, or ``.pt`` loaded with
  ``torch.load(weights_only=True)``) plus a ``"module:function"`` factory that builds the module. The factory's
  module must already be importable (installed); the model directory is never put on ``sys.path``.

A model directory is an artifact (a CI workspace, a registry, a download), so it must not choose the code that runs:
its factory module must be *trusted* before anything is imported. Trusted are ``goldwatch.examples.models``, the
module prefixes in ``[runtimes] trusted_factories`` of goldwatch.toml (the CLI applies them with
:func:`trusting_factories`), in ``$GOLDWATCH_TRUSTED_FACTORIES`` (comma-separated) and in ``load_model``'s
``trusted_factories=``. A prefix matches whole module-path components (``mycompany.models`` trusts
``mycompany.models.vision``, not ``mycompany.models_x``); the factory must also be *defined* in a trusted module, be
a public name, and return a ``torch.nn.Module``.

The descriptor::

    {"format": "goldwatch-model", "version": 1,
     "factory": "goldwatch.examples.models:tabular_mlp", "kwargs": {},
     "weights": "weights.safetensors",
     "signature": {"inputs": [{"name": "x", "dtype": "float32", "shape": [null, 8]}],
                   "outputs": [{"name": "logits", "dtype": "float32", "shape": [null, 3]}]}}

``weights`` may also name a sharded checkpoint's index (``model.safetensors.index.json``, Hugging Face's
``weight_map`` of tensor -> shard file; every shard inside the directory). Loading is strict: every key the module
has must be in the weights and every key in the weights must be used, and a mismatch names every missing and
unexpected key. A published checkpoint often carries tensors the serving module does not use (``pooler.*``,
``embeddings.position_ids`` of a mean-pooling sentence encoder); the descriptor says so explicitly with
``"ignore_keys": ["pooler.*", "embeddings.position_ids"]`` (glob patterns dropped before loading), or relaxes the
check for unexpected keys altogether with ``"strict": false``. Missing keys are always refused: a parameter left
at its random initial value would serve wrong answers silently.

TorchScript and export files written by goldwatch carry the same ``signature`` as an extra file named
``goldwatch-signature.json``; without it, input names come from ``forward``'s schema and dtypes/shapes are unknown.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import ArtifactError, ConfigError, InvalidInputError
from goldwatch.logs import get_logger
from goldwatch.runtimes.base import (
    DESCRIPTOR_NAME,
    BatchedRuntime,
    DeviceUnavailableError,
    ModelIdentity,
    Signature,
    TensorSpec,
    digest_path,
    normalize_device,
)

log = get_logger(__name__)

__all__ = [
    "BUILTIN_TRUSTED_FACTORIES",
    "DESCRIPTOR_FORMAT",
    "SIGNATURE_EXTRA_FILE",
    "TRUSTED_FACTORIES_ENV",
    "TorchRuntime",
    "import_factory",
    "load_sharded_state_dict",
    "load_state_dict",
    "trusted_factory_prefixes",
    "trusting_factories",
]

DESCRIPTOR_FORMAT = "goldwatch-model"
SIGNATURE_EXTRA_FILE = "goldwatch-signature.json"

TRUSTED_FACTORIES_ENV = "GOLDWATCH_TRUSTED_FACTORIES"
# Only the example architectures: the rest of goldwatch.examples writes files and trains models, which a descriptor
# must not be able to trigger with kwargs of its choosing.
BUILTIN_TRUSTED_FACTORIES: tuple[str, ...] = ("goldwatch.examples.models",)

_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
#: inputs up to this size go to the GPU in one copy before the batches (larger ones: a copy per batch)
_WHOLE_TRANSFER_BYTES = 256 << 20
_PUBLIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TRUST_HINT = (
    "if you trust that code, add its module (prefix) to [runtimes] trusted_factories in goldwatch.toml, to "
    f"${TRUSTED_FACTORIES_ENV} (comma-separated), or to load_model(..., trusted_factories=[...])"
)

# Prefixes trusted by the operator's configuration for the current command (see trusting_factories).
_CONFIGURED: ContextVar[tuple[str, ...]] = ContextVar("goldwatch_trusted_factories", default=())


def _torch() -> Any:
    return require("torch", purpose="running PyTorch models")


def _torch_device(torch: Any, device: str, where: str) -> Any:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "torch sees no CUDA GPU here", where=where, hint="run on a machine with a CUDA GPU, or use --device cpu"
        )
    return torch.device(device)


def _prefixes(values: Iterable[str], *, error: type[InvalidInputError], where: str) -> tuple[str, ...]:
    if isinstance(values, str):  # a bare string would otherwise be taken letter by letter
        values = [values]
    out = []
    for value in values:
        prefix = str(value).strip()
        if not _MODULE_PATH.match(prefix):
            raise error(
                f"not a module name: {value!r}", where=where, hint="use dotted module names, e.g. mycompany.models"
            )
        out.append(prefix)
    return tuple(out)


@contextmanager
def trusting_factories(prefixes: Iterable[str]) -> Iterator[None]:
    """Also trust the factory modules under ``prefixes`` inside the block (this thread/context only).

    The CLI wraps model loading in this with ``[runtimes] trusted_factories`` of the config.
    """
    extra = _prefixes(prefixes, error=ConfigError, where="runtimes.trusted_factories")
    token = _CONFIGURED.set((*_CONFIGURED.get(), *extra))
    try:
        yield
    finally:
        _CONFIGURED.reset(token)


def trusted_factory_prefixes(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """The module prefixes factories may come from: built-in, ``$GOLDWATCH_TRUSTED_FACTORIES``, config, ``extra``."""
    env = [p for p in os.environ.get(TRUSTED_FACTORIES_ENV, "").split(",") if p.strip()]
    return (
        *BUILTIN_TRUSTED_FACTORIES,
        *_prefixes(env, error=ConfigError, where=f"${TRUSTED_FACTORIES_ENV}"),
        *_CONFIGURED.get(),
        *_prefixes(extra or (), error=InvalidInputError, where="trusted_factories"),
    )


def _is_trusted(module_name: str, prefixes: Iterable[str]) -> bool:
    """Whole module-path components: ``a.b`` trusts ``a.b`` and ``a.b.c``, not ``a.bc`` or ``a.b_c``."""
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


def import_factory(
    ref: str, *, where: str, trusted_factories: Iterable[str] | None = None
) -> Callable[..., Any]:
    """Resolve ``"package.module:function"`` from a trusted, importable module (see the module docstring).

    The trust check runs before anything is imported; ``trusted_factories`` adds prefixes to
    :func:`trusted_factory_prefixes`.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ArtifactError(
            f"factory must be written 'module:function', got {ref!r}", where=where, hint="e.g. 'mypkg.models:build'"
        )
    if not _MODULE_PATH.match(module_name) or not _PUBLIC_NAME.match(attr):
        raise ArtifactError(
            f"factory {ref!r} is not a module path and a public function name",
            where=where,
            hint="e.g. 'mypkg.models:build'",
        )
    trusted = trusted_factory_prefixes(trusted_factories)
    if not _is_trusted(module_name, trusted):
        raise ArtifactError(
            f"factory {ref!r} is not trusted: module {module_name!r} is not in the allow-list "
            f"({', '.join(trusted)}); a model directory must not choose the code goldwatch runs",
            where=where,
            hint=_TRUST_HINT,
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArtifactError(
            f"cannot import the factory module {module_name!r} ({exc})",
            where=where,
            hint="install the package that defines the model",
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ArtifactError(f"{module_name} has no callable {attr!r}", where=where, hint="fix the factory name")
    defined_in = getattr(factory, "__module__", None)
    if isinstance(defined_in, str) and not _is_trusted(defined_in, trusted):
        # e.g. a trusted module that did `from subprocess import run`: the name is re-exported, the code is not ours
        raise ArtifactError(
            f"factory {ref!r} is not trusted: it is defined in {defined_in!r}, which is not in the allow-list",
            where=where,
            hint=_TRUST_HINT,
        )
    return factory


class TorchRuntime(BatchedRuntime):
    """A ``torch.nn.Module`` (scripted, exported or eager) run under ``torch.inference_mode`` on one device."""

    kind = "torch"

    def __init__(self, module: Any, signature: Signature, *, device: str, identity: ModelIdentity) -> None:
        self._torch = _torch()
        self.device = normalize_device(device)
        self._device = _torch_device(self._torch, self.device, identity.source)
        self.module = module
        self.signature = signature
        self.identity = identity
        self._input_names = signature.input_names
        self._output_names = signature.output_names
        self._tensor_type = self._torch.Tensor
        self._on_cpu = self._device.type == "cpu"

    # -- constructors -------------------------------------------------------------------------------------------

    @classmethod
    def from_module(
        cls,
        module: Any,
        signature: Signature,
        *,
        device: str = "cpu",
        identity: ModelIdentity | None = None,
    ) -> TorchRuntime:
        """Wrap an in-memory module; like ``Module.to``, this moves ``module`` itself to ``device`` (eval mode)."""
        torch = _torch()
        dev = _torch_device(torch, normalize_device(device), "module")
        module = module.to(dev).eval() if hasattr(module, "eval") else module.to(dev)
        return cls(
            module, signature, device=device, identity=identity or ModelIdentity(kind="torch", source="<in-memory>")
        )

    @classmethod
    def from_torchscript(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> TorchRuntime:
        torch = _torch()
        path = Path(path)
        dev = _torch_device(torch, normalize_device(device), str(path))
        extra = {SIGNATURE_EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings():
                # torch >= 2.9 deprecates TorchScript; loading existing archives is exactly what users need here
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError/ValueError/zipfile errors for bad archives
            raise ArtifactError(
                f"not a loadable TorchScript archive ({str(exc).splitlines()[0][:300]})",
                where=str(path),
                hint="save the model with torch.jit.save, or use .pt2 for torch.export programs",
            ) from None
        signature = cls._signature_from_extra(extra[SIGNATURE_EXTRA_FILE], where=str(path))
        if signature is None:
            args = [a.name for a in module.forward.schema.arguments[1:]]
            signature = Signature(inputs=tuple(TensorSpec(n) for n in args), outputs=(TensorSpec("output"),))
        identity = ModelIdentity(kind="torchscript", source=str(path), digest=digest_path(path), name=path.stem)
        return cls(module.eval(), signature, device=device, identity=identity)

    @classmethod
    def from_exported(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> TorchRuntime:
        torch = _torch()
        path = Path(path)
        dev = _torch_device(torch, normalize_device(device), str(path))
        extra = {SIGNATURE_EXTRA_FILE: ""}
        try:
            program = torch.export.load(str(path), extra_files=extra)
        except Exception as exc:  # torch raises many types for malformed archives
            raise ArtifactError(
                f"not a loadable torch.export program ({str(exc).splitlines()[0][:300]})",
                where=str(path),
                hint="save the program with torch.export.save",
            ) from None
        signature = cls._signature_from_extra(extra[SIGNATURE_EXTRA_FILE], where=str(path))
        if signature is None:
            signature = cls._signature_from_program(program)
        identity = ModelIdentity(kind="torch.export", source=str(path), digest=digest_path(path), name=path.stem)
        if dev.type != "cpu":
            # an exported program bakes devices into its graph (constants, factory calls): Module.to() is not enough
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, dev)
        return cls(program.module(), signature, device=device, identity=identity)

    @classmethod
    def from_descriptor(
        cls,
        directory: str | os.PathLike[str],
        *,
        device: str = "cpu",
        trusted_factories: Iterable[str] | None = None,
    ) -> TorchRuntime:
        """Build the descriptor's module from a trusted factory and load its weights (see the module docstring)."""
        torch = _torch()
        directory = Path(directory)
        where = str(directory / DESCRIPTOR_NAME)
        try:
            desc = json.loads((directory / DESCRIPTOR_NAME).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"cannot read the model descriptor ({exc})", where=where) from None
        if not isinstance(desc, dict) or desc.get("format") != DESCRIPTOR_FORMAT:
            raise ArtifactError(
                f"not a goldwatch model descriptor (format must be {DESCRIPTOR_FORMAT!r})",
                where=where,
                hint="see the descriptor layout in goldwatch.runtimes.torch",
            )
        for key in ("factory", "weights", "signature"):
            if key not in desc:
                raise ArtifactError(f"descriptor lacks the {key!r} key", where=where)
        ref, kwargs = desc["factory"], desc.get("kwargs") or {}
        if not isinstance(ref, str):
            raise ArtifactError("the descriptor's 'factory' must be a 'module:function' string", where=where)
        if not isinstance(kwargs, dict):
            raise ArtifactError("the descriptor's 'kwargs' must be a JSON object", where=where)
        weights = (directory / str(desc["weights"])).resolve()
        if directory.resolve() not in weights.parents:
            raise ArtifactError("weights must be a file inside the model directory", where=where)
        strict, ignore_keys = _strictness(desc, where=where)
        factory = import_factory(ref, where=where, trusted_factories=trusted_factories)
        state = load_sharded_state_dict(weights) if weights.name.endswith(".index.json") else load_state_dict(weights)
        dropped = [k for k in state if any(fnmatch.fnmatchcase(k, p) for p in ignore_keys)]
        if dropped:
            log.info("%s: %d checkpoint key(s) the module does not use left out, as ignore_keys %s says",
                     weights, len(dropped), list(ignore_keys))
            state = {k: v for k, v in state.items() if k not in set(dropped)}
        try:
            module = factory(**kwargs)
        except Exception as exc:  # the factory is trusted code, but the kwargs come from the artifact
            reason = (str(exc).splitlines() or [""])[0][:300]
            raise ArtifactError(
                f"the factory {ref!r} failed ({type(exc).__name__}: {reason})",
                where=where,
                hint="the descriptor's kwargs must be arguments the factory accepts",
            ) from None
        if not isinstance(module, torch.nn.Module):
            raise ArtifactError(
                f"the factory {ref!r} returned {type(module).__name__}, not a torch.nn.Module",
                where=where,
                hint="a factory must build and return the model's torch.nn.Module",
            )
        _load_weights(module, state, strict=strict, where=str(weights))
        dev = _torch_device(torch, normalize_device(device), where)
        try:
            signature = Signature.from_dict(desc["signature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed signature in the descriptor ({exc!r})", where=where) from None
        identity = ModelIdentity(
            kind="torch.state_dict", source=str(directory), digest=digest_path(directory), name=directory.name
        )
        return cls(module.to(dev).eval(), signature, device=device, identity=identity)

    # -- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def _signature_from_extra(text: str, *, where: str) -> Signature | None:
        if not text:
            return None
        try:
            return Signature.from_dict(json.loads(text))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed {SIGNATURE_EXTRA_FILE} in the archive ({exc!r})", where=where) from None

    @staticmethod
    def _signature_from_program(program: Any) -> Signature:
        specs = []
        placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        for name in program.graph_signature.user_inputs:
            val = placeholders[name].meta.get("val")
            dtype = str(val.dtype).replace("torch.", "") if val is not None else ""
            shape = tuple(d if isinstance(d, int) else None for d in val.shape) if val is not None else None
            specs.append(TensorSpec(name, dtype, shape))
        outs = program.graph_signature.user_outputs
        names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
        return Signature(inputs=tuple(specs), outputs=tuple(TensorSpec(n) for n in names))

    def _collect(self, result: Any) -> dict[str, np.ndarray]:
        names = self._output_names
        own = self._on_cpu  # a CPU tensor's array is shared with it (a GPU tensor's is a fresh host copy)
        if len(names) == 1 and type(result) is self._tensor_type:  # the common case, with the least work per batch
            return {names[0]: _host_array(result, own=own)}
        if isinstance(result, Mapping):
            values = [result[n] for n in names if n in result]
        elif isinstance(result, (tuple, list)):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(names):
            raise ArtifactError(
                f"the model returned {len(values)} output(s), its signature names {len(names)} ({names})",
                where=self.identity.source,
                hint=f"save the model with a {SIGNATURE_EXTRA_FILE} extra file naming every output",
            )
        return {n: _host_array(v, own=own) for n, v in zip(names, values)}

    def batch_scope(self) -> contextlib.AbstractContextManager[object]:
        """``inference_mode``, entered once for all the batches of a call."""
        return self._torch.inference_mode()

    def infer_batches(
        self, inputs: Mapping[str, np.ndarray], starts: Iterable[int], batch_size: int
    ) -> dict[str, np.ndarray]:
        """The batch loop with little but the module call in it (inputs checked and contiguous; inside
        ``inference_mode``)."""
        module, collect = self.module, self._collect
        if self._on_cpu:  # numpy slices of a private copy, shared as tensors: cheaper per batch than tensor slices
            from_numpy, arrays = self._torch.from_numpy, [_private(inputs[n]) for n in self._input_names]
            if len(arrays) == 1:  # the common case, without a list per batch
                (x,) = arrays
                parts = [collect(module(from_numpy(x[s : s + batch_size]))) for s in starts]
            else:
                parts = [collect(module(*[from_numpy(a[s : s + batch_size]) for a in arrays])) for s in starts]
        elif sum(inputs[n].nbytes for n in self._input_names) <= _WHOLE_TRANSFER_BYTES:
            # one host-to-device copy of everything, then slices on the device
            tensors = [self._torch.from_numpy(inputs[n]).to(self._device) for n in self._input_names]
            parts = [collect(module(*[t[s : s + batch_size] for t in tensors])) for s in starts]
        else:  # too large to hold on the device at once: one copy per batch
            parts = [self.infer({n: inputs[n][s : s + batch_size] for n in self._input_names}) for s in starts]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One checked batch (inside :meth:`batch_scope`); outputs come back as numpy arrays on the host."""
        from_numpy = self._torch.from_numpy
        if self._on_cpu:
            args = [from_numpy(_private(inputs[n])) for n in self._input_names]
        else:  # the copy to the device is private already
            args = [from_numpy(np.ascontiguousarray(inputs[n])).to(self._device) for n in self._input_names]
        return self._collect(self.module(*args))

    def close(self) -> None:
        self.module = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return f"TorchRuntime({self.identity.source!r}, kind={self.identity.kind!r}, device={self.device!r})"


def _host_array(tensor: Any, *, own: bool) -> np.ndarray:
    """A tensor as a numpy array on the host; with ``own``, one that does not share the tensor's memory.

    A model may hand back a buffer it reuses on its next call (or its input, or a parameter): an answer that
    shares that memory would change under the caller -- in a batched replay, every earlier batch would silently
    become the last one. The common case is tried first: reading a tensor's ``device`` or ``requires_grad`` costs
    microseconds per batch, while ``numpy()`` itself refuses what it cannot share: a GPU tensor (TypeError, and
    ``cpu()`` then makes a fresh copy) or one that requires grad (RuntimeError).
    """
    try:
        array: np.ndarray = tensor.numpy()
    except (TypeError, RuntimeError):
        array = tensor.detach().cpu().numpy()
    return np.array(array, copy=True) if own else array


def _private(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a model input: a model that works in place on its input (``x.sub_(mean)``,
    ``ReLU(inplace=True)`` first) must not change the caller's arrays -- least of all a golden set's inputs, which
    a sidecar replays again and again. Copying costs a memcpy of the inputs, small next to running the model."""
    return np.array(array, order="C", copy=True)


def _strictness(desc: Mapping[str, Any], *, where: str) -> tuple[bool, tuple[str, ...]]:
    """The descriptor's ``strict`` (default true) and ``ignore_keys`` (glob patterns of checkpoint keys to drop)."""
    strict = desc.get("strict", True)
    if not isinstance(strict, bool):
        raise ArtifactError(f"the descriptor's 'strict' must be true or false, got {strict!r}", where=where)
    ignore = desc.get("ignore_keys", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) and p for p in ignore):
        raise ArtifactError(
            f"the descriptor's 'ignore_keys' must be a list of key patterns, got {ignore!r}", where=where,
            hint='e.g. "ignore_keys": ["pooler.*", "embeddings.position_ids"]',
        )
    return strict, tuple(ignore)


def _load_weights(module: Any, state: Mapping[str, Any], *, strict: bool, where: str) -> None:
    """``load_state_dict``, with every missing and unexpected key named in the error (torch's message is cut).

    ``strict=False`` (the descriptor's explicit choice) still refuses missing keys whose parameters would keep
    their random initial values silently, unless nothing of the module is missing at all: it only lets unexpected
    keys through. Shape mismatches are always errors.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}" for k in expected
              if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {', '.join(missing)}")
    if unexpected and strict:
        problems.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es) (weights vs module): {', '.join(shapes)}")
    if problems:
        patterns = ", ".join(f'"{p}"' for p in _key_patterns(unexpected))
        hint = "the descriptor's factory/kwargs must build the architecture the weights were saved from"
        if unexpected and not missing and not shapes:
            hint = (f"if the module does not use those tensors, say so in the descriptor: \"ignore_keys\": "
                    f"[{patterns}] (or \"strict\": false to ignore any unexpected key)")
        raise ArtifactError("the weights do not fit the factory's module: " + "; ".join(problems), where=where,
                            hint=hint)
    if unexpected:
        log.info("%s: %d unexpected checkpoint key(s) left out (\"strict\": false): %s", where, len(unexpected),
                 ", ".join(unexpected))
    try:
        module.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # a dtype the module cannot take, for instance
        raise ArtifactError(f"the weights do not fit the factory's module ({' '.join(str(exc).split())[:500]})",
                            where=where) from None


def _key_patterns(keys: Sequence[str]) -> list[str]:
    """Unexpected keys summarised as ``ignore_keys`` patterns: a whole top-level module as ``name.*``.

    >>> _key_patterns(["pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"])
    ['pooler.*', 'embeddings.position_ids']
    """
    by_top: dict[str, list[str]] = {}
    for key in keys:
        by_top.setdefault(key.split(".", 1)[0], []).append(key)
    out = []
    for top, members in by_top.items():
        out += [f"{top}.*"] if len(members) > 1 else members
    return out


def load_sharded_state_dict(index: Path) -> dict[str, Any]:
    """Load the shards an ``*.index.json`` (Hugging Face's ``weight_map``) names, each inside the index's folder,
    and check that every tensor comes from the shard the index says."""
    where = str(index)
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError("weights index not found", where=where) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read the weights index ({exc})", where=where) from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ArtifactError("the index has no 'weight_map' of tensor name -> shard file", where=where,
                            hint="write it as save_pretrained does: {\"weight_map\": {\"name\": \"shard\"}}")
    folder = index.parent.resolve()
    state: dict[str, Any] = {}
    for shard in sorted(set(weight_map.values())):
        path = (folder / shard).resolve()
        if folder not in path.parents:
            raise ArtifactError(f"shard {shard!r} is not a file inside the model directory", where=where)
        tensors = load_state_dict(path)
        wanted = {k for k, v in weight_map.items() if v == shard}
        absent = sorted(wanted - set(tensors))
        if absent:
            raise ArtifactError(f"shard {shard} lacks tensor(s) the index maps to it: {', '.join(absent)}",
                                where=str(path), hint="the shards and the index are from different checkpoints")
        stray = sorted(set(tensors) - wanted)
        if stray:
            raise ArtifactError(f"shard {shard} holds tensor(s) the index maps elsewhere or not at all: "
                                f"{', '.join(stray)}", where=str(path),
                                hint="the shards and the index are from different checkpoints")
        state.update(tensors)
    return state


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load tensors from ``.safetensors`` or from a ``torch.save`` file with ``weights_only=True`` (no pickle code)."""
    torch = _torch()
    try:
        if path.suffix == ".safetensors":
            st = require("safetensors.torch", purpose="reading .safetensors weights")
            return dict(st.load_file(str(path)))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError("weights file not found", where=str(path)) from None
    except Exception as exc:  # safetensors/torch raise various types for truncated or hostile files
        raise ArtifactError(
            f"cannot load the weights ({str(exc).splitlines()[0][:300]})",
            where=str(path),
            hint="weights must be .safetensors or a tensors-only torch.save file",
        ) from None
    if not isinstance(state, Mapping):
        raise ArtifactError(f"expected a state dict, found {type(state).__name__}", where=str(path))
    return dict(state)
