"""A sentence-embedding transformer built in code: what a published 384-d BERT-style encoder looks like to goldwatch.

Random weights (seeded), the shapes and names of a real one, and what makes real ones hard to gate: three of the 384
output dimensions are nearly constant (their final LayerNorm scale is ~1e-8, or 0 with a 1e-33 shift), so the
smallest numeric change -- an fp16-rounded copy of the weights -- moves their values completely while every
embedding keeps a cosine of ~0.99999 to the original. Nothing is trained and nothing is downloaded.

:func:`write_sentence_encoder` writes it the usual ways:

* ``model.onnx`` -- ``torch.onnx.export`` (TorchScript-based exporter): inputs ``input_ids``, ``attention_mask``,
  ``token_type_ids`` (int64, dynamic batch and sequence), output ``embedding``; some initializers get exporter
  names (``onnx::MatMul_...``);
* ``model.pt`` -- ``torch.jit.trace`` + ``torch.jit.save`` and ``model.pt2`` -- ``torch.export`` +
  ``torch.export.save``, without a signature file: their single output is called ``output``;
* ``model/`` -- the serving module's weights (``weights.safetensors``) with a ``goldwatch-model.json``;
* ``checkpoint/`` -- a published-style checkpoint: sharded safetensors with ``model.safetensors.index.json``,
  carrying ``pooler.*`` and ``embeddings.position_ids`` that mean pooling never uses; its descriptor says so;
* ``inputs.npz`` -- the tokenized ``sentences.txt`` (``[CLS] words [SEP]``, padded to :data:`SEQ_LEN`), and
  with the ``text`` extra (Hugging Face ``tokenizers``) ``tokenizer/tokenizer.json``, which turns
  ``sentences.txt`` into exactly ``inputs.npz``.

>>> ids = tokenize(["the model checks a golden answer"], seq_len=10)
>>> ids["input_ids"][0].tolist()[:3], ids["attention_mask"][0].tolist()
([2, 113, 62], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._fs import atomic_dir, atomic_file
from goldwatch._optional import require
from goldwatch.errors import InvalidInputError
from goldwatch.runtimes.base import DESCRIPTOR_NAME, Signature, TensorSpec

__all__ = [
    "ENCODER_FACTORY",
    "ENCODER_FORMATS",
    "HIDDEN",
    "INPUT_NAMES",
    "NEAR_CONSTANT_DIMS",
    "SEQ_LEN",
    "UNUSED_CHECKPOINT_KEYS",
    "VOCAB",
    "EncoderArtifacts",
    "example_sentences",
    "init_sentence_encoder",
    "round_weights_fp16",
    "tokenize",
    "write_encoder",
    "write_sentence_encoder",
    "write_tokenizer",
]

ENCODER_FACTORY = "goldwatch.examples.models:sentence_encoder"
ENCODER_FORMATS = ("onnx", "torchscript", "export", "state_dict", "checkpoint")
HIDDEN = 384
SEQ_LEN = 16
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: output dimensions whose values hardly vary (scale 1e-8, or 0 with a 1e-33 shift): fp16 rounding zeroes them
NEAR_CONSTANT_DIMS = (7, 191, 300)
#: keys of the published checkpoint that the serving module (mean pooling) does not have
UNUSED_CHECKPOINT_KEYS = ("pooler.*", "embeddings.position_ids")
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_WORD_TEXT = """
    a an the this that every each some model models server servers sidecar gate version versions answer answers
    golden weight weights tensor tensors layer layers bit bits file files disk memory checkpoint manifest digest
    fingerprint replay drift alert incident page rollback candidate baseline embedding embeddings sentence
    sentences vector vectors token tokens cluster node pod request requests response responses queue batch
    checks verifies replays compares measures pages flags rejects promotes restores serves loads returns keeps
    finds reports rounds shifts drifts breaks changes matches passes fails watches stores signs
    quick slow small large new old healthy corrupted silent noisy stable approved wrong right exact near
    warm cold quiet busy remote local
    on in at with from before after under over during without across
    today tonight again twice quickly slowly exactly nearly
