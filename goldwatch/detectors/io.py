"""Reading a table of samples for the drift tests: ``.npy``, ``.npz``, ``.csv``, ``.parquet``.

:func:`open_table` also reads Parquet (or CSV) directories and globs -- and single files when asked to be lazy --
as dask dataframes, read partition by partition by whoever computes them (a Dask cluster, or dask's local
scheduler): data larger than memory never has to be loaded at once.

Arrays never go through pickle (``allow_pickle=False``); a ``.npz`` must hold one array, or ``key`` names the
one to read (``goldwatch drift --key NAME``); ``key`` is ignored for the other file types. CSV and Parquet come
back as DataFrames so that column names become feature names.

>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "window.npy"
>>> np.save(path, np.zeros((3, 2)))
>>> load_table(path).shape
(3, 2)
>>> load_table(path.with_suffix(".txt"))
Traceback (most recent call last):
...
goldwatch.errors.DataError: .../window.txt: unsupported file type '.txt' (fix: use .npy, .npz, .csv or .parquet)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch import progress
from goldwatch._optional import require
from goldwatch.errors import DataError

__all__ = ["SUFFIXES", "is_lazy_source", "load_table", "open_table"]

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


@progress.stage(lambda path, **_: f"reading {Path(path).name}")
def load_table(path: str | os.PathLike[str], *, key: str | None = None) -> Any:
    """Load samples from ``path``: a numpy array (.npy/.npz) or a pandas DataFrame (.csv/.parquet).

    ``key`` selects the array of a ``.npz`` that holds several; a missing key is a :class:`DataError` that lists
    the arrays present.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"unsupported file type {p.suffix!r}", where=str(p), hint="use .npy, .npz, .csv or .parquet")
    if not p.is_file():
        raise DataError("file not found", where=str(p), hint="check the path")
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                names = list(npz.files)
                if key is None:
                    if len(names) != 1:
                        raise DataError(
                            f"expected one array, found {len(names)}: {names}", where=str(p),
                            hint="save a single array, or name one with key= (CLI: --key NAME)",
                        )
                    key = names[0]
                if key not in names:
                    raise DataError(
                        f"no array named {key!r} (found {names})", where=str(p),
                        hint=f"name one of the arrays it holds: {', '.join(names) or '(none)'}",
                    )
                return npz[key]
        import pandas as pd

        if suffix == ".csv":
            return pd.read_csv(p)
        require("pyarrow", purpose="reading Parquet files")
        return pd.read_parquet(p)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        # a pickled object array refused by allow_pickle=False also lands here
        raise DataError(f"cannot read the file ({type(exc).__name__}: {exc})", where=str(p),
                        hint="check that it is a valid, non-pickled file of that type") from None
    except Exception as exc:  # pandas/pyarrow parser errors have no common base class
        if type(exc).__module__.split(".")[0] in ("pandas", "pyarrow"):
            raise DataError(f"cannot parse the file ({exc})", where=str(p)) from None
        raise


_GLOB_CHARS = set("*?[")


def is_lazy_source(path: str | os.PathLike[str]) -> bool:
    """A directory or a glob: read as a dask dataframe, partition by partition."""
    text = os.fspath(path)
    return Path(text).is_dir() or bool(_GLOB_CHARS & set(text))


def open_table(path: str | os.PathLike[str], *, key: str | None = None, lazy: bool = False) -> Any:
    """:func:`load_table`, or a dask dataframe for a directory or glob of Parquet/CSV files (and for a single
    Parquet/CSV file when ``lazy``). Nothing is read until the data is computed."""
    text = os.fspath(path)
    if not (is_lazy_source(text) or (lazy and Path(text).suffix.lower() in (".parquet", ".csv"))):
        return load_table(path, key=key)
    dd = require("dask.dataframe", purpose="reading Parquet directories and globs partition by partition")
    if Path(text).is_dir():
        files = sorted(p for p in Path(text).rglob("*") if p.suffix.lower() in (".parquet", ".csv"))
        suffixes = {p.suffix.lower() for p in files}
    else:
        import glob

        files = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        suffixes = {p.suffix.lower() for p in files}
    if not files:
        raise DataError("no .parquet or .csv files found", where=text,
                        hint="pass a directory or glob of Parquet files (e.g. 'day=*/part-*.parquet')")
    if len(suffixes) != 1:
        raise DataError(f"mixed file types {sorted(suffixes)}", where=text, hint="pass Parquet or CSV files, not both")
    try:
        if suffixes == {".parquet"}:
            require("pyarrow", purpose="reading Parquet files")
            return dd.read_parquet([str(p) for p in files])
        return dd.read_csv([str(p) for p in files])
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read the files ({type(exc).__name__}: {exc})", where=text) from None
