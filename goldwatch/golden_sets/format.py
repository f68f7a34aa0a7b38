"""The on-disk golden set: a directory with a JSON manifest and pickle-free ``.npz`` data files.

Layout::

    golden/
      golden.json      manifest: schema version, model identity + digest, IO signature, tolerances (and how they
                       were derived), output roles, baseline metrics, provenance, sha256 of every data file
      inputs.npz       one array per model input (batch first)
      expected.npz     one array per model output: the approved model's answers
      labels.npz       optional: "labels", one integer class per sample

Loading checks every data file's sha256 before reading it and reads with ``allow_pickle=False``; a tampered,
truncated or foreign file is a :class:`~goldwatch.errors.GoldenSetError` naming the file. Saving writes a
temporary directory beside the target and renames it into place, so a crash never leaves half a golden set.

The golden set's own digest, ``sha256:`` of the exact ``golden.json`` bytes, pins all of it: the manifest holds the
tolerances and the sha256 of every data file. ``goldwatch golden build`` prints it; pin it where the golden set is
used (``GoldenSet.load(path, expected_digest=...)``, ``goldwatch golden replay --golden-digest``) and a loosened
tolerance or a replaced answer is refused -- something the data files' digests alone cannot catch, since whoever
edits the manifest can edit the digests in it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goldwatch._fs import atomic_dir
from goldwatch.errors import GoldenSetError, InvalidInputError, StateError
from goldwatch.runtimes.base import ModelIdentity, Signature

__all__ = [
    "FORMAT", "MANIFEST_NAME", "SCHEMA_VERSION", "GoldenSet", "Role", "Tolerance", "check_digest_spelling", "immutable",
    "require_digest", "split_pinned",
]

FORMAT = "goldwatch-golden-set"
SCHEMA_VERSION = 1
MANIFEST_NAME = "golden.json"

#: scores: class scores/logits (top-1, top-k, label accuracy); embedding: vectors (cosine); tensor: anything else
Role = Literal["scores", "embedding", "tensor"]
ROLES = ("scores", "embedding", "tensor")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Per-output tolerance: replayed outputs pass when ``max |a - e| <= atol`` and the per-sample relative error
    ``max_j |a_ij - e_ij| / max(max_j |e_ij|, floor_abs / floor_rel) <= rtol``. ``derivation`` records how both
    were obtained (see :mod:`goldwatch.golden_sets.calibrate`)."""

    atol: float
    rtol: float
    derivation: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "derivation": dict(self.derivation)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerance:
        return cls(atol=float(data["atol"]), rtol=float(data["rtol"]), derivation=dict(data.get("derivation") or {}))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return buf.getvalue()


