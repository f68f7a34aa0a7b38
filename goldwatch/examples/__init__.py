"""Example models goldwatch generates itself -- seeded, trained in seconds, no downloads.

* ``tabular``: a 4-layer MLP classifier (8 features, 3 classes) trained on synthetic data;
* ``conv``: a small CNN classifying 16x16 noisy textures into 4 classes;
* and, in :mod:`goldwatch.examples.encoder`, a BERT-style 384-d sentence encoder with random weights (not trained:
  what matters there is its shape, its exports and its near-constant output dimensions).

Each is written as ONNX (``model.onnx``), TorchScript (``model.pt``), a state dict plus factory directory
(``model/`` with ``goldwatch-model.json``) and, on request, a ``torch.export`` program (``model.pt2``), next to
sample inputs (``inputs.npz``, keyed by input name) and their labels (``labels.npy``). The CI gate, the README's
first command, the tests and the benchmarks all use them.

>>> import tempfile
>>> art = write_example("tabular", tempfile.mkdtemp(), seed=0, formats=("onnx",))
>>> sorted(art.models), art.signature.input_names, art.accuracy > 0.8
(['onnx'], ['x'], True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._fs import atomic_dir, atomic_file
from goldwatch._optional import require
from goldwatch.errors import InvalidInputError
from goldwatch.examples.data import image_data, tabular_data
from goldwatch.runtimes.base import DESCRIPTOR_NAME, Signature, TensorSpec

__all__ = [
    "FORMATS",
    "KINDS",
    "ExampleArtifacts",
    "ExampleKind",
    "build_module",
    "eval_data",
    "train_example_model",
    "write_example",
    "write_model",
]

FORMATS = ("onnx", "torch", "torchscript", "state_dict", "export")


@dataclasses.dataclass(frozen=True)
class ExampleKind:
    """How one example is built and trained."""

    name: str
    factory: str  # "module:function" written into goldwatch-model.json
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    n_classes: int
    data: Callable[..., tuple[np.ndarray, np.ndarray]]
    n_train: int
    n_eval: int
    steps: int
    batch: int
    lr: float

    @property
    def signature(self) -> Signature:
        return Signature(
            inputs=(TensorSpec(self.input_name, "float32", (None, *self.input_shape)),),
            outputs=(TensorSpec(self.output_name, "float32", (None, self.n_classes)),),
        )


KINDS: dict[str, ExampleKind] = {
    "tabular": ExampleKind(
        "tabular", "goldwatch.examples.models:tabular_mlp", "x", "logits", (8,), 3, tabular_data,
        n_train=2000, n_eval=256, steps=150, batch=250, lr=1e-2,
    ),
    "conv": ExampleKind(
        "conv", "goldwatch.examples.models:small_cnn", "image", "logits", (1, 16, 16), 4, image_data,
        n_train=1024, n_eval=256, steps=60, batch=128, lr=1e-2,
    ),
}


@dataclasses.dataclass(frozen=True)
class ExampleArtifacts:
    """Paths of a written example; ``models`` maps a format (onnx, torchscript, state_dict, export) to its path."""

    kind: str
    out_dir: Path
    models: dict[str, Path]
    inputs: Path
    labels: Path
    signature: Signature
    accuracy: float
    seed: int

    @property
    def onnx(self) -> Path | None:
        return self.models.get("onnx")

    @property
    def torch(self) -> Path | None:
        """The TorchScript file, else the state-dict directory."""
        return self.models.get("torchscript") or self.models.get("state_dict")


def _kind(kind: str) -> ExampleKind:
    if kind not in KINDS:
        raise InvalidInputError(f"unknown example kind {kind!r}", where="KIND", hint=f"use one of {sorted(KINDS)}")
    return KINDS[kind]


def build_module(kind: str) -> Any:
    """A fresh, untrained module of the example architecture ``kind``."""
    from goldwatch.runtimes.torch import import_factory

    return import_factory(_kind(kind).factory, where=kind)()


def eval_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The held-out sample inputs and labels written as ``inputs.npz``/``labels.npy`` (fixed, seed-independent)."""
    spec = _kind(kind)
    return spec.data(n=spec.n_eval, seed=1)


