"""Checking an artifact on disk, or tensors in memory, against a manifest -- and saying exactly what differs.

A file whose digest matches is intact (the fast path). When it differs and the manifest has tensor fingerprints,
the tensors are fingerprinted again and each differing 1 MiB block is reported with the tensor and its byte range
(inside the tensor and, where the file stores tensors as byte ranges, inside the file).

>>> import tempfile, pathlib, numpy as np
>>> from goldwatch.integrity.manifest import build_manifest
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "w.bin").write_bytes(bytes(100))
>>> manifest = build_manifest(root, digest="xxh3")
>>> verify_artifact(root, manifest).ok
True
>>> _ = (root / "w.bin").write_bytes(bytes(99) + b"\\x01")
>>> report = verify_artifact(root, manifest)
>>> report.ok, [m.kind for m in report.mismatches]
(False, ['digest'])
>>> print(report.mismatches[0].message)
w.bin: xxh3 digest differs (expected 6ba30a..., found 5bc67c...)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from goldwatch.checks import Check
from goldwatch.errors import ArtifactError, DataError
from goldwatch.integrity.digest import file_digest
from goldwatch.integrity.dtypes import dtype_of
from goldwatch.integrity.fingerprint import TensorFingerprint
from goldwatch.integrity.manifest import (
    ArtifactManifest,
    FileEntry,
    TensorEntry,
    file_tensors,
    list_artifact_files,
)

__all__ = ["IntegrityReport", "Mismatch", "fingerprint_any", "verify_artifact", "verify_tensors"]

MismatchKind = Literal[
    "missing", "unexpected", "size", "digest", "unreadable", "dtype", "shape", "block", "swapped", "copied",
]


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One difference. ``start``/``stop``: byte range inside the tensor; ``file_start``/``file_stop``: in the file."""

    kind: MismatchKind
    message: str
    file: str | None = None
    tensor: str | None = None
    block: int | None = None
    start: int | None = None
    stop: int | None = None
    file_start: int | None = None
    file_stop: int | None = None
    expected: str | None = None
    actual: str | None = None


@dataclasses.dataclass
class IntegrityReport:
    """The outcome of a verification: ``ok`` when nothing differs; ``mismatches`` says what, where."""

    subject: str
    mismatches: list[Mismatch]
    files_checked: int = 0
    tensors_checked: int = 0
    bytes_checked: int = 0
    duration_s: float = 0.0
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        return data

    def to_checks(self, prefix: str = "integrity") -> list[Check]:
        """One check per file (artifacts) or one for the tensor set (resident), failing with the mismatches."""
        by_file: dict[str, list[Mismatch]] = {name: [] for name in self.files}
        for m in self.mismatches:
            by_file.setdefault(m.file or self.subject, []).append(m)
        if not by_file:
            by_file[self.subject] = []
        checks = []
        for name, found in by_file.items():
            measured: dict[str, float | int | str | bool | None] = {"mismatches": len(found)}
            if found:
                summary = found[0].message + (f" (+{len(found) - 1} more)" if len(found) > 1 else "")
            else:
                summary = "bytes match the manifest"
            checks.append(Check(
                name=f"{prefix}:{name}", status="fail" if found else "pass", summary=summary, measured=measured,
                threshold={"mismatches": 0}, details={"mismatches": [dataclasses.asdict(m) for m in found]},
                duration_s=self.duration_s,
            ))
        return checks


def _block_mismatches(file: str | None, entry: TensorEntry, actual: TensorFingerprint) -> list[Mismatch]:
    out = []
    for b in entry.fingerprint.diff(actual):
        start, stop = entry.fingerprint.block_range(b)
        if start >= entry.nbytes:
            start, stop = actual.block_range(b)
        fstart = entry.offset + start if entry.offset is not None else None
        fstop = entry.offset + stop if entry.offset is not None else None
        where = ""
        if fstart is not None:
            where = f" (file bytes [{fstart}, {fstop}){' of ' + entry.source if entry.source else ''})"
        prefix = f"{file}: " if file else ""
        out.append(Mismatch(
            kind="block", file=entry.source or file, tensor=entry.name, block=b, start=start, stop=stop,
            file_start=fstart, file_stop=fstop,
            expected=entry.fingerprint.blocks[b] if b < len(entry.fingerprint.blocks) else None,
            actual=actual.blocks[b] if b < len(actual.blocks) else None,
            message=f"{prefix}tensor {entry.name!r} block {b} bytes [{start}, {stop}) differs{where}",
        ))
    return out


