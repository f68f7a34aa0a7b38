"""Content-addressed artifact store on the local filesystem.

Layout under the store root::

    objects/ab/abcdef...     each distinct file once, named by its SHA-256, read-only
    trees/<tree digest>/<artifact name>[/...]   an artifact as it was added: hard links to the objects
    manifests/<tree digest>.json                 its integrity manifest
    golden/<tree digest>/<golden set name>/...   a linked golden set as it was added: hard links to the objects

The tree digest covers the artifact's name and every file's relative path, size and SHA-256, so the same bytes
added twice land in the same tree (deduplicated) and a tree's name proves what it should contain. Trees are built
under a temporary name and renamed into place, so a crash never leaves a half-built tree under a real name.
An object no tree links to any more has a link count of 1, which is how garbage collection finds it.

Shared by a fleet (a volume every host mounts): every name is written once, create-only -- an object, tree or
manifest is built under a temporary name and then linked or renamed into place, and a name that already exists is
never overwritten (same name, same bytes: the other writer's copy is kept). Readers therefore never see a partial
file under a real name, on any host. Two things are not create-only, and both run under the registry's exclusive
store lock (no add in flight anywhere): retention deleting trees and objects, and cleaning ``tmp/``. The one
deliberate overwrite is the repair below. :class:`ContentStore` is the interface the registry uses, which an
object-store implementation (S3 ``If-None-Match: *`` puts, a local cache of materialised trees) can provide.

Adding bytes the store already holds re-hashes the stored object (streamed) rather than trusting its name: an
object whose bytes no longer match its name (a disk error, or a served file that was a hard link to it) is replaced
atomically by the good bytes being added, every tree file that shared the corrupted inode is relinked to the
repaired object, and a warning is logged. Re-adding a good copy is therefore how a corrupted object is repaired.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     src = pathlib.Path(d, "model.bin"); _ = src.write_bytes(b"\\x00" * 10)
...     store = ArtifactStore(pathlib.Path(d, "store"))
...     a, b = store.put(src), store.put(src)
...     same = a.tree == b.tree and a.path.read_bytes() == b"\\x00" * 10
>>> same, a.size_bytes, a.path.name
(True, 10, 'model.bin')
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Protocol

from goldwatch import progress
from goldwatch._fs import fsync_dir, fsync_file, tmp_name
from goldwatch.errors import GoldwatchError, RegistryError
from goldwatch.integrity.digest import file_digest
from goldwatch.logs import get_logger
from goldwatch.watchdog.registry._integrity_adapter import write_manifest

__all__ = ["ArtifactStore", "ContentStore", "StoredArtifact", "list_source", "stored_tree_problem"]

log = get_logger(__name__)

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class StoredArtifact:
    tree: str
    path: Path
    manifest_path: Path
    size_bytes: int
    files: int


class ContentStore(Protocol):
    """What the registry needs from a content-addressed store (:class:`ArtifactStore` on a filesystem).

    ``put`` and ``put_golden`` are idempotent and create-only; the paths they return (and ``trees``) are local
    paths the registry verifies and the serving pointer copies from -- an object-store implementation materialises
    a tree into a local cache directory first. ``delete_tree`` and ``clean_tmp`` run only under the registry's
    exclusive store lock.
    """

    root: Path
    trees: Path
    golden: Path

    def ensure(self) -> None: ...
    def put(self, source: Path) -> StoredArtifact: ...
    def put_golden(self, source: Path) -> Path: ...
    def tree_names(self) -> list[str]: ...
    def delete_tree(self, tree: str) -> int: ...
    def clean_tmp(self) -> None: ...


class ArtifactStore:
    """A content-addressed store rooted at ``root`` (created on first use), on a local or shared filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.trees = self.root / "trees"
        self.manifests = self.root / "manifests"
        self.tmp = self.root / "tmp"
        self.golden = self.root / "golden"

    def ensure(self) -> None:
        for d in (self.root, self.objects, self.trees, self.manifests, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    # ---- adding -------------------------------------------------------------------------------------------
    def put(self, source: Path) -> StoredArtifact:
        """Copy ``source`` (a file or a directory tree of regular files) into the store; idempotent."""
        source = Path(source)
        tree, entries, final = self._put_tree(source, self.trees)
        artifact = final / source.name
        manifest = self.manifests / f"{tree}.json"
        if not manifest.exists():
            tmp = self.tmp / tmp_name("manifest", ".json")
            try:
                write_manifest(artifact, tmp)
                _create_only(tmp, manifest)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(self.manifests)
        return StoredArtifact(
            tree=tree, path=artifact, manifest_path=manifest,
            size_bytes=sum(e[2] for e in entries), files=len(entries),
        )

    def put_golden(self, source: Path) -> Path:
        """Copy golden-set directory ``source`` into ``golden/<tree digest>/<name>``; idempotent. Returns its path.

        Golden sets live beside the artifacts' trees, not among them, so retention never takes them for trees
        that no version names; they share the objects (and their deduplication and repair).
        """
        source = Path(source)
        _tree, _entries, final = self._put_tree(source, self.golden)
        return final / source.name

    def _put_tree(self, source: Path, trees: Path) -> tuple[str, list[tuple[str, str, int]], Path]:
        files = list_source(source)
        self.ensure()
        trees.mkdir(exist_ok=True)
        entries: list[tuple[str, str, int]] = []
        for rel, path in files:
            digest, size = self._put_object(path)
            entries.append((rel, digest, size))
        kind = "file" if source.is_file() else "directory"
        tree = _tree_digest(source, entries)
        final = trees / tree
        if not final.exists():
            staging = self.tmp / tmp_name("tree")
            try:
                base = staging / source.name
                if kind == "directory":
                    base.mkdir(parents=True)
                else:
                    staging.mkdir(parents=True)
                for rel, digest, _size in entries:
                    dest = base / rel if kind == "directory" else base
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(self._object_path(digest), dest)
                for d in sorted({p.parent for p in staging.rglob("*")} | {staging}, reverse=True):
                    fsync_dir(d)
                try:
                    os.rename(staging, final)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # someone else built the same tree
                        raise
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            fsync_dir(trees)
        else:
            self._repair_tree(final / source.name, kind, entries)
        return tree, entries, final

    def _object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def _put_object(self, path: Path) -> tuple[str, int]:
        # Copy and hash in one pass, then rename under the digest: readers never see a partial object.
        tmp = self.tmp / tmp_name("obj")
        h = hashlib.sha256()
        size = 0
        on_bytes = progress.byte_callback(None)
        try:
            with path.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
                dst.flush()
                os.fsync(dst.fileno())
            digest = h.hexdigest()
            target = self._object_path(digest)
            if target.exists():
                # Reuse only an object whose bytes still match its name; else the good bytes just copied replace it.
                if file_digest(target, "sha256") == digest:
                    return digest, size
                self._repair_object(tmp, target)
                return digest, size
            target.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            if not _create_only(tmp, target) and file_digest(target, "sha256") != digest:
                self._repair_object(tmp, target)  # another writer's copy, and it does not match its name
                return digest, size
            fsync_dir(target.parent)
            return digest, size
        finally:
            tmp.unlink(missing_ok=True)

    def _repair_object(self, good: Path, target: Path) -> None:
        """Replace the corrupted object ``target`` by ``good`` (fsynced, same digest); relink the trees sharing it."""
        st = target.stat()
        bad = (st.st_dev, st.st_ino)
        os.chmod(good, 0o444)
        os.replace(good, target)
        fsync_dir(target.parent)
        relinked = []
        for trees in (self.trees, self.golden):
            for path in trees.rglob("*") if trees.is_dir() else ():
                pst = path.lstat()
                if stat.S_ISREG(pst.st_mode) and (pst.st_dev, pst.st_ino) == bad:
                    _replace_with(target, path)
                    relinked.append(path)
        log.warning("store object %s did not match its digest: replaced by the bytes being added "
                    "(%d tree file(s) relinked)", target, len(relinked))

    def _repair_tree(self, base: Path, kind: str, entries: list[tuple[str, str, int]]) -> None:
        """Make an existing tree's files the (verified) objects again: a file replaced or lost is restored, a file
        added since is removed (the tree's digest names exactly its entries)."""
        if kind == "directory" and base.is_dir():
            known = {rel for rel, _digest, _size in entries}
            for path in sorted(base.rglob("*"), reverse=True):  # children before their folders
                rel = path.relative_to(base).as_posix()
                if path.is_dir() and not path.is_symlink():
                    if not any(k.startswith(rel + "/") for k in known):
                        shutil.rmtree(path, ignore_errors=True)
                elif rel not in known:
                    log.warning("store tree file %s is not part of the tree: removed", path)
                    path.unlink(missing_ok=True)
        for rel, digest, _size in entries:
            dest = base / rel if kind == "directory" else base
            obj = self._object_path(digest)
            try:
                if os.path.samefile(dest, obj) or file_digest(dest, "sha256") == digest:
                    continue
            except FileNotFoundError:
                pass
            log.warning("store tree file %s did not match its object: restored", dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _replace_with(obj, dest)

    def tree_names(self) -> list[str]:
        """The tree digests the store holds."""
        return sorted(p.name for p in self.trees.iterdir()) if self.trees.is_dir() else []

    # ---- removing -----------------------------------------------------------------------------------------
    def delete_tree(self, tree: str) -> int:
        """Remove tree ``tree``, its manifest, and objects nothing else links to; returns the bytes freed."""
        final = self.trees / tree
        freed = 0
        if final.exists():
            # Rename first: a crash mid-delete leaves a tmp directory (cleaned later), never a partial tree.
            doomed = self.tmp / tmp_name("delete")
            os.rename(final, doomed)
            fsync_dir(self.trees)
            linked = [p for p in doomed.rglob("*") if p.is_file()]
            inodes = {(p.stat().st_dev, p.stat().st_ino) for p in linked}
            shutil.rmtree(doomed)
            for obj in self.objects.glob("*/*"):
                st = obj.stat()
                if (st.st_dev, st.st_ino) in inodes and st.st_nlink == 1:
                    freed += st.st_size
                    obj.unlink()
        (self.manifests / f"{tree}.json").unlink(missing_ok=True)
        return freed

    def clean_tmp(self) -> None:
        """Remove leftovers of crashed writers (only call while holding the registry lock)."""
        if self.tmp.exists():
            for entry in self.tmp.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _tree_digest(source: Path, entries: list[tuple[str, str, int]]) -> str:
    """The tree digest of ``source`` (its name, file or directory, and every (relative path, SHA-256, size))."""
    kind = "file" if source.is_file() else "directory"
    listing = json.dumps([source.name, kind, sorted(entries)], separators=(",", ":")).encode()
    return hashlib.sha256(listing).hexdigest()


def stored_tree_problem(path: Path) -> str | None:
    """Why the stored tree at ``<trees>/<tree digest>/<name>`` no longer holds what its digest names, or None.

    Every file is re-hashed: a golden set edited in the store (its tolerances loosened, an expected answer replaced,
    a file added or removed) would otherwise go on vouching for a model version. Paths that are not in that
    ``<64 hex digits>/<name>`` layout (golden sets recorded by path in older registries) give None: nothing names
    what they should contain.
    """
    expected = path.parent.name
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        return None
    try:
        entries = [(rel, file_digest(p, "sha256"), p.stat().st_size) for rel, p in list_source(path)]
    except (GoldwatchError, OSError) as exc:  # file_digest reports unreadable files as ArtifactError
        return f"cannot read the stored tree: {exc}"
    actual = _tree_digest(path, entries)
    if actual != expected:
        return f"its files no longer match the digest it was stored under ({expected[:12]}..., now {actual[:12]}...)"
    return None


def list_source(source: Path) -> list[tuple[str, Path]]:
    if not source.exists():
        raise RegistryError("artifact not found", where=str(source), hint="pass an existing model file or directory")
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise RegistryError("not a regular file or directory", where=str(source))
    out: list[tuple[str, Path]] = []
    for path in sorted(source.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            # A link could point anywhere (outside the artifact, at /etc/passwd); content addressing needs bytes.
            raise RegistryError(
                "symbolic links are not stored", where=str(path), hint="replace the link with the file it points to"
            )
        if stat.S_ISREG(mode):
            out.append((path.relative_to(source).as_posix(), path))
        elif not stat.S_ISDIR(mode):
            raise RegistryError("not a regular file", where=str(path))
    if not out:
        raise RegistryError("the directory holds no files", where=str(source), hint="add the model's files to it")
    return out



def _create_only(tmp: Path, name: Path) -> bool:
    """Give the finished file ``tmp`` the name ``name`` unless it exists (another writer won); True if ours.

    ``link`` fails on an existing name on every POSIX filesystem, NFS included; ``tmp`` stays for the caller to
    remove. Filesystems without hard links get a rename that refuses to overwrite where the kernel can.
    """
    try:
        os.link(tmp, name)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    if name.exists():
        return False
    os.rename(tmp, name)  # no hard links here: last-writer-wins, but the bytes are the same (same digest)
    return True


def _replace_with(obj: Path, dest: Path) -> None:
    """Atomically make ``dest`` a link to (or copy of) ``obj``: built under a temporary name, then renamed."""
    tmp = dest.with_name(tmp_name(dest.name))
    try:
        _link_or_copy(obj, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        # Filesystems without hard links: copy (the object then only serves deduplication of later adds).
        shutil.copyfile(src, dest)
        fsync_file(dest)
