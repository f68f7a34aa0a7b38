"""What each resident tensor is expected to be: the file's bytes, a conversion of them proven at load, or a
fingerprint pinned at load -- and which tensors cannot be covered, with the reason.

For every distinct resident tensor (:mod:`goldwatch.watchdog.agent.resident`) whose name matches a manifest tensor
(:mod:`goldwatch.watchdog.agent.names`):

* same dtype and element count -> ``file``: each pass compares the resident bytes with the file's fingerprint;
* another dtype (a bf16 server loading an fp32 file) and the file's bytes at hand -> the agent recomputes the
  conversion from the verified file at load; resident bytes equal to it -> ``derived`` (that fingerprint is pinned:
  the resident copy is proven to be the file's, converted); otherwise the server transformed them -> ``attested``;
* anything else (another shape: fused or transposed weights; tensors not in the file, such as buffers computed at
  init) -> ``attested``: fingerprinted now, after the file was verified, and pinned;
* packed or quantized weights -> ``unpacked``: read through their unpack function, pinned like ``attested``;
* tensors that cannot be read, or that match ``exclude`` -> ``uncovered``, with the reason.

With ``attest="never"`` only ``file`` and ``derived`` expectations are accepted: anything that would be pinned at
load instead is refused with an :class:`~goldwatch.errors.ArtifactError` naming each tensor and why.

Sharded weights (a rank holds a slice of a manifest tensor) plug in through ``resolve``: a function given a
:class:`ResidentTensor` and the manifest that returns the :class:`Expectation` of exactly the bytes that rank holds,
or None to fall back to name matching. A resolver can take that fingerprint from the verified file -- the file
tensor sliced as the rank's shard is, made contiguous, fingerprinted -- and the agent then checks the shard block by
block like any other tensor. ``DTensor`` parameters take the other route, without reading the file: each rank's
partial fingerprints, gathered and merged across ranks at every pass (:mod:`goldwatch.watchdog.agent.sharded`); the
agent passes them here as ``covered_elsewhere``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from goldwatch.errors import ArtifactError
from goldwatch.integrity.dtypes import dtype_of
from goldwatch.integrity.fingerprint import TensorFingerprint
from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
from goldwatch.integrity.manifest import ArtifactManifest, FileEntry, TensorEntry
from goldwatch.watchdog.agent.names import Rename, match_names
from goldwatch.watchdog.agent.resident import ResidentTensor, resident_tensors
from goldwatch.watchdog.agent.results import Coverage, How, TensorCoverage

__all__ = ["AttestPolicy", "Expectation", "Resolver", "plan_expectations"]

AttestPolicy = Literal["auto", "never"]
#: Sharding hook: expected fingerprint of the bytes a rank holds, or None (then names decide).
Resolver = Callable[[ResidentTensor, ArtifactManifest], "Expectation | None"]


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What one resident tensor must fingerprint to on every pass, and where that expectation came from."""

    resident: ResidentTensor
    expected: TensorFingerprint
    how: How
    manifest_name: str | None = None
    file: str | None = None
    file_offset: int | None = None
    reason: str = ""

    def coverage(self) -> TensorCoverage:
        r = self.resident
        return TensorCoverage(name=r.name, how=self.how, nbytes=self.expected.nbytes, dtype=r.dtype,
                              device=r.device, manifest_name=self.manifest_name, aliases=r.aliases,
                              reason=self.reason)


def _manifest_index(manifest: ArtifactManifest, source: str | None) -> dict[str, tuple[FileEntry, TensorEntry]]:
    index: dict[str, tuple[FileEntry, TensorEntry]] = {}
    for f, t in manifest.tensors():
        if source is not None and f.path != source:
            continue
        if t.name in index and index[t.name][1].fingerprint != t.fingerprint:
            files = sorted({f.path for f, e in manifest.tensors() if e.name == t.name})
            raise ArtifactError(
                f"tensor {t.name!r} is in several files of the manifest with different bytes ({', '.join(files)})",
                where="manifest", hint="pass source= naming the file the server loaded its weights from",
            )
        index.setdefault(t.name, (f, t))
    if source is not None and not any(f.path == source for f in manifest.files):
        raise ArtifactError(f"the manifest has no file {source!r}", where="source",
                            hint=f"use one of {', '.join(f.path for f in manifest.files)}")
    return index


