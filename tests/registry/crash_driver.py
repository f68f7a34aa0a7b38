"""Run one registry operation in a subprocess, so the crash tests can SIGKILL it at a named step.

usage: python crash_driver.py ROOT SERVE_DIR LAYOUT (promote VERSION | rollback)
GOLDWATCH_TEST_CRASH_AT in the environment names the step to die at.
"""

from __future__ import annotations

import sys
from pathlib import Path

from goldwatch.watchdog.registry import CommandReloader, Registry, Serving, make_pointer


def main(argv: list[str]) -> int:
    root, serve_dir, layout, op = argv[:4]
    with Registry.open(root) as reg:
        reg.attach("m", Serving(make_pointer(layout, Path(serve_dir)), reloader=CommandReloader(["true"])))
        if op == "promote":
            reg.promote("m", argv[4], actor="driver", reason="crash test")
        else:
            reg.rollback("m", actor="driver", reason="crash test")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
