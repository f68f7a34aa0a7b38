"""Capturing a golden set: run the approved model, store its answers, calibrate tolerances from measured noise.

>>> import tempfile
>>> from goldwatch.examples import write_example
>>> tmp = tempfile.mkdtemp()
>>> art = write_example("tabular", tmp, formats=("onnx",))
>>> golden = build_golden_set(art.onnx, art.inputs, tmp + "/golden", labels=art.labels, repeats=3)
>>> golden.n_samples, golden.roles, golden.tolerances["logits"].derivation["devices"]
(256, {'logits': 'scores'}, ['cpu'])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch import progress
from goldwatch._version import __version__
from goldwatch.errors import GoldenSetError, InvalidInputError
from goldwatch.golden_sets.calibrate import calibrate
from goldwatch.golden_sets.format import ROLES, GoldenSet
from goldwatch.golden_sets.inputs import load_inputs, load_labels
from goldwatch.logs import get_logger
from goldwatch.runtimes.base import Runtime, Signature, TensorSpec, cuda_available, normalize_device, run_batches
from goldwatch.runtimes.factory import load_model

__all__ = ["RoleGuess", "build_golden_set", "guess_role", "run_batches"]

log = get_logger(__name__)

ModelLike = str | os.PathLike[str] | Runtime
MAX_SCORE_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class RoleGuess:
    """The role an output was given at build time and the evidence for it (``overridden``: set with ``--role``)."""

    role: str
    evidence: str
    overridden: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_EMBEDDING_NAME = re.compile(r"embed|pool|sentence|vector|encod|hidden|feature|represent|latent", re.IGNORECASE)
_SCORES_NAME = re.compile(r"logit|score|prob|class|label|pred|softmax", re.IGNORECASE)
#: rows whose L2 norm is within this of 1 are unit vectors (float32 normalisation leaves ~1e-7)
UNIT_NORM_TOLERANCE = 1e-3


def guess_role(output: np.ndarray, labels: np.ndarray | None, *, name: str = "") -> RoleGuess:
    """The role of a (n, C) output, from the evidence: labels that index its columns or rows that are probability
    distributions make class ``scores``; rows of unit L2 norm make an ``embedding`` (no classifier normalises its
    logits), and so does a name like ``embedding``/``pooled``/``sentence_vector``; a name like ``logits`` makes
    ``scores``; otherwise a width up to 1,000 columns is taken for class scores and wider for an embedding.
    Anything but a 2-D float output is a ``tensor``.

    >>> rows = np.full((4, 8), 8 ** -0.5, np.float32)
    >>> guess_role(rows, None, name="output")
    RoleGuess(role='embedding', evidence='every row has unit L2 norm (max |norm - 1| = 1.7e-08)', overridden=False)
    >>> guess_role(np.zeros((4, 3), np.float32), None, name="logits").evidence
    "the output's name 'logits'"
    """
    if output.dtype.kind != "f" or output.ndim != 2 or output.shape[1] < 2:
        return RoleGuess("tensor", f"not a 2-D float output with >= 2 columns ({output.dtype}, {output.shape})")
    width = output.shape[1]
    values = output.astype(np.float64)
    finite = bool(np.isfinite(values).all())
    if labels is not None and labels.size and int(labels.max()) < width:
        return RoleGuess("scores", f"the labels index its {width} columns")
    if finite and values.size and values.min() >= 0 and np.allclose(values.sum(axis=1), 1.0, atol=1e-3):
        return RoleGuess("scores", "every row is a probability distribution (non-negative, sums to 1)")
    if finite and values.size:
        off = float(np.abs(np.sqrt(np.einsum("ij,ij->i", values, values)) - 1.0).max())
        if off <= UNIT_NORM_TOLERANCE:
            return RoleGuess("embedding", f"every row has unit L2 norm (max |norm - 1| = {off:.2g})")
    if _EMBEDDING_NAME.search(name):
        return RoleGuess("embedding", f"the output's name {name!r}")
    if _SCORES_NAME.search(name):
        return RoleGuess("scores", f"the output's name {name!r}")
    if width > MAX_SCORE_CLASSES:
        return RoleGuess("embedding", f"{width} columns: wider than class scores usually are (> {MAX_SCORE_CLASSES})")
    return RoleGuess("scores", f"{width} columns and nothing suggests an embedding (no unit-norm rows, no telling "
                               "name)")


def _versions() -> dict[str, str]:
    found = {"goldwatch": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for dist in ("torch", "onnxruntime", "mlserver"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _is_spec(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def build_golden_set(
    model: ModelLike,
    inputs: str | os.PathLike[str] | Mapping[str, np.ndarray],
    out: str | os.PathLike[str] | None,
    *,
    labels: str | os.PathLike[str] | np.ndarray | None = None,
    device: str = "cpu",
    devices: Sequence[str] | None = None,
    repeats: int = 5,
    safety_factor: float = 4.0,
    roles: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
    max_length: int | None = None,
) -> GoldenSet:
    """Run ``model`` on ``inputs``, store the answers and calibrated tolerances, and save to ``out`` (if given).

    ``devices`` are the devices whose noise is measured; by default ``device`` plus CUDA when a GPU is present and
    ``model`` is a file or directory (it can be loaded twice). The expected answers come from the first run on
    ``device``. Nothing is written unless everything succeeded.

    ``tokenizer`` (a Hugging Face tokenizer folder) makes ``inputs`` a file of texts, tokenized into the model's
    inputs (see :mod:`goldwatch.golden_sets.text`); the golden set stores the token ids.
    """
    if repeats < 1:
        raise InvalidInputError(f"repeats must be >= 1, got {repeats}", where="--repeats")
    if safety_factor < 1:
        raise InvalidInputError(f"safety factor must be >= 1, got {safety_factor}", where="--safety-factor")
    device = normalize_device(device)
    if out is not None and Path(out).exists() and not overwrite:
        raise GoldenSetError("the output directory already exists", where=str(out), hint="choose a new directory")
    runtime = load_model(model, device=device) if isinstance(model, (str, os.PathLike)) else model
    try:
        signature = runtime.signature
        text_provenance = None
        if tokenizer is not None:
            from goldwatch.golden_sets.text import read_texts, tokenize_texts

            if not isinstance(inputs, (str, os.PathLike)):
                raise InvalidInputError("with a tokenizer, inputs must be a file of texts", where="--inputs")
            arrays, text_provenance = tokenize_texts(read_texts(inputs), tokenizer, signature, max_length=max_length)
        elif isinstance(inputs, (str, os.PathLike)):
            signature = _adopt_from_inputs(runtime, inputs)
            arrays = load_inputs(inputs, signature)
        else:
            arrays = {k: np.asarray(v) for k, v in inputs.items()}
            signature = _adopt_from_inputs(runtime, arrays)
        signature.check_inputs(arrays, where="inputs")
        n = next(iter(arrays.values())).shape[0]
        label_array = None
        if labels is not None:
            if isinstance(labels, (str, os.PathLike)):
                label_array = load_labels(labels, n_samples=n)
            else:
                label_array = np.asarray(labels).astype(np.int64)
            if label_array.shape != (n,):
                raise InvalidInputError(f"labels have shape {label_array.shape}, expected ({n},)", where="labels")
        if devices is None:
            devices = [runtime.device]
            if _is_spec(model) and runtime.device == "cpu" and runtime.kind != "oip" and cuda_available():
                devices.append("cuda")
        devices = [normalize_device(d) for d in devices]
        runs: list[tuple[str, Mapping[str, np.ndarray]]] = []
        # one pass for the answers, then `repeats` per device to measure the noise
        with progress.task(f"golden build: {n:,} samples x {1 + repeats * len(devices)} runs",
                           total=n * (1 + repeats * len(devices)), unit="samples"):
            expected = run_batches(runtime, arrays, batch_size=batch_size)
            _check_finite(expected)
            for dev in devices:
                other = runtime if dev == runtime.device else _load_on(model, dev)
                try:
                    for _ in range(repeats):
                        runs.append((dev, run_batches(other, arrays, batch_size=batch_size)))
                finally:
                    if other is not runtime:
                        other.close()
        tolerances = calibrate(expected, runs, safety_factor=safety_factor)
    finally:
        if runtime is not model:
            runtime.close()
    guesses = {name: guess_role(value, label_array, name=name) for name, value in expected.items()}
    for name, role in (roles or {}).items():
        if name not in guesses or role not in ROLES:
            raise InvalidInputError(
                f"bad role {name}={role}", where="--role", hint=f"outputs: {sorted(guesses)}; roles: {list(ROLES)}"
            )
        guesses[name] = RoleGuess(role, f"set with --role {name}={role}", overridden=True)
    chosen = {name: g.role for name, g in guesses.items()}
    for name, g in guesses.items():
        if not g.overridden:
            log.debug("output %r guessed to be %s: %s (override: --role %s=ROLE)", name, g.role, g.evidence, name)
    baseline: dict[str, Any] = {}
    if label_array is not None:
        for name, role in chosen.items():
            if role == "scores":
                baseline[name] = {"label_accuracy": float(np.mean(expected[name].argmax(axis=1) == label_array))}
    if not signature.outputs:  # a server that publishes no output metadata: the answers name them
        signature = Signature(inputs=signature.inputs, outputs=tuple(
            TensorSpec(name, value.dtype.name, (None, *value.shape[1:])) for name, value in expected.items()))
    golden = GoldenSet(
        model=runtime.identity,
        signature=signature,
        inputs=arrays,
        expected=expected,
        tolerances=tolerances,
        roles=chosen,
        labels=label_array,
        baseline=baseline,
        provenance={
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": runtime.device,
            "devices": list(devices),
            "roles": {name: g.to_dict() for name, g in guesses.items()},
            **({"text_inputs": text_provenance} if text_provenance else {}),
            "repeats": repeats,
            "batch_size": batch_size,
            "platform": platform.platform(),
            "versions": _versions(),
        },
    )
    if out is not None:
        golden.save(out, overwrite=overwrite)
        log.info("golden set with %d samples written to %s", golden.n_samples, out)
    return golden


def _adopt_from_inputs(runtime: Runtime, inputs: str | os.PathLike[str] | Mapping[str, np.ndarray]) -> Signature:
    """The runtime's signature; for a server that publishes no input metadata (KServe's default), the inputs'
    own names, dtypes and shapes (batch dimension dynamic), adopted by the runtime and logged."""
    adopt = getattr(runtime, "adopt_signature", None)
    if runtime.signature.inputs or not callable(adopt):
        return runtime.signature
    if isinstance(inputs, (str, os.PathLike)):
        if Path(inputs).suffix.lower() != ".npz":
            raise InvalidInputError(
                "the server publishes no input metadata, so the inputs must name themselves", where=str(inputs),
                hint="save the inputs as an .npz with one array per input name",
            )
        with np.load(inputs, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    else:
        arrays = dict(inputs)
    specs = tuple(TensorSpec(name, a.dtype.name, (None, *a.shape[1:])) for name, a in arrays.items())
    adopt(Signature(inputs=specs, outputs=()))
    log.info("%s publishes no input metadata: inputs taken as given (%s)", runtime.identity.source,
             ", ".join(f"{t.name} {t.dtype}" for t in specs))
    return runtime.signature


def _load_on(model: ModelLike, device: str) -> Runtime:
    if not _is_spec(model):
        raise InvalidInputError(
            f"cannot measure noise on {device}: a loaded runtime lives on one device",
            hint="pass the model path instead of a runtime, or devices=None",
        )
    assert isinstance(model, (str, os.PathLike))
    return load_model(model, device=device)


def _check_finite(expected: Mapping[str, np.ndarray]) -> None:
    for name, value in expected.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            bad = np.unique(np.nonzero(~np.isfinite(value.reshape(value.shape[0], -1)))[0])
            raise GoldenSetError(
                f"the model answered NaN/Inf on {len(bad)} sample(s) (first: {bad[:5].tolist()}) for output {name!r}",
                where="inputs",
                hint="a golden set holds finite, approved answers: fix the model or drop those inputs",
            )
