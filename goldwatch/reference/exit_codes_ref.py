"""The exit-code reference, from :class:`goldwatch.exit_codes.ExitCode`."""

from __future__ import annotations

from goldwatch.exit_codes import ExitCode
from goldwatch.reference._markdown import code, header, table

__all__ = ["render_exit_codes"]


def render_exit_codes() -> str:
    return (header("Exit codes", "What every `goldwatch` command exits with.")
            + "\n" + table(["code", "name", "meaning"], [[code(str(int(c))), c.name, c.meaning] for c in ExitCode])
            + "\nIn a shell: `goldwatch gate ... ; case $? in 0) promote ;; 1) reject ;; *) investigate ;; esac`.\n")
