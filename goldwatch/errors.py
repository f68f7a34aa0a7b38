"""goldwatch's exceptions: one tree under one base class.

A failed *check* (corrupted weights, drift, a golden replay outside tolerance) is not an exception: it is a
result with ``ok == False`` and maps to exit code 1. Exceptions are for the cases where goldwatch could not do its
job -- bad input, a missing dependency, an unreachable server -- and map to exit code 2.

Tree::

    GoldwatchError                      any error goldwatch raises on purpose (exit 2)
    ├── InvalidInputError               the user gave us something we cannot use; also a ValueError
    │   ├── ConfigError                 goldwatch.toml: unknown key, wrong type, missing field
    │   ├── DataError                   arrays/frames of the wrong shape, dtype, emptiness, NaN policy
    │   ├── ArtifactError               model file / manifest malformed, hostile or truncated
    │   ├── GoldenSetError              golden set malformed, tampered, or for another model signature
    │   └── RegistryError               unknown model/version, illegal state transition, bad store
    │       └── ConcurrentChangeError   another host changed the registry underneath this operation
    ├── DependencyMissingError          an optional extra (torch, onnx, reports, ...) is not installed
    ├── ServerUnreachableError          an inference server, alert endpoint or Dask scheduler cannot be reached
    ├── DatabaseUnavailableError        the registry database cannot be reached (or went away mid-operation)
    ├── ClusterError                    a Dask cluster lost a computation (workers died, tasks failed)
    └── StateError                      on-disk state from a newer schema or otherwise unusable

Every error carries three parts that the CLI prints as one message: *what* is wrong, *where* (file, key path,
argument, URL), and *how to fix it*.

>>> err = ConfigError("expected an integer, got 'ten'", where="goldwatch.toml: detectors.window",
...                   hint="write a whole number, e.g. window = 10")
>>> print(err)
goldwatch.toml: detectors.window: expected an integer, got 'ten' (fix: write a whole number, e.g. window = 10)
>>> isinstance(err, ValueError), err.exit_code
(True, 2)
"""

from __future__ import annotations

from goldwatch.exit_codes import ExitCode

__all__ = [
    "ArtifactError",
    "ClusterError",
    "ConcurrentChangeError",
    "ConfigError",
    "DataError",
    "DatabaseUnavailableError",
    "DependencyMissingError",
    "GoldenSetError",
    "GoldwatchError",
    "InvalidInputError",
    "RegistryError",
    "ServerUnreachableError",
    "StateError",
    "from_unexpected",
]


class GoldwatchError(Exception):
    """Base class of every error goldwatch raises on purpose.

    ``what`` says what is wrong, ``where`` names the place (file, key path, argument, URL) and ``hint`` says how to
    fix it. ``exit_code`` is what the CLI exits with.
    """

    exit_code: int = int(ExitCode.ERROR)

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f" (fix: {self.hint})"
        return text


class InvalidInputError(GoldwatchError, ValueError):
    """Input goldwatch cannot use. Subclasses ``ValueError`` so library callers can catch it the usual way."""


class ConfigError(InvalidInputError):
    """A configuration file or value is invalid."""


class DataError(InvalidInputError):
    """An array, frame or file of data has the wrong shape, dtype, size or content."""


class ArtifactError(InvalidInputError):
    """A model artifact or integrity manifest is malformed, truncated or hostile."""


class GoldenSetError(InvalidInputError):
    """A golden set is malformed, tampered with, or does not fit the model being replayed."""


class RegistryError(InvalidInputError):
    """The registry was asked for something it does not have or may not do."""


class ConcurrentChangeError(RegistryError):
    """Another process (another host of the fleet) changed what this operation decided on, before it committed.

    Nothing was changed by the operation that raises it; run it again (it re-reads the registry first).
    """


class DependencyMissingError(GoldwatchError, ImportError):
    """An optional dependency is needed for this operation and is not installed."""


class ServerUnreachableError(GoldwatchError, ConnectionError):
    """A server (inference server, alert endpoint) could not be reached or is not ready.

    Distinct from a wrong model: an unreachable server is never proof of corruption and never triggers a rollback.
    """


class ClusterError(GoldwatchError):
    """A distributed computation could not finish: workers died, or a task failed on a worker.

    goldwatch never returns a partial answer from a cluster: either every chunk was counted exactly once, or this.
    """


class DatabaseUnavailableError(GoldwatchError, ConnectionError):
    """The registry database cannot be reached, or the connection was lost mid-operation.

    The transaction in flight was rolled back by the server, so nothing is half-written; an operation whose
    serving pointer had already switched is completed when the database is back (see the intent journal).
    """


class StateError(GoldwatchError):
    """Persistent state cannot be used (e.g. a database written by a newer goldwatch)."""


def from_unexpected(exc: BaseException) -> GoldwatchError:
    """Turn an exception goldwatch did not raise on purpose into one clear :class:`GoldwatchError` (exit 2).

    An ``OSError`` (unwritable report path, missing directory, full disk) names the path and the system's reason;
    anything else is reported as an unexpected error with its type, and a hint to get the traceback.

    >>> print(from_unexpected(PermissionError(13, "Permission denied", "/proc/x.xml")))
    /proc/x.xml: cannot access the file: Permission denied (fix: check that the path exists and is writable)
    >>> print(from_unexpected(KeyError("logits")))  # doctest: +ELLIPSIS
    unexpected KeyError: 'logits' (fix: this is a bug; rerun with --log-level debug for the traceback and report it)
    """
    if isinstance(exc, GoldwatchError):
        return exc
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else None
        reason = exc.strerror or str(exc)
        return GoldwatchError(
            f"cannot access the file: {reason}" if where else f"operating system error: {reason}",
            where=str(where) if where is not None else None,
            hint="check that the path exists and is writable",
        )
    return GoldwatchError(
        f"unexpected {type(exc).__name__}: {exc}",
        hint="this is a bug; rerun with --log-level debug for the traceback and report it",
    )
