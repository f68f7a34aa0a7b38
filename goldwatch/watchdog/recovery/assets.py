"""Training assets (datasets, checkpoints), their backups, and the training RPO (disaster recovery, scenario 5).

A backup that was never restored is not a backup. Each asset (``[[recovery.assets]]`` in goldwatch.toml) is a file
or directory with a manifest (:func:`register`: every file's digest; tensors' fingerprints for checkpoints, so a
corrupted block is located); each backup is a snapshot folder under the asset's ``backups`` folder::

    <backups>/<snapshot>/goldwatch-backup.json   asset, taken_at (epoch s, when the data was read), files, bytes
    <backups>/<snapshot>/manifest.json           the manifest of exactly what the snapshot holds
    <backups>/<snapshot>/data/<name>             the asset's files (name = the asset path's last part)

:func:`take_backup` writes one (the copy is verified against the source's manifest before the snapshot appears,
atomically); other tools can write the same layout. :func:`check_asset` restores snapshots, newest first, into a
scratch folder (a copy, or ``restore_command``) and verifies every digest against the snapshot's manifest until one
verifies: that one is the newest verified restore point, and the training RPO is its age. Every snapshot tried
and failed is reported with what was wrong (a file missing, a digest or size that differs, unreadable metadata).

>>> import tempfile, pathlib
>>> from goldwatch.config import AssetConfig
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "train").mkdir(); _ = (d / "train" / "part-0.csv").write_text("x,y\\n1,2\\n")
>>> asset = AssetConfig(name="train", path=d / "train", backups=d / "backups", rpo_seconds=3600)
>>> first = take_backup(asset, now=1000.0)
>>> second = take_backup(asset, now=1060.0)
>>> flip_byte(second.data / "train" / "part-0.csv", 0)  # bit rot in the newest backup
>>> status = check_asset(asset, scratch=d / "scratch", now=1090.0)
>>> [(v.snapshot == second.snapshot, v.ok) for v in status.verifications]
[(True, False), (False, True)]
>>> status.restore_point.snapshot == first.snapshot, status.rpo_s, status.rpo_met
(True, 90.0, True)
>>> [(c.name.split(":")[0], c.status) for c in status.to_checks()]
[('backup', 'fail'), ('backup', 'pass'), ('rpo', 'pass'), ('asset', 'skip')]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goldwatch._fs import atomic_dir, atomic_write
from goldwatch.checks import Check, Status
from goldwatch.config import AssetConfig
from goldwatch.errors import ArtifactError, GoldwatchError, InvalidInputError, StateError

__all__ = [
    "BACKUP_FILE",
    "AssetStatus",
    "Backup",
    "BackupVerification",
    "check_asset",
    "flip_byte",
    "iso",
    "list_backups",
    "register",
    "restore_backup",
    "take_backup",
]

BACKUP_FILE = "goldwatch-backup.json"
MANIFEST_FILE = "manifest.json"
DATA_DIR = "data"
_FORMAT = "goldwatch-backup"


@dataclasses.dataclass(frozen=True)
class Backup:
    """One snapshot of an asset: where it is, when its data was read (``taken_at``, epoch seconds)."""

    asset: str
    snapshot: str
    path: Path
    taken_at: float
    files: int
    size_bytes: int

    @property
    def data(self) -> Path:
        return self.path / DATA_DIR

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def taken_at_iso(self) -> str:
        return iso(self.taken_at)


@dataclasses.dataclass(frozen=True)
class BackupVerification:
    """One restore-and-verify of one snapshot: ``ok`` when every file restored and every digest matched."""

    snapshot: str
    taken_at: float | None
    ok: bool
    problems: tuple[str, ...]
    restore_s: float
    verify_s: float
    files: int = 0
    size_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class AssetStatus:
    """What one run found: each snapshot tried (newest first), the newest verified restore point, the RPO
    (``now - its taken_at``; None: nothing verifies), and the live asset against its manifest (None: not checked)."""

    asset: str
    checked_at: float
    rpo_target_s: float
    verifications: tuple[BackupVerification, ...]
    restore_point: BackupVerification | None
    live: Check | None = None

    @property
    def rpo_s(self) -> float | None:
        if self.restore_point is None or self.restore_point.taken_at is None:
            return None
        return round(self.checked_at - self.restore_point.taken_at, 6)

    @property
    def rpo_met(self) -> bool:
        return self.rpo_s is not None and self.rpo_s <= self.rpo_target_s

    @property
    def failed(self) -> list[BackupVerification]:
        return [v for v in self.verifications if not v.ok]

    def to_checks(self) -> list[Check]:
        """``backup:<snapshot>`` per snapshot tried, ``rpo:<asset>``, ``asset:<asset>`` (skip without a manifest)."""
        checks = []
        for v in self.verifications:
            summary = (f"{v.snapshot} (taken {iso(v.taken_at)}) restores and every digest matches "
                       f"({v.files} file(s), restore {v.restore_s:.2f} s, verify {v.verify_s:.2f} s)" if v.ok else
                       f"{v.snapshot} fails to restore and verify: {'; '.join(v.problems[:3])}"
                       + (f" (+{len(v.problems) - 3} more)" if len(v.problems) > 3 else ""))
            checks.append(Check(name=f"backup:{v.snapshot}", status="pass" if v.ok else "fail", summary=summary,
                                measured={"restore_s": round(v.restore_s, 6), "verify_s": round(v.verify_s, 6),
                                          "files": v.files, "bytes": v.size_bytes},
                                details={"problems": list(v.problems[:50]), "taken_at": v.taken_at}))
        point = self.restore_point
        rpo = self.rpo_s
        status: Status = "pass" if self.rpo_met else "fail"
        if point is None:
            summary = (f"no backup of {self.asset} restores and verifies ({len(self.verifications)} tried): "
                       "nothing to retrain from" if self.verifications else f"{self.asset} has no backup at all")
        else:
            summary = (f"RPO {rpo:.1f} s: the newest verified restore point is {point.snapshot} (taken "
                       f"{iso(point.taken_at)}); target {self.rpo_target_s:g} s"
                       + ("" if self.rpo_met else " EXCEEDED"))
        checks.append(Check(name=f"rpo:{self.asset}", status=status, summary=summary,
                            measured={"rpo_s": rpo, "restore_point": point.snapshot if point else None,
                                      "restore_point_taken_at": point.taken_at if point else None},
                            threshold={"rpo_s": self.rpo_target_s}))
        checks.append(self.live or Check(name=f"asset:{self.asset}", status="skip",
                                         summary="no manifest registered for the live asset (goldwatch asset "
                                                 "register): only its backups are checked"))
        return checks


def iso(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _snapshot_id(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"


def _manifest(path: Path, asset: AssetConfig) -> Any:
    from goldwatch.integrity import build_manifest

    # checkpoints: tensor fingerprints too, so a corrupted backup is located to tensor and 1 MiB block
    return build_manifest(path, fingerprints=asset.kind == "checkpoint")


def register(asset: AssetConfig) -> Path:
    """Write the live asset's manifest to ``asset.manifest`` (every file's digest); returns its path."""
    if asset.manifest is None:
        raise InvalidInputError(f"asset {asset.name!r} has no manifest path", where=f"recovery.assets[{asset.name}]",
                                hint="set manifest = \"...\" for it in goldwatch.toml")
    manifest = _manifest(Path(asset.path), asset)
    manifest.save(asset.manifest)
    return Path(asset.manifest)


def take_backup(asset: AssetConfig, *, now: float | None = None) -> Backup:
    """Snapshot the asset into ``<backups>/<snapshot>``: manifest of the source, copy, verify the copy, then the
    snapshot appears (atomically). ``now`` stamps it (default: the time the source was read)."""
    from goldwatch.integrity import verify_artifact

    source = Path(asset.path)
    if not source.exists():
        raise ArtifactError(f"the asset {asset.name!r} does not exist", where=str(source),
                            hint="check recovery.assets[].path")
    taken_at = time.time() if now is None else float(now)
    manifest = _manifest(source, asset)
    backups = Path(asset.backups)
    backups.mkdir(parents=True, exist_ok=True)
    snapshot = _snapshot_id(taken_at)
    final = backups / snapshot
    if final.exists():
        raise StateError(f"snapshot {snapshot} already exists", where=str(final), hint="try again in a moment")
    with atomic_dir(final, overwrite=False) as tmp:
        copy = tmp / DATA_DIR / source.name
        copy.parent.mkdir()
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=False)
        else:
            shutil.copy2(source, copy)
        report = verify_artifact(copy, manifest, locate=False)
        if not report.ok:
            raise StateError(f"the asset changed while it was copied ({report.mismatches[0].message})",
                             where=str(source), hint="take the backup again when nothing writes to it")
        manifest.save(tmp / MANIFEST_FILE)
        meta = {"format": _FORMAT, "version": 1, "asset": asset.name, "kind": asset.kind, "snapshot": snapshot,
                "taken_at": taken_at, "taken_at_iso": iso(taken_at), "source": str(source.resolve()),
                "name": source.name, "files": len(manifest.files), "bytes": sum(f.size for f in manifest.files)}
        atomic_write(tmp / BACKUP_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
    return Backup(asset.name, snapshot, final, taken_at, meta["files"], meta["bytes"])


def _read_backup(asset: AssetConfig, folder: Path) -> Backup:
    try:
        meta = json.loads((folder / BACKUP_FILE).read_text())
        if meta.get("format") != _FORMAT or meta.get("asset") != asset.name:
            raise ValueError(f"not a {_FORMAT} of {asset.name!r}")
        return Backup(asset.name, folder.name, folder, float(meta["taken_at"]), int(meta.get("files") or 0),
                      int(meta.get("bytes") or 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"unreadable backup metadata ({exc})", where=str(folder / BACKUP_FILE)) from None


def list_backups(asset: AssetConfig) -> tuple[list[Backup], list[BackupVerification]]:
    """The asset's snapshots, newest first, and the snapshot folders whose metadata cannot be read (failed)."""
    folder = Path(asset.backups)
    if not folder.is_dir():
        return [], []
    found, broken = [], []
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue  # a snapshot being written is a hidden temporary folder
        try:
            found.append(_read_backup(asset, entry))
        except ArtifactError as exc:
            broken.append(BackupVerification(entry.name, None, False, (str(exc),), 0.0, 0.0))
    found.sort(key=lambda b: (b.taken_at, b.snapshot), reverse=True)
    return found, broken


