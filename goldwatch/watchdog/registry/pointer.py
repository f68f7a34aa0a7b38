"""The serving pointer: what the inference server loads, switched atomically, in two layouts.

Both layouts serve a private copy of the version, never the store's own files: the store's trees are hard links to
its objects, so a served file that is the store's file would let one corrupted served byte corrupt the backup (and
every version sharing that object) that a rollback needs intact.

``current-link`` (MLServer, custom servers): ``<serving dir>/current`` is a (relative) symbolic link to
``.goldwatch-versions/<version>-<digest12>/<artifact>``, a copy of the version's artifact in the serving directory.
Staging copies the artifact into a directory with a temporary name, fsyncs every file, writes and fsyncs
``.goldwatch-pointer.json`` beside the artifact (which store path and label the copy holds: what :meth:`read`
reports), fsyncs the directories, renames it to its final name and fsyncs ``.goldwatch-versions``; then it creates
the new link under a temporary name and fsyncs the serving directory. Switching ``os.replace``-s that link over
``current`` (atomic: a reader sees the old or the new target, never neither), fsyncs the serving directory, and
only then removes the copies ``current`` no longer names. A crash before the switch leaves the old link and an
unserved copy (removed by :meth:`cleanup`); after it, the new link and perhaps old copies (removed likewise).

``numbered`` (Triton's model repository): ``<serving dir>/<N>/`` holds the files of the version served. Switching
copies the artifact into a staging directory with a non-numeric name (which Triton ignores), fsyncs every file,
then the staging directory, renames it to ``N+1`` and fsyncs the serving directory; only then are lower numbers
removed. A crash between the rename and the removal leaves two numbered directories, and the highest, which is the
one Triton serves under its default ``latest`` policy, is the new one. Which store path each number holds is
recorded beside the numbered directories (``.goldwatch-pointer.json``), so the served copy holds exactly the
artifact's files and re-verifies against its manifest.

The fsync order is what makes a switch durable as well as atomic: file contents, then the directory that holds
them, then the rename, then the directory that holds the renamed entry.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     v1, v2 = pathlib.Path(d, "v1"), pathlib.Path(d, "v2")
...     for v in (v1, v2): v.mkdir(); _ = (v / "w.bin").write_text(v.name)
...     ptr = make_pointer("numbered", pathlib.Path(d, "serve"))
...     ptr.switch(ptr.stage(v1, label="m:1")); ptr.switch(ptr.stage(v2, label="m:2"))
...     state = ptr.read()
...     names = sorted(p.name for p in ptr.directory.iterdir())
>>> state.label, state.number, names
('m:2', 2, ['.goldwatch-pointer.json', '2'])
>>> with tempfile.TemporaryDirectory() as d:
...     v1 = pathlib.Path(d, "store", "v1"); v1.mkdir(parents=True); _ = (v1 / "w.bin").write_text("v1")
...     ptr = make_pointer("current-link", pathlib.Path(d, "serve"))
...     ptr.switch(ptr.stage(v1, label="m:1"))
...     _ = (ptr.link / "w.bin").write_text("corrupted")  # the served copy, not the store's file
...     state, kept = ptr.read(), (v1 / "w.bin").read_text()
>>> state.label, state.source == v1.resolve(), kept
('m:1', True, 'v1')
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from goldwatch._fs import atomic_write, fsync_dir, fsync_file, tmp_name
from goldwatch.errors import RegistryError

__all__ = [
    "CurrentLinkPointer", "NumberedPointer", "PointerState", "ServingPointer", "Staged", "make_pointer",
]

MARKER = ".goldwatch-pointer.json"
VERSIONS_DIR = ".goldwatch-versions"
_STAGING_PREFIX = ".goldwatch-staging"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class PointerState:
    """What the pointer serves now: ``source`` is the store path it was switched to, ``label`` who set it."""

    source: Path
    label: str
    number: int | None = None


@dataclasses.dataclass(frozen=True)
class Staged:
    """A switch prepared and durable under a temporary name, not yet visible to the server.

    ``handle`` is what a non-filesystem pointer needs to finish the switch (e.g. an MLflow model version).
    """

    path: Path
    source: Path
    label: str
    handle: str | None = None


class ServingPointer(Protocol):
    layout: str

    def read(self) -> PointerState | None: ...
    def stage(self, source: Path, *, label: str) -> Staged: ...
    def switch(self, staged: Staged) -> None: ...
    def served_path(self) -> Path | None: ...
    def cleanup(self) -> list[Path]: ...
    def spec(self) -> dict[str, str]: ...


def make_pointer(layout: str, directory: Path) -> ServingPointer:
    """The pointer for ``layout`` ('current-link' or 'numbered') in ``directory`` (created if missing)."""
    if layout == "current-link":
        return CurrentLinkPointer(Path(directory))
    if layout == "numbered":
        return NumberedPointer(Path(directory))
    raise RegistryError(
        f"unknown serving layout {layout!r}", where="registry.layout", hint="use 'current-link' or 'numbered'"
    )


def _write_labels(path: Path, labels: Mapping[str, object]) -> None:
    """Write the labels file atomically; the directory is fsynced after the rename, and a failure to is an error."""
    atomic_write(path, json.dumps(labels, indent=1, sort_keys=True), strict_dir_sync=True)


def _ensure_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise RegistryError(
            "the serving directory is not a directory", where=str(directory), hint="point serving_dir at a directory"
        )
    directory.mkdir(parents=True, exist_ok=True)


def _copy_artifact(source: Path, dest: Path) -> None:
    """Copy ``source`` (file or directory) to ``dest`` as private, writable copies (never links into the store)."""
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, dest)
    for path in [dest, *dest.rglob("*")] if dest.is_dir() else [dest]:
        if path.is_file():
            os.chmod(path, 0o644)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every directory deepest first, ``root`` last."""
    entries = list(root.rglob("*"))
    for path in entries:
        if path.is_file() and not path.is_symlink():
            fsync_file(path)
    for d in sorted({p for p in entries if p.is_dir() and not p.is_symlink()} | {root}, reverse=True):
        fsync_dir(d)