def train_example_model(kind: str, *, seed: int = 0) -> tuple[Any, float]:
    """Train the example ``kind`` with weight seed ``seed`` on fixed data; return (eval-mode module, accuracy)."""
    torch = require("torch", purpose="training the example models")
    spec = _kind(kind)
    x, y = spec.data(n=spec.n_train, seed=0)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_module(kind)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    threads = torch.get_num_threads()
    # tiny tensors: one thread is fastest, and OpenMP spin-waiting on a busy machine costs 10x more than it saves
    torch.set_num_threads(1)
    try:
        for _ in range(spec.steps):
            idx = torch.randint(0, len(xt), (spec.batch,), generator=gen)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    xe, ye = eval_data(kind)
    with torch.inference_mode():
        accuracy = float((model(torch.from_numpy(xe)).argmax(1).numpy() == ye).mean())
    return model, accuracy


def write_model(model: Any, kind: str, out_dir: Path, *, formats: Sequence[str]) -> dict[str, Path]:
    """Write ``model`` (an example architecture) in each of ``formats``; return format -> path."""
    torch = require("torch", purpose="writing the example models")
    spec = _kind(kind)
    wanted = set(formats)
    if "torch" in wanted:
        wanted |= {"torchscript", "state_dict"}
    unknown = wanted - set(FORMATS)
    if unknown:
        raise InvalidInputError(f"unknown format(s) {sorted(unknown)}", hint=f"use {list(FORMATS)}")
    sig_json = json.dumps(spec.signature.to_dict())
    example = torch.from_numpy(eval_data(kind)[0][:2])
    paths: dict[str, Path] = {}
    if "onnx" in wanted:
        from goldwatch.examples.onnx_export import sequential_to_onnx

        paths["onnx"] = out_dir / "model.onnx"
        atomic_file(
            paths["onnx"],
            lambda tmp: sequential_to_onnx(
                model, tmp, input_name=spec.input_name, output_name=spec.output_name,
                input_shape=spec.input_shape, n_outputs=spec.n_classes, graph_name=f"goldwatch-example-{kind}",
            ),
            make_parents=True,
        )
    if "torchscript" in wanted:
        paths["torchscript"] = out_dir / "model.pt"
        with warnings.catch_warnings():
            # TorchScript is deprecated in torch >= 2.9 but still what many servers load; keep writing it quietly
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.trace(model, example)
            atomic_file(
                paths["torchscript"],
                lambda tmp: torch.jit.save(scripted, str(tmp), _extra_files={"goldwatch-signature.json": sig_json}),
                make_parents=True,
            )
    if "state_dict" in wanted:
        st = require("safetensors.torch", purpose="writing example weights")
        paths["state_dict"] = out_dir / "model"
        with atomic_dir(paths["state_dict"], overwrite=True, make_parents=True) as tmp:
            st.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "weights.safetensors"))
            descriptor = {
                "format": "goldwatch-model",
                "version": 1,
                "factory": spec.factory,
                "kwargs": {},
                "weights": "weights.safetensors",
                "signature": spec.signature.to_dict(),
            }
            (tmp / DESCRIPTOR_NAME).write_text(json.dumps(descriptor, indent=2) + "\n")
    if "export" in wanted:
        from torch.export import Dim

        paths["export"] = out_dir / "model.pt2"
        program = torch.export.export(model, (example,), dynamic_shapes=({0: Dim("batch", min=1)},))
        atomic_file(
            paths["export"],
            lambda tmp: torch.export.save(program, str(tmp), extra_files={"goldwatch-signature.json": sig_json}),
            make_parents=True,
        )
    return paths


def write_example(
    kind: str,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    formats: Sequence[str] = ("onnx", "torch"),
) -> ExampleArtifacts:
    """Train the example ``kind`` with ``seed`` and write its model files and sample data under ``out_dir``."""
    np_inputs, np_labels = eval_data(kind)
    spec = _kind(kind)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, accuracy = train_example_model(kind, seed=seed)
    models = write_model(model, kind, out, formats=formats)
    inputs, labels = out / "inputs.npz", out / "labels.npy"
    atomic_file(inputs, lambda tmp: _save_npz(tmp, {spec.input_name: np_inputs}))
    atomic_file(labels, lambda tmp: _save_npy(tmp, np_labels))
    return ExampleArtifacts(
        kind=kind, out_dir=out, models=models, inputs=inputs, labels=labels,
        signature=spec.signature, accuracy=accuracy, seed=seed,
    )


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