def restore_backup(asset: AssetConfig, backup: Backup, scratch: Path) -> Path:
    """Restore ``backup`` into the empty folder ``scratch``; returns where the asset is (``scratch/<name>``)."""
    name = Path(asset.path).name
    scratch.mkdir(parents=True, exist_ok=True)
    if any(scratch.iterdir()):
        raise InvalidInputError("the restore folder is not empty", where=str(scratch),
                                hint="restore into a new, empty folder")
    target = scratch / name
    if asset.restore_command:
        argv = [a.replace("{snapshot}", str(backup.path)).replace("{scratch}", str(scratch))
                .replace("{asset}", asset.name) for a in asset.restore_command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=asset.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StateError(f"restore command {argv[0]} failed: {exc}", where="recovery.assets.restore_command") \
                from None
        if done.returncode != 0:
            raise StateError(f"restore command exited with status {done.returncode}: "
                             f"{(done.stderr or done.stdout).strip()[-300:]}", where="recovery.assets.restore_command")
        if not target.exists():
            raise StateError(f"the restore command left nothing at {target}", where="recovery.assets.restore_command",
                             hint="it must restore the asset as {scratch}/" + name)
        return target
    source = backup.data / name
    if not source.exists():
        raise ArtifactError(f"the snapshot holds no {DATA_DIR}/{name}", where=str(backup.path))
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False)
    else:
        shutil.copy2(source, target)
    return target


