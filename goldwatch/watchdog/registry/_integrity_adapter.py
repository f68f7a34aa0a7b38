"""Adapter to :mod:`goldwatch.integrity` (build_manifest / verify_artifact), with a small local fallback.

The registry depends on the integrity contract only: ``build_manifest(path) -> ArtifactManifest`` with ``.save``,
``ArtifactManifest.load`` and ``verify_artifact(path, manifest) -> report`` with ``.ok`` and ``.mismatches``.
While that package is not importable, manifests are written in a minimal SHA-256 format of our own, tagged with
:data:`FALLBACK_FORMAT`; verification dispatches on the file's format, so manifests written either way keep
verifying after the integrity package lands.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     art = pathlib.Path(d, "w.bin"); _ = art.write_bytes(b"weights")
...     man = pathlib.Path(d, "w.manifest.json"); write_manifest(art, man)
...     good = verify(art, man).ok
...     _ = art.write_bytes(b"weightz")
...     bad = verify(art, man)
>>> good, bad.ok, bad.problems[0].startswith("w.bin: sha256")
(True, False, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from goldwatch._fs import atomic_write
from goldwatch.checks import Check
from goldwatch.errors import ArtifactError

__all__ = ["FALLBACK_FORMAT", "Verification", "verify", "write_manifest"]

FALLBACK_FORMAT = "goldwatch.registry.sha256-manifest/1"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Verification:
    """The registry's view of an integrity report: ok, human-readable problems, and the checks."""

    ok: bool
    problems: list[str]
    checks: list[Check]


def _integrity() -> Any | None:
    """goldwatch.integrity when it provides the contract, else None (looked up at call time, not import time)."""
    try:
        import goldwatch.integrity as integrity
    except ImportError:  # pragma: no cover - the package exists, its contents may not yet
        return None
    if all(hasattr(integrity, n) for n in ("build_manifest", "verify_artifact", "ArtifactManifest")):
        return integrity
    return None


def _files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    found = sorted(p for p in path.rglob("*") if p.is_file())
    return [(p.relative_to(path).as_posix(), p) for p in found]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(artifact: Path, out: Path) -> None:
    """Compute the manifest of ``artifact`` (file or directory) and write it atomically to ``out``."""
    integrity = _integrity()
    if integrity is not None:
        integrity.build_manifest(artifact).save(out)
        return
    data = {
        "format": FALLBACK_FORMAT,
        "root": artifact.name,
        "kind": "file" if artifact.is_file() else "directory",
        "files": {rel: {"size": p.stat().st_size, "sha256": _sha256(p)} for rel, p in _files(artifact)},
    }
    atomic_write(out, json.dumps(data, indent=1, sort_keys=True))


def _read_fallback(manifest: Path) -> dict[str, Any] | None:
    try:
        with manifest.open("rb") as fh:
            head = fh.read(4096)
        if FALLBACK_FORMAT.encode() not in head:
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read the manifest ({exc})", where=str(manifest)) from None
    return data if isinstance(data, dict) and data.get("format") == FALLBACK_FORMAT else None


def verify(artifact: Path, manifest: Path) -> Verification:
    """Re-verify ``artifact`` against ``manifest``; a missing artifact is a failed verification, not an error."""
    if not artifact.exists():
        problem = f"{artifact}: artifact is missing"
        return Verification(False, [problem], [Check(name="registry:artifact", status="fail", summary=problem)])
    fallback = _read_fallback(manifest)
    if fallback is None:
        integrity = _integrity()
        if integrity is None:
            raise ArtifactError(
                "manifest is not in the registry's fallback format and goldwatch.integrity is unavailable",
                where=str(manifest),
            )
        try:
            report = integrity.verify_artifact(artifact, integrity.ArtifactManifest.load(manifest))
        except ArtifactError as exc:
            # A manifest or artifact too broken to even compare is, for the registry, an artifact that fails.
            problem = str(exc)
            return Verification(False, [problem], [Check(name="registry:artifact", status="fail", summary=problem)])
        problems = [getattr(m, "message", str(m)) for m in report.mismatches]
        return Verification(bool(report.ok), problems, list(report.to_checks(prefix="registry")))
    expected: dict[str, dict[str, Any]] = fallback["files"]
    actual = dict(_files(artifact))
    problems = [f"{rel}: missing" for rel in expected if rel not in actual]
    problems += [f"{rel}: not in the manifest" for rel in actual if rel not in expected]
    for rel, meta in expected.items():
        if rel not in actual:
            continue
        path = actual[rel]
        if path.stat().st_size != meta["size"]:
            problems.append(f"{rel}: size {path.stat().st_size} != {meta['size']}")
        elif _sha256(path) != meta["sha256"]:
            problems.append(f"{rel}: sha256 differs")
    summary = "; ".join(problems) if problems else f"{len(expected)} file(s) match their sha256"
    check = Check(
        name="registry:artifact:digest", status="fail" if problems else "pass", summary=summary,
        measured={"files": len(actual), "mismatches": len(problems)},
    )
    return Verification(not problems, problems, [check])