"""
_WORDS = sorted(set(_WORD_TEXT.split()))
#: token id of every word: the specials first, then the words in sorted order
VOCAB: dict[str, int] = {tok: i for i, tok in enumerate((*_SPECIALS, *_WORDS))}

_SUBJECTS = ("the model", "a candidate", "the baseline", "every server", "the sidecar", "a new version",
             "the gate", "each replica", "the old checkpoint", "a remote pod")
_VERBS = ("checks", "verifies", "replays", "compares", "measures", "flags", "rejects", "promotes", "restores",
          "serves", "loads", "returns", "keeps", "finds", "reports", "rounds", "matches", "watches")
_OBJECTS = ("a golden answer", "the weights", "every tensor", "some embeddings", "the manifest", "a corrupted file",
            "the digest", "each sentence", "a noisy batch", "the approved version", "an incident", "the drift")
_TAILS = ("", "today", "quickly", "before the rollback", "after the replay", "under load", "on disk",
          "in memory", "without a page", "across the cluster", "again", "exactly")


def example_sentences(n: int, *, seed: int = 0) -> list[str]:
    """``n`` seeded sentences made of :data:`VOCAB`'s words.

    >>> example_sentences(2)
    ['the old checkpoint serves some embeddings', 'the gate measures a golden answer']
    """
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, len(p), size=n) for p in (_SUBJECTS, _VERBS, _OBJECTS, _TAILS)]
    return [" ".join(w for w in (_SUBJECTS[a], _VERBS[b], _OBJECTS[c], _TAILS[d]) if w)
            for a, b, c, d in zip(*parts)]


def tokenize(sentences: Sequence[str], *, seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """Word-level ids ``[CLS] words [SEP]``, truncated and padded to ``seq_len``: the encoder's three inputs."""
    n = len(sentences)
    ids = np.zeros((n, seq_len), np.int64)
    for i, text in enumerate(sentences):
        words = [VOCAB.get(w, VOCAB["[UNK]"]) for w in text.lower().split()][: seq_len - 2]
        row = [VOCAB["[CLS]"], *words, VOCAB["[SEP]"]]
        ids[i, : len(row)] = row
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}


def _signature(output: str = "embedding") -> Signature:
    return Signature(
        inputs=tuple(TensorSpec(n, "int64", (None, None)) for n in INPUT_NAMES),
        outputs=(TensorSpec(output, "float32", (None, HIDDEN)),),
    )


def init_sentence_encoder(seed: int = 0) -> Any:
    """The published model: seeded random weights (BERT's N(0, 0.02) initialisation), the CLS pooler included, and
    the near-constant output dimensions of :data:`NEAR_CONSTANT_DIMS`. Eval mode."""
    torch = require("torch", purpose="building the example sentence encoder")
    from goldwatch.examples.models import sentence_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = sentence_encoder(vocab_size=len(VOCAB), max_len=2 * SEQ_LEN, with_pooler=True)
        with torch.no_grad():
            for name, param in module.named_parameters():
                if "LayerNorm" in name:
                    continue
                if name.endswith("bias"):
                    param.zero_()
                else:
                    param.normal_(0.0, 0.02)
            final = module.encoder.layer[-1].output.LayerNorm
            a, b, c = NEAR_CONSTANT_DIMS
            final.weight[[a, b]] = 1e-8  # these vary by ~1e-9 across sentences
            final.weight[c] = 0.0
            final.bias[c] = 1e-33  # and this one is a constant 1e-33 before the norm
    return module.eval()


