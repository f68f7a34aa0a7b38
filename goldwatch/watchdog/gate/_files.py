"""Writing report files atomically: a reader (or a crashed gate) never sees half a report.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "r.md", "# ok\\n")
>>> (d / "r.md").read_text()
'# ok\\n'
"""

from __future__ import annotations

import os
from pathlib import Path

from goldwatch._fs import atomic_write
from goldwatch.errors import InvalidInputError

__all__ = ["ReportPathError", "atomic_write_text", "check_writable"]


class ReportPathError(InvalidInputError):
    """A report path cannot be written (missing folder, no permission, a directory in the way)."""


def check_writable(path: Path, *, option: str) -> None:
    """Fail early, before any work, when ``path`` could not be written later."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ReportPathError(
            "is a directory, expected a file name", where=f"{option} {path}", hint="name a file, e.g. report.xml"
        )
    if not parent.is_dir():
        raise ReportPathError(
            f"folder {parent} does not exist", where=f"{option} {path}", hint=f"create it first: mkdir -p {parent}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportPathError(
            f"folder {parent} is not writable", where=f"{option} {path}", hint="choose a writable folder"
        )


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a temp file next to ``path``, fsync it, then rename it over ``path``.

    A folder the temp file cannot be created in is a :class:`ReportPathError`; a failure after that (disk full)
    propagates as the ``OSError`` it is. Either way the old report is left as it was.
    """
    target = Path(path)

    def unwritable(exc: OSError) -> ReportPathError:
        return ReportPathError(
            f"cannot write here ({exc.strerror})", where=str(target), hint="choose a writable folder"
        )

    atomic_write(target, text, temp_error=unwritable)