def _file_path(artifact: Path, manifest: ArtifactManifest, entry: FileEntry) -> Path:
    if manifest.kind == "directory":
        return artifact / entry.path
    return artifact if entry is manifest.files[0] else artifact.parent / entry.path


def _file_tensor(path: Path, entry: TensorEntry) -> Any:
    """The file's tensor, read into memory (one tensor at a time, at load only); None if its dtype is unknown."""
    import torch

    dtype = getattr(torch, entry.dtype, None)
    if not isinstance(dtype, torch.dtype) or entry.offset is None:
        return None
    raw = bytearray(entry.nbytes)
    with open(path, "rb") as fh:
        fh.seek(entry.offset)
        if fh.readinto(raw) != entry.nbytes:
            raise ArtifactError(f"tensor {entry.name!r} runs past the end of the file", where=str(path))
    if not raw:
        return torch.zeros(entry.shape, dtype=dtype)
    return torch.frombuffer(raw, dtype=dtype).reshape(entry.shape)


def _from_file(r: ResidentTensor, f: FileEntry, e: TensorEntry, artifact: Path | None,
               manifest: ArtifactManifest) -> Expectation:
    tensor = r.tensor
    dtype, numel = dtype_of(tensor), int(tensor.numel())
    element_count = 1
    for d in e.shape:
        element_count *= d
    same_bytes = dtype == e.dtype and numel == element_count
    offset = e.offset if f.format == "safetensors" else None
    if same_bytes:
        note = "" if tuple(tensor.shape) == tuple(e.shape) else f"reshaped from {list(e.shape)}"
        return Expectation(r, e.fingerprint, "file", e.name, e.source or f.path, offset, note)
    pinned = fingerprint_tensor(tensor)
    if numel != element_count:
        return Expectation(r, pinned, "attested", e.name, reason=(
            f"{dtype}{list(tensor.shape)} resident, {e.dtype}{list(e.shape)} in the file (fused, split or "
            "transformed by the server): pinned at load"))
    if artifact is not None and f.format == "safetensors":
        source = _file_tensor(_file_path(artifact, manifest, f), e)
        if source is not None:
            converted = fingerprint_tensor(source.reshape(tensor.shape).to(tensor.dtype))
            if converted == pinned:
                return Expectation(r, pinned, "derived", e.name, reason=(
                    f"{e.dtype} in the file, {dtype} resident: proven at load to be the file's bytes converted"))
            return Expectation(r, pinned, "attested", e.name, reason=(
                f"{e.dtype} in the file, {dtype} resident, and not a plain conversion of the file's values (the "
                "server transformed them): pinned at load"))
    return Expectation(r, pinned, "attested", e.name, reason=(
        f"{e.dtype} in the file, {dtype} resident (file bytes not at hand to prove the conversion): pinned at load"))


def _not_in_file(r: ResidentTensor) -> Expectation:
    what = {"parameter": "parameter", "buffer": "buffer", "non-persistent buffer": "non-persistent buffer"}.get(
        r.kind, "tensor")
    return Expectation(r, fingerprint_tensor(r.tensor), "attested",
                       reason=f"{what} not in the file: pinned at load")