def _compare_tensor(file: str | None, entry: TensorEntry, dtype: str, shape: tuple[int, ...],
                    actual: TensorFingerprint | None) -> list[Mismatch]:
    label = f"{file + ': ' if file else ''}tensor {entry.name!r}"
    out = []
    if dtype != entry.dtype:
        out.append(Mismatch(kind="dtype", file=file, tensor=entry.name, expected=entry.dtype, actual=dtype,
                            message=f"{label}: dtype {dtype}, expected {entry.dtype}"))
    if tuple(shape) != tuple(entry.shape):
        out.append(Mismatch(
            kind="shape", file=file, tensor=entry.name, expected=str(list(entry.shape)), actual=str(list(shape)),
            message=f"{label}: shape {list(shape)}, expected {list(entry.shape)}",
        ))
    if actual is not None:
        out += _block_mismatches(file, entry, actual)
    return out


def _moved(file: str | None, expected: Iterable[TensorEntry],
           actual: Mapping[str, TensorFingerprint]) -> tuple[list[Mismatch], set[str]]:
    """Changed tensors whose bytes are another tensor's approved bytes: pairs that trade places are ``swapped``,
    one that now holds another's bytes is ``copied``. The per-tensor fingerprints tell it at once, where block
    mismatches would list every block of both. Returns the mismatches and the tensors they explain."""
    entries = list(expected)
    owners: dict[str, list[str]] = {}
    for e in entries:
        owners.setdefault(e.fingerprint.summary, []).append(e.name)
    holds: dict[str, list[str]] = {}
    for e in entries:
        now = actual.get(e.name)
        if now is None or now.summary == e.fingerprint.summary:
            continue
        others = [o for o in owners.get(now.summary, []) if o != e.name]
        if others:
            holds[e.name] = others
    prefix = f"{file}: " if file else ""
    out: list[Mismatch] = []
    explained: set[str] = set()
    for name, others in holds.items():
        if name in explained:
            continue
        partner = next((o for o in others if name in holds.get(o, [])), None)
        if partner is not None:
            explained |= {name, partner}
            out.append(Mismatch(kind="swapped", file=file, tensor=name, expected=name, actual=partner,
                                message=f"{prefix}tensors {name!r} and {partner!r} were swapped (each now holds the "
                                        "other's approved bytes)"))
        else:
            explained.add(name)
            shown = ", ".join(repr(o) for o in others[:3]) + (" ..." if len(others) > 3 else "")
            out.append(Mismatch(kind="copied", file=file, tensor=name, actual=others[0],
                                message=f"{prefix}tensor {name!r} now holds the approved bytes of {shown}"))
    return out, explained


def _readable(mismatches: list[Mismatch], consumers: Mapping[str, list[str]]) -> list[Mismatch]:
    """Exporter-made tensor names (``onnx::MatMul_769``) followed by the node that reads them."""
    out = []
    for m in mismatches:
        users = consumers.get(m.tensor or "") if m.tensor and "::" in m.tensor else None
        if users:
            label = f"{m.tensor!r} (read by {users[0]}{' and others' if len(users) > 1 else ''})"
            m = dataclasses.replace(m, message=m.message.replace(repr(m.tensor), label, 1))
        out.append(m)
    return out


def _locate_in_file(root: Path, entry: FileEntry) -> list[Mismatch]:
    """Re-fingerprint the tensors of a changed file and compare them with the manifest's."""
    try:
        current = {t.name: t for t in file_tensors(root / entry.path, entry.format)}
    except ArtifactError as err:
        # a file that no longer parses is itself evidence of corruption: report it, not an input error
        return [Mismatch(kind="unreadable", file=entry.path, message=f"{entry.path}: no longer readable ({err.what})")]
    moved, explained = _moved(entry.path, entry.tensors, {n: t.fingerprint for n, t in current.items()})
    out: list[Mismatch] = list(moved)
    for expected in entry.tensors:
        found = current.pop(expected.name, None)
        if found is None:
            out.append(Mismatch(kind="missing", file=entry.path, tensor=expected.name,
                                message=f"{entry.path}: tensor {expected.name!r} is missing"))
            continue
        fingerprint = None if expected.name in explained else found.fingerprint
        out += _compare_tensor(entry.path, expected, found.dtype, found.shape, fingerprint)
    for name in current:
        out.append(Mismatch(kind="unexpected", file=entry.path, tensor=name,
                            message=f"{entry.path}: tensor {name!r} is not in the manifest"))
    if entry.format == "onnx" and any(m.tensor and "::" in m.tensor for m in out):
        from goldwatch.integrity.onnx_parser import initializer_consumers

        out = _readable(out, initializer_consumers(root / entry.path))
    return out


