"""goldwatch's exit codes: the one definition every command, the docs and the tests read.

>>> int(ExitCode.CHECK_FAILED), ExitCode.CHECK_FAILED.meaning
(1, 'a check failed: corruption, drift, a regression or a failed health check; the output says which, with its numbers')
>>> ExitCode.summary()
'0 every check passed, 1 a check failed, 2 usage, input or environment error, 130 interrupted'
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """What a ``goldwatch`` process exits with; the same for every command."""

    OK = 0
    CHECK_FAILED = 1
    ERROR = 2
    INTERRUPTED = 130

    @property
    def short(self) -> str:
        """A few words, for ``--help``."""
        return _SHORT[self]

    @property
    def meaning(self) -> str:
        """One sentence, for the reference documentation."""
        return _MEANING[self]

    @classmethod
    def summary(cls) -> str:
        return ", ".join(f"{int(code)} {code.short}" for code in cls)


_SHORT = {
    ExitCode.OK: "every check passed",
    ExitCode.CHECK_FAILED: "a check failed",
    ExitCode.ERROR: "usage, input or environment error",
    ExitCode.INTERRUPTED: "interrupted",
}

_MEANING = {
    ExitCode.OK: "every check passed (a skipped check says why it was skipped); for commands that only do work, the "
    "work was done",
    ExitCode.CHECK_FAILED: "a check failed: corruption, drift, a regression or a failed health check; the output says "
    "which, with its numbers",
    ExitCode.ERROR: "goldwatch could not do its job: a usage error, bad input (file, config, argument), a missing "
    "dependency or an unreachable server; one message on stderr says what, where and how to fix it",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C / SIGINT) before it finished; nothing is half-written",
}
