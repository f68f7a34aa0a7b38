"""Crash-safe file writes, shared by every part of goldwatch that writes a file a reader may see half-written.

A write goes to a temporary file beside the target (same directory, so same filesystem), is flushed and fsynced,
then ``os.replace``-d over the target, and finally the directory is fsynced so the rename itself is durable. A
reader sees the old content or the new, never a mix; a crash or an error leaves the old file and no temporary.

The fsync order is what makes a rename durable as well as atomic: the data must reach the disk *before* the rename
(or a power cut can leave the new name pointing at empty blocks), and the rename is only on disk once the directory
that holds the entry is fsynced.

Temporary files are created with mode 0o666 and directories with 0o777, less the process umask, exactly like files
an ordinary ``open`` would create (``tempfile.mkstemp`` would make them 0o600). Their names are hidden and unique
(``.<name>.tmp-<pid>-<random><suffix>``); the suffix is kept because some writers (``numpy.savez``, exporters)
look at it.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(d / "a.json", '{"ok": true}\\n')
>>> atomic_file(d / "b.bin", lambda tmp: tmp.write_bytes(b"\\x00\\x01"))
>>> with atomic_dir(d / "set", overwrite=False) as tmp:
...     _ = (tmp / "x.txt").write_text("x")
>>> sorted(p.name for p in d.iterdir()), (d / "a.json").read_text(), (d / "set" / "x.txt").read_text()
(['a.json', 'b.bin', 'set'], '{"ok": true}\\n', 'x')
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeAlias

__all__ = ["atomic_dir", "atomic_file", "atomic_write", "fsync_dir", "fsync_file", "replace_dir", "tmp_name"]

StrPath: TypeAlias = "str | os.PathLike[str]"


def fsync_file(path: StrPath) -> None:
    """Flush the content of the file at ``path`` to disk.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as fh:
    ...     fsync_file(fh.name)
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: StrPath) -> None:
    """Make the entries of directory ``path`` (creations, renames, deletions) durable; raises ``OSError`` on failure.

    >>> import tempfile
    >>> fsync_dir(tempfile.gettempdir())
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir_after_rename(path: Path) -> None:
    # The new content is already in place when this runs; a filesystem (or platform) that cannot fsync a directory
    # must not turn a completed write into an error. Callers that must know (the registry) fsync the directory
    # themselves with :func:`fsync_dir`.
    with contextlib.suppress(OSError):
        fsync_dir(path)


def tmp_name(prefix: str, suffix: str = "") -> str:
    """A unique hidden name for staging: pid + random, so concurrent writers and crashed leftovers never clash.

    >>> name = tmp_name("model.onnx", ".onnx")
    >>> name.startswith(".model.onnx.tmp-"), name.endswith(".onnx")
    (True, True)
    """
    return f".{prefix}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _create_temp(path: Path) -> Path:
    """Create an empty temporary file beside ``path`` (mode 0o666 less the umask) and return its path."""
    tmp = path.with_name(tmp_name(path.name, path.suffix))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def _commit(tmp: Path, path: Path, *, strict_dir_sync: bool = False) -> None:
    """Rename the fsynced ``tmp`` over ``path`` and fsync the directory; ``tmp`` is removed if the rename fails."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if strict_dir_sync:
        fsync_dir(path.parent)
    else:
        _sync_dir_after_rename(path.parent)


def atomic_write(
    path: StrPath,
    data: bytes | str,
    *,
    make_parents: bool = False,
    temp_error: Callable[[OSError], BaseException] | None = None,
    strict_dir_sync: bool = False,
) -> None:
    """Write ``data`` (``str`` is encoded as UTF-8) to ``path`` atomically and durably.

    ``make_parents`` creates missing parent directories first. ``temp_error`` maps an ``OSError`` raised while
    creating the temporary file (folder missing, read-only, full) to the exception to raise instead; errors after
    that (a failed write or fsync) propagate as they are. Either way the old file is left untouched.
    ``strict_dir_sync`` makes a failed fsync of the directory after the rename an error (the registry's pointer
    labels); by default it is best effort, since the new content is in place by then.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "r.md"
    >>> atomic_write(p, "# ok\\n", make_parents=True)
    >>> atomic_write(p, b"# new\\n")
    >>> p.read_text(), [q.name for q in p.parent.iterdir()]
    ('# new\\n', ['r.md'])
    >>> atomic_write(p.parent / "missing" / "x", "x", temp_error=lambda exc: ValueError(exc.strerror))
    Traceback (most recent call last):
    ...
    ValueError: No such file or directory
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        tmp = _create_temp(target)
    except OSError as exc:
        if temp_error is None:
            # name the file the user asked for, not our temporary name
            raise type(exc)(exc.errno, exc.strerror, str(target)) from None
        raise temp_error(exc) from None
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _commit(tmp, target, strict_dir_sync=strict_dir_sync)


def atomic_file(path: StrPath, write: Callable[[Path], None], *, make_parents: bool = False) -> None:
    """Call ``write(tmp)`` for a temporary path beside ``path`` (same suffix), fsync it, and rename it to ``path``.

    For writers that want a file name rather than bytes (``torch.jit.save``, ``onnx.save``, ...). If ``write``
    raises, the temporary is removed and ``path`` is left as it was.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.npy"
    >>> atomic_file(p, lambda tmp: tmp.write_bytes(tmp.suffix.encode()))
    >>> p.read_bytes()
    b'.npy'
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        write(tmp)
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _commit(tmp, target)


@contextlib.contextmanager
def atomic_dir(path: StrPath, *, overwrite: bool, make_parents: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; on success it replaces ``path``, on error it vanishes.

    Every file written into it, then every directory in it (deepest first), is fsynced before the rename, so the
    new directory is complete on disk when it appears under its name. An existing ``path`` is replaced only with
    ``overwrite`` (else ``FileExistsError``). ``make_parents`` creates missing parent directories first.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "set"
    >>> with atomic_dir(d, overwrite=False) as tmp:
    ...     _ = (tmp / "a").write_text("1")
    >>> with atomic_dir(d, overwrite=True) as tmp:
    ...     _ = (tmp / "b").write_text("2")
    >>> [p.name for p in d.iterdir()], [p.name for p in d.parent.iterdir()]
    (['b'], ['set'])
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(tmp_name(target.name))
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        entries = list(tmp.rglob("*"))
        for entry in entries:
            if entry.is_file() and not entry.is_symlink():
                fsync_file(entry)
        for d in sorted({p for p in entries if p.is_dir() and not p.is_symlink()} | {tmp}, reverse=True):
            with contextlib.suppress(OSError):
                fsync_dir(d)
        replace_dir(tmp, target, overwrite=overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(src: StrPath, dst: StrPath, *, overwrite: bool) -> None:
    """Rename directory ``src`` to ``dst``; an existing ``dst`` is moved aside first (only with ``overwrite``), then
    removed, and the parent directory is fsynced.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "new").mkdir(); (d / "old").mkdir()
    >>> replace_dir(d / "new", d / "old", overwrite=False)
    Traceback (most recent call last):
    ...
    FileExistsError: ...
    >>> replace_dir(d / "new", d / "old", overwrite=True)
    >>> [p.name for p in d.iterdir()]
    ['old']
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise FileExistsError(dst)
        aside = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, aside)
        os.replace(src, dst)
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)
    else:
        os.replace(src, dst)
    _sync_dir_after_rename(dst.parent)
