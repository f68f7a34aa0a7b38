"""The registry's thin layer over :mod:`goldwatch.integrity`: write a manifest, and re-verify against it.

Manifests are :class:`~goldwatch.integrity.ArtifactManifest` files (written by
:func:`~goldwatch.integrity.build_manifest`, read by :meth:`~goldwatch.integrity.ArtifactManifest.load`), checked by
:func:`~goldwatch.integrity.verify_artifact`. For the registry, an artifact that is missing, or whose manifest cannot
be read, is a failed :class:`Verification` whose problem says why (the :class:`~goldwatch.errors.ArtifactError`'s
message), not an exception: selection, retention and rollback readiness go on to the next version.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     art = pathlib.Path(d, "w.bin"); _ = art.write_bytes(b"weights")
...     man = pathlib.Path(d, "w.manifest.json"); write_manifest(art, man)
...     good = verify(art, man).ok
...     _ = art.write_bytes(b"weightz")
...     bad = verify(art, man)
>>> good, bad.ok, bad.problems[0].startswith("w.bin: sha256 digest differs")
(True, False, True)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from goldwatch.checks import Check
from goldwatch.errors import ArtifactError
from goldwatch.integrity import ArtifactManifest, build_manifest, verify_artifact

__all__ = ["Verification", "verify", "write_manifest"]


@dataclasses.dataclass(frozen=True)
class Verification:
    """The registry's view of an integrity report: ok, human-readable problems, and the checks."""

    ok: bool
    problems: list[str]
    checks: list[Check]


def _failed(problem: str) -> Verification:
    return Verification(False, [problem], [Check(name="registry:artifact", status="fail", summary=problem)])


def write_manifest(artifact: Path, out: Path) -> None:
    """Compute the manifest of ``artifact`` (file or directory) and write it atomically to ``out``."""
    build_manifest(artifact).save(out)


def verify(artifact: Path, manifest: Path) -> Verification:
    """Re-verify ``artifact`` against ``manifest``; a missing artifact or unreadable manifest fails, never raises."""
    if not artifact.exists():
        return _failed(f"{artifact}: artifact is missing")
    try:
        report = verify_artifact(artifact, ArtifactManifest.load(manifest))
    except ArtifactError as exc:
        # A manifest or artifact too broken to even compare is, for the registry, an artifact that fails.
        return _failed(str(exc))
    return Verification(report.ok, [m.message for m in report.mismatches], report.to_checks(prefix="registry"))