def _as_manifest(manifest: ArtifactManifest | str | os.PathLike[str]) -> ArtifactManifest:
    return manifest if isinstance(manifest, ArtifactManifest) else ArtifactManifest.load(manifest)


def verify_artifact(
    path: str | os.PathLike[str],
    manifest: ArtifactManifest | str | os.PathLike[str],
    *,
    locate: bool = True,
    on_bytes: Callable[[int], None] | None = None,
    exclude: Iterable[str | os.PathLike[str]] = (),
) -> IntegrityReport:
    """Verify the model file or directory at ``path`` against ``manifest`` (an object or a manifest path).

    Missing or unexpected files, size and digest differences are mismatches; with ``locate`` a changed file's tensors
    are fingerprinted again to name the tensor and 1 MiB block that differ. A manifest kept inside the directory
    is not an unexpected file; ``exclude`` names further files to ignore.
    """
    t0 = time.perf_counter()
    exclude = list(exclude)
    if not isinstance(manifest, ArtifactManifest):
        exclude.append(manifest)
    manifest = _as_manifest(manifest)
    path = Path(path)
    if not path.exists():
        raise ArtifactError("no such file or directory", where=str(path), hint="pass the model file or directory")
    if manifest.kind == "directory":
        if not path.is_dir():
            raise ArtifactError("the manifest describes a directory, but this is a file", where=str(path))
        root = path
        names = {f.path: f.path for f in manifest.files}
        present = set(list_artifact_files(path, exclude=exclude))
    else:
        if path.is_dir():
            raise ArtifactError("the manifest describes a single file, but this is a directory", where=str(path))
        root = path.parent
        # the first entry is the file itself, whatever it is called now; the others are relative to its directory
        names = {f.path: (path.name if i == 0 else f.path) for i, f in enumerate(manifest.files)}
        present = {name for name in names.values() if (root / name).is_file()}
    mismatches: list[Mismatch] = []
    report = IntegrityReport(subject=str(path), mismatches=mismatches, files=[names[f.path] for f in manifest.files])
    changed: set[str] = set()
    for entry in manifest.files:
        actual_name = names[entry.path]
        full = root / actual_name
        # a single-file manifest's file is reported under the name it has now (the candidate's), not the approved
        # file's: one corruption is one failure, named after the file that is wrong
        label = actual_name
        approved = f" (approved as {entry.path})" if actual_name != entry.path else ""
        if actual_name not in present:
            mismatches.append(Mismatch(kind="missing", file=label, message=f"{label}: file is missing{approved}"))
            continue
        size = full.stat().st_size
        digest = file_digest(full, manifest.digest, on_bytes=on_bytes)
        report.files_checked += 1
        report.bytes_checked += size
        if size == entry.size and digest == entry.digest:
            continue
        if size != entry.size:
            mismatches.append(Mismatch(kind="size", file=label, expected=str(entry.size), actual=str(size),
                                       message=f"{label}: {size} bytes, expected {entry.size}{approved}"))
        mismatches.append(Mismatch(
            kind="digest", file=label, expected=entry.digest, actual=digest,
            message=f"{label}: {manifest.digest} digest differs"
            + (f" from the approved {entry.path}'s" if actual_name != entry.path else "")
            + f" (expected {entry.digest[:6]}..., found {digest[:6]}...)",
        ))
        changed.add(entry.path)
    if locate:
        # re-fingerprint the tensors of every changed file, and of files whose tensors live in a changed file
        # (an ONNX model's external data)
        for entry in manifest.files:
            sources = {entry.path} | {t.source for t in entry.tensors if t.source}
            if entry.format == "dcp":  # a DCP checkpoint's tensors live in every chunk file beside its .metadata
                sources |= {f.path for f in manifest.files}
            if entry.tensors and sources & changed and names[entry.path] in present:
                renamed = dataclasses.replace(entry, path=names[entry.path])
                mismatches += _locate_in_file(root, renamed)
                report.tensors_checked += len(entry.tensors)
    if manifest.kind == "directory":
        for extra in sorted(present - set(names)):
            mismatches.append(Mismatch(kind="unexpected", file=extra, message=f"{extra}: file is not in the manifest"))
            report.files.append(extra)
    report.duration_s = time.perf_counter() - t0
    return report