@dataclasses.dataclass
class GoldenSet:
    """A loaded (or freshly built) golden set. ``path`` is where it lives on disk, ``None`` before saving."""

    model: ModelIdentity
    signature: Signature
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    tolerances: dict[str, Tolerance]
    roles: dict[str, str]
    labels: np.ndarray | None = None
    baseline: dict[str, Any] = dataclasses.field(default_factory=dict)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None
    schema_version: int = SCHEMA_VERSION
    #: ``sha256:<hex>`` of the golden.json it was saved as or loaded from; None for one never written
    digest: str | None = None

    def __post_init__(self) -> None:
        # the approved answers (and their labels) never change after capture: the golden set holds them immutable
        # (its own read-only arrays, not views of someone else's), which also lets replays cache what they derive
        self.expected = {name: _frozen(array) for name, array in self.expected.items()}
        if self.labels is not None:
            self.labels = _frozen(self.labels)

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @property
    def output_names(self) -> list[str]:
        return list(self.expected)

    def tolerance(self, output: str) -> Tolerance:
        """The calibrated tolerance of ``output`` (``KeyError`` for an unknown output)."""
        return self.tolerances[output]

    def to_dict(self) -> dict[str, Any]:
        """A JSON summary (the manifest without file digests); the arrays are not included."""
        summary = {k: v for k, v in self.manifest(files={}).items() if k != "files"}
        return summary | {"path": self.path, "digest": self.digest}

    # -- manifest ---------------------------------------------------------------------------------------------

    def manifest(self, *, files: Mapping[str, str]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "model": self.model.to_dict(),
            "signature": self.signature.to_dict(),
            "n_samples": self.n_samples,
            "outputs": {
                name: {"role": self.roles.get(name, "tensor"), "tolerance": self.tolerances[name].to_dict()}
                for name in self.expected
            },
            "has_labels": self.labels is not None,
            "baseline": self.baseline,
            "provenance": self.provenance,
            "files": dict(files),
        }

    def _data_files(self) -> dict[str, bytes]:
        files = {"inputs.npz": _npz_bytes(self.inputs), "expected.npz": _npz_bytes(self.expected)}
        if self.labels is not None:
            files["labels.npz"] = _npz_bytes({"labels": self.labels})
        return files

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the golden set to directory ``path`` atomically; an existing one is replaced only with
        ``overwrite``."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise GoldenSetError(
                "the output directory already exists", where=str(target), hint="choose a new directory or overwrite"
            )
        if target.exists() and not target.is_dir():
            raise GoldenSetError("the output path is a file, not a directory", where=str(target))
        files = self._data_files()
        digests = {name: _sha256(data) for name, data in files.items()}
        manifest = (json.dumps(_jsonable(self.manifest(files=digests)), indent=2, allow_nan=False) + "\n").encode()
        with atomic_dir(target, overwrite=overwrite, make_parents=True) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            (tmp / MANIFEST_NAME).write_bytes(manifest)
        self.path = target
        self.digest = "sha256:" + _sha256(manifest)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, expected_digest: str | None = None) -> GoldenSet:
        """Read and verify the golden set in directory ``path``; with ``expected_digest`` (``sha256:<hex>``, as
        printed when it was built) refuse one whose manifest differs from the pinned one."""
        root = Path(path)
        manifest_path = root / MANIFEST_NAME
        where = str(manifest_path)
        if expected_digest is not None:
            expected_digest = check_digest_spelling(expected_digest)  # a malformed pin fails before any I/O
        if not root.is_dir():
            raise GoldenSetError("golden set directory not found", where=str(root), hint="pass a golden set folder")
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError:
            raise GoldenSetError(
                f"no {MANIFEST_NAME} here: not a golden set", where=str(root), hint="build one: goldwatch golden build"
            ) from None
        except OSError as exc:
            raise GoldenSetError(f"unreadable manifest ({exc})", where=where) from None
        digest = "sha256:" + _sha256(raw)
        if expected_digest is not None:
            require_digest(digest, expected_digest, where=where)  # before parsing anything an edit may have planted
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GoldenSetError(f"unreadable manifest ({exc})", where=where) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise GoldenSetError(f"not a golden set manifest (format must be {FORMAT!r})", where=where)
        version = manifest.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise GoldenSetError(f"bad schema_version {version!r}", where=where)
        if version > SCHEMA_VERSION:
            raise StateError(
                f"golden set schema {version} is newer than this goldwatch understands ({SCHEMA_VERSION})",
                where=where,
                hint="upgrade goldwatch",
            )
        try:
            files: dict[str, str] = dict(manifest["files"])
            signature = Signature.from_dict(manifest["signature"])
            model = ModelIdentity.from_dict(manifest["model"])
            outputs = dict(manifest["outputs"])
            tolerances = {n: Tolerance.from_dict(o["tolerance"]) for n, o in outputs.items()}
            roles = {n: str(o.get("role", "tensor")) for n, o in outputs.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise GoldenSetError(f"malformed manifest: missing or bad {exc}", where=where) from None
        bad_roles = {n: r for n, r in roles.items() if r not in ROLES}
        if bad_roles:
            raise GoldenSetError(f"unknown output role(s) {bad_roles}", where=where, hint=f"roles are {list(ROLES)}")
        for required in ("inputs.npz", "expected.npz"):
            if required not in files:
                raise GoldenSetError(f"manifest lists no {required}", where=where)
        arrays = {name: _read_npz(root / name, files[name]) for name in files}
        inputs, expected = arrays["inputs.npz"], arrays["expected.npz"]
        labels = arrays["labels.npz"].get("labels") if "labels.npz" in arrays else None
        golden = cls(
            model=model,
            signature=signature,
            inputs=inputs,
            expected=expected,
            tolerances=tolerances,
            roles=roles,
            labels=labels,
            baseline=dict(manifest.get("baseline") or {}),
            provenance=dict(manifest.get("provenance") or {}),
            path=root,
            schema_version=version,
            digest=digest,
        )
        golden._validate(where=str(root))
        return golden

    def _validate(self, *, where: str) -> None:
        """The data must agree with the manifest: names, batch sizes, a tolerance per output."""
        if sorted(self.inputs) != sorted(self.signature.input_names):
            raise GoldenSetError(
                f"inputs.npz holds {sorted(self.inputs)}, the manifest's signature names {self.signature.input_names}",
                where=where,
            )
        if not self.expected or not set(self.expected) <= set(self.signature.output_names):
            raise GoldenSetError(
                f"expected.npz holds {sorted(self.expected)}, the signature names {self.signature.output_names}",
                where=where,
            )
        if set(self.tolerances) != set(self.expected):
            raise GoldenSetError(
                f"tolerances cover {sorted(self.tolerances)}, the outputs are {sorted(self.expected)}", where=where
            )
        sizes = {f"input {k}": v.shape[0] if v.ndim else -1 for k, v in self.inputs.items()}
        sizes |= {f"output {k}": v.shape[0] if v.ndim else -1 for k, v in self.expected.items()}
        if self.labels is not None:
            sizes["labels"] = self.labels.shape[0] if self.labels.ndim == 1 else -1
        if len(set(sizes.values())) != 1 or -1 in sizes.values() or 0 in sizes.values():
            raise GoldenSetError(f"arrays disagree on the number of samples: {sizes}", where=where)


def immutable(array: np.ndarray) -> bool:
    """Neither ``array`` nor any array it views can be written through (a read-only view of a writeable array can
    still change under it). Golden sets hold such arrays; only those may have what is derived from them cached.

    >>> a = np.zeros(3); v = a[:2]; v.flags.writeable = False
    >>> immutable(v), immutable(np.frombuffer(b"abcd", np.uint8))
    (False, True)
    """
    base: object = array
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only if it owns its data, else a read-only copy that does (a read-only view of a writeable
    array could still change under the golden set)."""
    if immutable(array):
        return array
    if array.base is None:
        array.flags.writeable = False
        return array
    owned = np.array(array, copy=True)
    owned.flags.writeable = False
    return owned


def check_digest_spelling(digest: str, *, where: str = "--golden-digest") -> str:
    """``digest`` if it is spelled ``sha256:`` + 64 lowercase hex digits (a bare hex digest gets the prefix).

    >>> check_digest_spelling("AB" * 32)[:11]
    'sha256:abab'
    """
    value = digest.strip().lower()
    if not value.startswith("sha256:"):
        value = "sha256:" + value
    hexpart = value.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidInputError(
            f"not a golden set digest: {digest!r}",
            where=where,
            hint="use the sha256:<64 hex digits> printed by goldwatch golden build",
        )
    return value


def split_pinned(spec: str | os.PathLike[str], *, where: str = "--golden") -> tuple[Path, str | None]:
    """``DIR`` or ``DIR@sha256:HEX`` (a golden set pinned to its digest): the folder, and the digest or None.

    >>> split_pinned("golden@sha256:" + "AB" * 32)[1][:11], split_pinned("golden")
    ('sha256:abab', (PosixPath('golden'), None))
    """
    text = os.fspath(spec)
    folder, pinned, digest = text.rpartition("@sha256:")
    if not pinned:
        return Path(text), None
    return Path(folder), check_digest_spelling("sha256:" + digest, where=where)


def require_digest(found: str | None, pinned: str, *, where: str) -> None:
    """Raise :class:`GoldenSetError` unless a golden set whose digest is ``found`` (None: never saved or loaded) is
    the one ``pinned`` (``sha256:<hex>``, or bare hex)."""
    pinned = check_digest_spelling(pinned)
    if found == pinned:
        return
    raise GoldenSetError(
        f"golden set digest mismatch: pinned {pinned[:19]}..., found {str(found)[:19]}"
        + ("..." if found else "")
        + " (its tolerances, answers or inputs are not the approved ones)",
        where=where,
        hint="an in-memory golden set has a digest only once saved or loaded: pass its path instead"
        if found is None
        else "restore the golden set from a trusted copy, or pin the digest of a golden set you approved",
    )


def _read_npz(path: Path, digest: str) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GoldenSetError("data file listed in the manifest is missing", where=str(path)) from None
    actual = _sha256(data)
    if actual != digest:
        raise GoldenSetError(
            f"sha256 mismatch: the manifest says {digest[:16]}..., the file has {actual[:16]}... "
            "(tampered, corrupted or replaced)",
            where=str(path),
            hint="restore the golden set from a trusted copy, or rebuild it from an approved model",
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise GoldenSetError(f"unreadable npz data ({exc})", where=str(path)) from None


def _jsonable(obj: Any) -> Any:
    from goldwatch.serialize import to_jsonable

    return to_jsonable(obj)