def verify_backup(asset: AssetConfig, backup: Backup, scratch: Path) -> BackupVerification:
    """Restore ``backup`` into a fresh folder under ``scratch``, check every digest, remove the copy."""
    from goldwatch.integrity import ArtifactManifest, verify_artifact

    work = scratch / f".{asset.name}-{backup.snapshot}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    restore_s = 0.0
    try:
        manifest = ArtifactManifest.load(backup.manifest)
        restored = restore_backup(asset, backup, work)
        restore_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = verify_artifact(restored, manifest)
        verify_s = time.perf_counter() - t1
        problems = tuple(m.message for m in report.mismatches)
        return BackupVerification(backup.snapshot, backup.taken_at, report.ok, problems, restore_s, verify_s,
                                  len(manifest.files), sum(f.size for f in manifest.files))
    except (GoldwatchError, OSError) as exc:
        took = time.perf_counter() - t0
        return BackupVerification(backup.snapshot, backup.taken_at, False, (str(exc),), restore_s or took, 0.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _live(asset: AssetConfig) -> Check | None:
    from goldwatch.integrity import verify_artifact

    if asset.manifest is None:
        return None
    name = f"asset:{asset.name}"
    try:
        report = verify_artifact(Path(asset.path), Path(asset.manifest))
    except (GoldwatchError, OSError) as exc:
        return Check(name=name, status="fail", summary=f"the live {asset.kind} cannot be verified: {exc}")
    if report.ok:
        return Check(name=name, status="pass", summary=f"the live {asset.kind} matches its manifest "
                     f"({report.files_checked} file(s))", measured={"mismatches": 0})
    first = report.mismatches[0].message
    more = f" (+{len(report.mismatches) - 1} more)" if len(report.mismatches) > 1 else ""
    return Check(name=name, status="fail", summary=f"the live {asset.kind} is lost or corrupted: {first}{more}",
                 measured={"mismatches": len(report.mismatches)}, threshold={"mismatches": 0},
                 details={"mismatches": [m.message for m in report.mismatches[:50]]})


def check_asset(asset: AssetConfig, *, scratch: Path, now: float | None = None,
                snapshots: Sequence[Backup] | None = None) -> AssetStatus:
    """Restore-and-verify the asset's snapshots, newest first, until one verifies; check the live asset."""
    found, broken = list_backups(asset) if snapshots is None else (list(snapshots), [])
    verifications: list[BackupVerification] = list(broken)
    point = None
    for backup in found:
        result = verify_backup(asset, backup, Path(scratch))
        verifications.append(result)
        if result.ok:
            point = result
            break
    verifications.sort(key=lambda v: (v.taken_at if v.taken_at is not None else float("inf")), reverse=True)
    live = _live(asset)
    checked_at = time.time() if now is None else float(now)  # when all of it was known: pages are dated so
    return AssetStatus(asset.name, checked_at, asset.rpo_seconds, tuple(verifications), point, live)


def flip_byte(path: Path, offset: int, *, mask: int = 0x01) -> None:
    """Flip bits ``mask`` of the byte at ``offset`` of ``path`` in place (fault injection for tests and drills;
    flipping again restores it)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        if not byte:
            raise InvalidInputError(f"offset {offset} is past the end of the file", where=str(path))
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ mask]))
        fh.flush()
        os.fsync(fh.fileno())