def _copy_name(source: Path, label: str) -> str:
    """``<version>-<digest12>``: the version from the label (``model:version``), the digest from the store tree."""
    version = re.sub(r"[^A-Za-z0-9._-]", "_", label.rpartition(":")[2]).lstrip(".") or "artifact"
    tree = source.parent.name
    digest = tree if _HEX64.match(tree) else hashlib.sha256(str(source).encode()).hexdigest()
    return f"{version[:64]}-{digest[:12]}"


class CurrentLinkPointer:
    """``<directory>/current`` -> ``.goldwatch-versions/<version>-<digest12>/<artifact>``, a private copy."""

    layout: str = "current-link"

    def __init__(self, directory: Path, *, link_name: str = "current") -> None:
        self.directory = directory
        self.link = directory / link_name
        self.versions = directory / VERSIONS_DIR
        # Written by older goldwatch versions, whose link pointed straight into the store: {target: label}.
        self.labels = directory / MARKER

    def spec(self) -> dict[str, str]:
        return {"layout": self.layout, "directory": str(self.directory)}

    def _target(self) -> Path | None:
        try:
            return Path(os.readlink(self.link))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(
                f"the serving pointer is not a symbolic link ({exc.strerror})", where=str(self.link),
                hint="move the file away; goldwatch manages this name",
            ) from None

    def _copy_of(self, target: Path | None) -> str | None:
        """The name of the copy in ``.goldwatch-versions`` that link target ``target`` points into, if any."""
        if target is None or target.is_absolute():
            return None
        parts = target.parts
        return parts[1] if len(parts) == 3 and parts[0] == VERSIONS_DIR else None

    def read(self) -> PointerState | None:
        target = self._target()
        if target is None:
            return None
        copy = self._copy_of(target)
        if copy is not None:
            # The link target is the truth; the record beside the copy says which store path it was made from.
            try:
                entry = json.loads((self.versions / copy / MARKER).read_text())
                return PointerState(source=Path(entry["source"]), label=str(entry["label"]))
            except (OSError, ValueError, KeyError, TypeError):
                return PointerState(source=self.directory / target, label="")
        # A link straight into the store (made by an older goldwatch): served, with an advisory label.
        label = ""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            label = json.loads(self.labels.read_text()).get(str(target), "")
        return PointerState(source=target, label=str(label))

    def served_path(self) -> Path | None:
        return self.link if self.link.is_symlink() else None

    def stage(self, source: Path, *, label: str) -> Staged:
        source = source.resolve()
        _ensure_dir(self.directory)
        if not self.versions.is_dir():
            self.versions.mkdir()
            fsync_dir(self.directory)
        base = _copy_name(source, label)
        name, n = base, 1
        while (self.versions / name).exists():  # e.g. promoting the version served again: a fresh copy
            n += 1
            name = f"{base}.{n}"
        staging = self.versions / tmp_name(_STAGING_PREFIX)
        final = self.versions / name
        link = self.directory / tmp_name(_STAGING_PREFIX)
        staging.mkdir()
        try:
            _copy_artifact(source, staging / source.name)
            (staging / MARKER).write_text(json.dumps({"source": str(source), "label": label}, sort_keys=True))
            _fsync_tree(staging)
            os.rename(staging, final)
            fsync_dir(self.versions)
            os.symlink(Path(VERSIONS_DIR, name, source.name), link)
            fsync_dir(self.directory)
        except BaseException:
            link.unlink(missing_ok=True)
            for d in (staging, final):
                shutil.rmtree(d, ignore_errors=True)
            raise
        return Staged(path=link, source=source, label=label)

    def switch(self, staged: Staged) -> None:
        os.replace(staged.path, self.link)
        fsync_dir(self.directory)
        # Only now, with the switch durable, drop the copies the link no longer names (never the served one).
        self._drop_unserved()
        if self.labels.exists():
            self.labels.unlink(missing_ok=True)  # the older layout's labels: the copy's own record replaces them
            fsync_dir(self.directory)

    def _drop_unserved(self) -> list[Path]:
        if not self.versions.is_dir():
            return []
        served = self._copy_of(self._target())
        removed = [entry for entry in self.versions.iterdir() if entry.name != served]
        for entry in removed:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if removed:
            fsync_dir(self.versions)
        return removed

    def cleanup(self) -> list[Path]:
        """Remove staged links and every copy the link does not name (call with the registry lock held)."""
        removed = []
        if self.directory.is_dir():
            for entry in self.directory.glob(f".{_STAGING_PREFIX}.tmp-*"):
                entry.unlink(missing_ok=True)
                removed.append(entry)
            if removed:
                fsync_dir(self.directory)
            removed += self._drop_unserved()
        return removed


