"""Golden sets from sentences: text inputs tokenized with a Hugging Face ``tokenizers`` tokenizer (``text`` extra).

A text model takes token ids, not text; ``goldwatch golden build --inputs sentences.txt --tokenizer DIR`` turns the
sentences into the model's inputs with the tokenizer the model was published with (``DIR/tokenizer.json``) and
stores those token ids in the golden set, so a replay needs neither the tokenizer nor the text. Texts come one per
line from ``.txt``, or from the one text column (or the ``text`` column) of a ``.csv``/``.parquet`` table.

The model's inputs are filled by name: ``input_ids`` (also ``ids``), ``attention_mask`` (``mask``) and
``token_type_ids`` (``segment_ids``, ``type_ids``), in the dtype the model declares (int64 when it declares none).
Sequences are padded to the longest in the set (or the tokenizer's own padding), or truncated and padded to
``max_length``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import DataError, InvalidInputError
from goldwatch.runtimes.base import Signature

__all__ = ["TEXT_SUFFIXES", "read_texts", "tokenize_texts", "tokenizer_file"]

TEXT_SUFFIXES = (".txt", ".csv", ".parquet", ".pq")
_FIELDS = {
    "input_ids": "ids", "ids": "ids",
    "attention_mask": "attention_mask", "mask": "attention_mask",
    "token_type_ids": "type_ids", "segment_ids": "type_ids", "type_ids": "type_ids",
}


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """The texts of ``path``: non-empty lines of a ``.txt``, or the text column of a table."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DataError(f"text inputs must be .txt, .csv or .parquet, got {suffix or '(none)'!r}", where=str(path))
    if not path.is_file():
        raise DataError("file not found", where=str(path))
    if suffix == ".txt":
        try:
            texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the text ({exc})", where=str(path)) from None
    else:
        import pandas as pd

        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except (OSError, ValueError, ImportError) as exc:
            raise DataError(f"cannot read the table ({exc})", where=str(path)) from None
        text_cols = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        column = "text" if "text" in frame.columns else (text_cols[0] if len(text_cols) == 1 else None)
        if column is None:
            raise DataError(f"cannot tell the text column among {list(frame.columns)}", where=str(path),
                            hint="name it 'text', or keep one text column")
        texts = [str(t) for t in frame[column].tolist()]
    if not texts:
        raise DataError("no texts in the file", where=str(path))
    return texts


def tokenizer_file(tokenizer: str | os.PathLike[str]) -> Path:
    """``DIR/tokenizer.json`` (or the file itself)."""
    path = Path(tokenizer)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise InvalidInputError(f"no tokenizer.json at {path}", where="--tokenizer",
                                hint="pass the folder a Hugging Face tokenizer was saved to (save_pretrained)")
    return file


def tokenize_texts(texts: Sequence[str], tokenizer: str | os.PathLike[str], signature: Signature, *,
                   max_length: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(the model's inputs for ``texts``, provenance: tokenizer file, its sha256, max length)."""
    tk = require("tokenizers", purpose="tokenizing text inputs (--tokenizer)")
    file = tokenizer_file(tokenizer)
    try:
        tok = tk.Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises plain Exceptions for malformed files
        raise InvalidInputError(f"not a tokenizers tokenizer ({' '.join(str(exc).split())[:300]})",
                                where=str(file)) from None
    if max_length is not None:
        if max_length < 1:
            raise InvalidInputError(f"max length must be >= 1, got {max_length}", where="--max-length")
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(length=max_length, **_pad(tok))
    elif tok.padding is None:
        tok.enable_padding(**_pad(tok))  # to the longest sequence of the set
    unknown = [s.name for s in signature.inputs if s.name not in _FIELDS]
    if unknown or not signature.inputs:
        raise DataError(
            f"the model's input(s) {unknown or '(none published)'} are not tokenizer outputs "
            f"({sorted(_FIELDS)})", where="--tokenizer", hint="give pre-tokenized inputs as .npz instead",
        )
    encodings = tok.encode_batch(list(texts))
    arrays = {}
    for spec in signature.inputs:
        dtype = np.dtype(spec.dtype or "int64")
        arrays[spec.name] = np.asarray([getattr(e, _FIELDS[spec.name]) for e in encodings], dtype=dtype)
    provenance = {"tokenizer": str(file), "tokenizer_sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
                  "max_length": max_length, "texts": len(texts)}
    return arrays, provenance


def _pad(tok: Any) -> dict[str, Any]:
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        pad_id = tok.token_to_id(token)
        if pad_id is not None:
            return {"pad_id": pad_id, "pad_token": token}
    return {}