def plan_expectations(
    module: Any,
    manifest: ArtifactManifest | str | os.PathLike[str],
    *,
    artifact: str | os.PathLike[str] | None = None,
    file_verified: bool = False,
    attest: AttestPolicy = "auto",
    exclude: Sequence[str] = (),
    rename: Rename | None = None,
    source: str | None = None,
    resolve: Resolver | None = None,
    covered_elsewhere: Mapping[str, TensorCoverage] | None = None,
) -> tuple[list[Expectation], Coverage]:
    """The expectations the agent checks on every pass, and the coverage report (see the module docstring).

    ``artifact`` is the model file or directory the manifest describes (verified by the caller when
    ``file_verified``); with it, dtype conversions are proven from the file's bytes. ``exclude``: fnmatch patterns
    of resident names left out (e.g. caches the server writes). ``rename``/``source``/``resolve``: see
    :mod:`goldwatch.watchdog.agent.names` and the module docstring. ``covered_elsewhere``: resident names checked by
    another route (sharded tensors, merged across ranks), with their coverage entries: left out of the plan.
    """
    if attest not in ("auto", "never"):
        raise ArtifactError(f"attest must be 'auto' or 'never', got {attest!r}", where="attest")
    manifest = manifest if isinstance(manifest, ArtifactManifest) else ArtifactManifest.load(manifest)
    root = Path(artifact) if artifact is not None else None
    index = _manifest_index(manifest, source)
    tensors = resident_tensors(module)
    matches, rule = match_names([t.names for t in tensors], set(index), rename=rename)
    expectations: list[Expectation] = []
    uncovered: list[TensorCoverage] = []
    elsewhere: list[TensorCoverage] = []
    elsewhere_by_name = dict(covered_elsewhere or {})
    used: set[str] = set()
    for i, r in enumerate(tensors):
        other = next((elsewhere_by_name[n] for n in r.names if n in elsewhere_by_name), None)
        if other is not None:
            elsewhere.append(other)
            if other.manifest_name:
                used.add(other.manifest_name)
            continue
        pattern = next((p for p in exclude if any(fnmatch.fnmatchcase(n, p) for n in r.names)), None)
        if pattern is not None:
            uncovered.append(TensorCoverage(r.name, "uncovered", r.nbytes, r.dtype, r.device, aliases=r.aliases,
                                            reason=f"excluded by configuration ({pattern!r})"))
            continue
        if r.problem is not None:
            uncovered.append(TensorCoverage(r.name, "uncovered", r.nbytes, r.dtype, r.device, aliases=r.aliases,
                                            reason=r.problem))
            continue
        custom = resolve(r, manifest) if resolve is not None else None
        if custom is not None:
            expectations.append(custom)
            if custom.manifest_name:
                used.add(custom.manifest_name)
            continue
        name = matches.get(i)
        if r.read is not None:  # packed or quantized: no byte-for-byte relation to a float file exists
            what = "backend-packed quantized weights" if r.kind == "packed" else "a quantized tensor"
            expectations.append(Expectation(
                r, fingerprint_tensor(r.read()), "unpacked", name, reason=(
                    f"{what}: read through unpacking (a temporary copy: integer values, scales, zero points"
                    f"{', bias' if r.kind == 'packed' else ''}) and pinned at load")))
        elif name is not None:
            f, e = index[name]
            expectations.append(_from_file(r, f, e, root if file_verified else None, manifest))
        else:
            expectations.append(_not_in_file(r))
        if name is not None:
            used.add(name)
    if attest == "never":
        refused = [(x.resident.name, x.reason) for x in expectations if x.how not in ("file", "derived")]
        refused += [(t.name, t.reason) for t in uncovered if not t.reason.startswith("excluded")]
        if refused:
            listed = "; ".join(f"{n}: {why}" for n, why in refused[:5])
            more = f" (+{len(refused) - 5} more)" if len(refused) > 5 else ""
            raise ArtifactError(
                f"{len(refused)} resident tensor(s) cannot be compared with the file: {listed}{more}",
                where="attest='never'",
                hint="allow attest='auto' to pin them at load after verifying the file, or exclude= them",
            )
    coverage = Coverage(
        tensors=tuple(x.coverage() for x in expectations) + tuple(elsewhere) + tuple(uncovered),
        file_only=tuple(n for n in index if n not in used),
        file_verified=file_verified, name_rule=rule,
    )
    return expectations, coverage