def round_weights_fp16(module: Any) -> Any:
    """A copy of ``module`` whose every floating-point weight is rounded to float16 (and stored back as float32).

    What a half-precision release of the same model amounts to: a harmless change, to every weight.
    """
    import copy

    torch = require("torch", purpose="rounding weights")
    out = copy.deepcopy(module)
    with torch.no_grad():
        for tensor in (*out.parameters(), *out.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    return out.eval()


def _serving_state(module: Any) -> dict[str, Any]:
    keys = set(_serving_module().state_dict())
    return {k: v.contiguous() for k, v in module.state_dict().items() if k in keys}


def _serving_module() -> Any:
    from goldwatch.examples.models import sentence_encoder

    return sentence_encoder(**_serving_kwargs())


def _serving_kwargs() -> dict[str, Any]:
    return {"vocab_size": len(VOCAB), "max_len": 2 * SEQ_LEN}


def _example_args(torch: Any) -> tuple[Any, ...]:
    ids = tokenize(example_sentences(2, seed=99))
    return tuple(torch.from_numpy(ids[n]) for n in INPUT_NAMES)


def write_encoder(module: Any, out_dir: str | os.PathLike[str], *, formats: Sequence[str] = ENCODER_FORMATS,
                  ) -> dict[str, Path]:
    """Write ``module`` (from :func:`init_sentence_encoder`) in each of ``formats``; return format -> path."""
    torch = require("torch", purpose="writing the example sentence encoder")
    unknown = set(formats) - set(ENCODER_FORMATS)
    if unknown:
        raise InvalidInputError(f"unknown format(s) {sorted(unknown)}", hint=f"use {list(ENCODER_FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = _example_args(torch)
    paths: dict[str, Path] = {}
    with warnings.catch_warnings():
        # the TorchScript-based exporter and TorchScript itself are deprecated in torch >= 2.9, yet they are what
        # published ONNX and .pt files were made with; write them quietly
        warnings.simplefilter("ignore")
        if "onnx" in formats:
            axes = {n: {0: "batch", 1: "sequence"} for n in INPUT_NAMES} | {"embedding": {0: "batch"}}
            paths["onnx"] = out / "model.onnx"
            atomic_file(paths["onnx"], lambda tmp: torch.onnx.export(
                module, args, str(tmp), dynamo=False, input_names=list(INPUT_NAMES), output_names=["embedding"],
                dynamic_axes=axes, opset_version=17,
            ))
        if "torchscript" in formats:
            traced = torch.jit.trace(module, args)
            paths["torchscript"] = out / "model.pt"
            atomic_file(paths["torchscript"], lambda tmp: torch.jit.save(traced, str(tmp)))
    if "export" in formats:
        from torch.export import Dim

        seq = Dim("sequence", min=2, max=2 * SEQ_LEN)
        dims = {n: {0: Dim("batch", min=1), 1: seq} for n in INPUT_NAMES}
        program = torch.export.export(module, args, dynamic_shapes=dims)
        paths["export"] = out / "model.pt2"
        atomic_file(paths["export"], lambda tmp: torch.export.save(program, str(tmp)))
    st = require("safetensors.torch", purpose="writing example weights")
    if "state_dict" in formats:
        paths["state_dict"] = out / "model"
        with atomic_dir(paths["state_dict"], overwrite=True, make_parents=True) as tmp:
            st.save_file(_serving_state(module), str(tmp / "weights.safetensors"))
            _write_descriptor(tmp, weights="weights.safetensors")
    if "checkpoint" in formats:
        paths["checkpoint"] = out / "checkpoint"
        with atomic_dir(paths["checkpoint"], overwrite=True, make_parents=True) as tmp:
            _write_sharded(st, {k: v.contiguous() for k, v in module.state_dict().items()}, tmp)
            _write_descriptor(tmp, weights="model.safetensors.index.json", ignore_keys=list(UNUSED_CHECKPOINT_KEYS))
    return paths


def _write_sharded(st: Any, state: dict[str, Any], folder: Path) -> None:
    """Two shards and the index that maps every tensor to its shard, as ``save_pretrained`` writes them."""
    names = list(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for file, keys in shards.items():
        st.save_file({k: state[k] for k in keys}, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, file))
    total = sum(int(v.numel() * v.element_size()) for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _write_descriptor(folder: Path, *, weights: str, ignore_keys: list[str] | None = None) -> None:
    descriptor: dict[str, Any] = {
        "format": "goldwatch-model", "version": 1, "factory": ENCODER_FACTORY, "kwargs": _serving_kwargs(),
        "weights": weights, "signature": _signature().to_dict(),
    }
    if ignore_keys:
        descriptor["ignore_keys"] = ignore_keys
    (folder / DESCRIPTOR_NAME).write_text(json.dumps(descriptor, indent=2) + "\n")


def write_tokenizer(folder: str | os.PathLike[str], *, seq_len: int = SEQ_LEN) -> Path:
    """A Hugging Face ``tokenizers`` word-level tokenizer over :data:`VOCAB` (``tokenizer.json`` in ``folder``):
    lower-cased whitespace words, ``[CLS] ... [SEP]``, truncated and padded to ``seq_len`` -- it gives exactly
    what :func:`tokenize` gives. Needs the ``text`` extra."""
    tk = require("tokenizers", purpose="writing the example tokenizer")
    from tokenizers import models, normalizers, pre_tokenizers, processors

    tokenizer = tk.Tokenizer(models.WordLevel(vocab=dict(VOCAB), unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=VOCAB["[PAD]"], pad_token="[PAD]")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    return out


@dataclasses.dataclass(frozen=True)
class EncoderArtifacts:
    """Paths of a written sentence encoder; ``models`` maps a format (see :data:`ENCODER_FORMATS`) to its path."""

    out_dir: Path
    models: dict[str, Path]
    inputs: Path
    sentences: Path
    tokenizer: Path | None
    signature: Signature
    seed: int
    fp16: bool

    @property
    def onnx(self) -> Path:
        return self.models["onnx"]


def write_sentence_encoder(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    fp16: bool = False,
    formats: Sequence[str] = ENCODER_FORMATS,
    n_samples: int = 128,
    tokenizer: bool = True,
) -> EncoderArtifacts:
    """Write the seeded encoder (``fp16``: its fp16-rounded copy) in ``formats``, ``n_samples`` sentences and their
    tokens under ``out_dir``; the tokenizer too when ``tokenizer`` and the ``tokenizers`` library is installed."""
    module = init_sentence_encoder(seed)
    if fp16:
        module = round_weights_fp16(module)
    out = Path(out_dir)
    models = write_encoder(module, out, formats=formats)
    sentences = example_sentences(n_samples, seed=1)
    text_path, inputs_path = out / "sentences.txt", out / "inputs.npz"
    atomic_file(text_path, lambda tmp: _write_lines(tmp, sentences))
    arrays = tokenize(sentences)
    atomic_file(inputs_path, lambda tmp: _save_npz(tmp, arrays))
    tok_dir = None
    if tokenizer:
        try:
            require("tokenizers", purpose="writing the example tokenizer")
        except ImportError:
            tok_dir = None
        else:
            tok_dir = write_tokenizer(out / "tokenizer")
    return EncoderArtifacts(out_dir=out, models=models, inputs=inputs_path, sentences=text_path, tokenizer=tok_dir,
                            signature=_signature(), seed=seed, fp16=fp16)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