class NumberedPointer:
    """Triton-style ``<directory>/<N>/`` version directories; the highest number is served."""

    layout: str = "numbered"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Which store path each number holds. Kept beside the numbered directories, not inside them, so the
        # served copy holds exactly the artifact's files (and verifies against its manifest).
        self.labels = directory / MARKER

    def spec(self) -> dict[str, str]:
        return {"layout": self.layout, "directory": str(self.directory)}

    def _numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and p.is_dir())

    def read(self) -> PointerState | None:
        numbers = self._numbers()
        if not numbers:
            return None
        top = numbers[-1]
        try:
            entry = json.loads(self.labels.read_text())[str(top)]
            return PointerState(source=Path(entry["source"]), label=str(entry["label"]), number=top)
        except (OSError, ValueError, KeyError, TypeError):
            # A version directory someone else put there: served, but not by us.
            return PointerState(source=self.directory / str(top), label="", number=top)

    def served_path(self) -> Path | None:
        numbers = self._numbers()
        return self.directory / str(numbers[-1]) if numbers else None

    def stage(self, source: Path, *, label: str) -> Staged:
        _ensure_dir(self.directory)
        staging = self.directory / tmp_name(_STAGING_PREFIX)
        staging.mkdir()
        try:
            # Copies, not links: the served files must not share an inode with the store, or corrupting the
            # served copy would corrupt the very backup a rollback needs.
            _copy_artifact(source, staging if source.is_dir() else staging / source.name)
            _fsync_tree(staging)
            fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Staged(path=staging, source=source.resolve(), label=label)

    def switch(self, staged: Staged) -> None:
        numbers = self._numbers()
        new = self.directory / str((numbers[-1] if numbers else 0) + 1)
        # Label first: a crash before the rename leaves an entry for a number that does not exist (ignored).
        labels = {str(n): e for n, e in self._labels().items() if n.isdigit() and int(n) in numbers[-1:]}
        labels[new.name] = {"source": str(staged.source), "label": staged.label}
        _write_labels(self.labels, labels)
        os.rename(staged.path, new)
        fsync_dir(self.directory)
        self._drop_below(int(new.name))

    def _labels(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.labels.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _drop_below(self, keep: int) -> None:
        dropped = False
        for n in self._numbers():
            if n < keep:
                # Rename out of the numeric namespace first so the server never sees a half-deleted version.
                doomed = self.directory / tmp_name(_STAGING_PREFIX)
                os.rename(self.directory / str(n), doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                dropped = True
        if dropped:
            fsync_dir(self.directory)

    def cleanup(self) -> list[Path]:
        removed = []
        if self.directory.is_dir():
            for entry in self.directory.glob(f".{_STAGING_PREFIX}.tmp-*"):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            numbers = self._numbers()
            if numbers:
                self._drop_below(numbers[-1])
            if removed:
                fsync_dir(self.directory)
        return removed