def fingerprint_any(tensor: Any, *, backend: str = "auto") -> TensorFingerprint:
    """Fingerprint a torch tensor (on its device) or a numpy array."""
    import numpy as np

    if isinstance(tensor, np.ndarray):
        from goldwatch.integrity.fingerprint_numpy import fingerprint_array

        return fingerprint_array(tensor)
    if type(tensor).__module__.startswith("torch"):
        from goldwatch.integrity.fingerprint_torch import fingerprint_tensor

        return fingerprint_tensor(tensor, backend=backend)  # type: ignore[arg-type]
    raise DataError(f"expected a torch.Tensor or numpy.ndarray, got {type(tensor).__name__}",
                    hint="pass a mapping of tensor name -> tensor or array")


def _manifest_index(manifest: ArtifactManifest, source: str | None) -> dict[str, tuple[FileEntry, TensorEntry]]:
    index: dict[str, tuple[FileEntry, TensorEntry]] = {}
    duplicates = set()
    for f, t in manifest.tensors():
        if source is not None and f.path != source:
            continue
        if t.name in index:
            duplicates.add(t.name)
        index[t.name] = (f, t)
    if source is not None and not any(f.path == source for f in manifest.files):
        raise ArtifactError(f"the manifest has no file {source!r}", where="source",
                            hint=f"use one of {', '.join(f.path for f in manifest.files)}")
    if duplicates:
        files = sorted({f.path for f, t in manifest.tensors() if t.name in duplicates})
        raise ArtifactError(
            f"tensor names occur in several files ({', '.join(sorted(duplicates)[:3])}, ...): {', '.join(files)}",
            where="manifest", hint="pass source= naming the file the tensors were loaded from",
        )
    return index


def verify_tensors(
    tensors: Mapping[str, Any],
    manifest_path: ArtifactManifest | str | os.PathLike[str],
    *,
    strict: bool = True,
    source: str | None = None,
    backend: str = "auto",
) -> IntegrityReport:
    """Verify tensors in memory (name -> torch tensor on any device, or numpy array) against a manifest.

    Each tensor is fingerprinted where it lives (see :mod:`goldwatch.integrity.fingerprint_torch`); dtype, shape and
    every block are compared. With ``strict``, manifest tensors absent from ``tensors`` and tensors absent from the
    manifest are mismatches too; without, only names in both are compared (at least one must be).
    ``source`` picks one file of a manifest whose files share tensor names (e.g. .safetensors and .bin copies).
    """
    t0 = time.perf_counter()
    manifest = _as_manifest(manifest_path)
    index = _manifest_index(manifest, source)
    if not isinstance(tensors, Mapping):
        raise DataError(f"expected a mapping of name -> tensor, got {type(tensors).__name__}")
    mismatches: list[Mismatch] = []
    report = IntegrityReport(subject="resident tensors", mismatches=mismatches, files=["resident"])
    common = [name for name in tensors if name in index]
    if not strict and not common:
        raise DataError(
            f"none of the {len(tensors)} tensors is in the manifest (e.g. {next(iter(tensors), '-')!r}; manifest has "
            f"{next(iter(index), '-')!r})", hint="check that the manifest belongs to this model",
        )
    actuals: dict[str, TensorFingerprint] = {}
    for name, tensor in tensors.items():
        if name not in index:
            if strict:
                mismatches.append(Mismatch(kind="unexpected", file="resident", tensor=name,
                                           message=f"tensor {name!r} is not in the manifest"))
            continue
        actuals[name] = fingerprint_any(tensor, backend=backend)
    moved, explained = _moved(None, (index[n][1] for n in actuals), actuals)
    mismatches += [dataclasses.replace(m, file="resident") for m in moved]
    for name, actual in actuals.items():
        tensor = tensors[name]
        _, entry = index[name]
        report.tensors_checked += 1
        report.bytes_checked += actual.nbytes
        fingerprint = None if name in explained else actual
        found = _compare_tensor(None, entry, dtype_of(tensor), tuple(tensor.shape), fingerprint)
        mismatches += [dataclasses.replace(m, file="resident") for m in found]
    if strict:
        for name in index:
            if name not in tensors:
                mismatches.append(Mismatch(kind="missing", file="resident", tensor=name,
                                           message=f"tensor {name!r} of the manifest is not among the tensors"))
    report.duration_s = time.perf_counter() - t0
    return report
