"""Recording benchmark results in benchmarks/RESULTS.md, one section per benchmark, with the machine described.

Each benchmark calls :func:`record` with its name and a Markdown body; the section between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` is replaced and everything else is kept, so benchmarks can run
in any order and independently.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nWritten by the scripts in this folder; each section says how to rerun it.\n"


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python, numpy, BLAS, GPU when present."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [f"{cpu}", f"{os.cpu_count()} cores", f"{mem_gib:.0f} GiB RAM", f"Python {platform.python_version()}"]
    try:
        import numpy

        parts.append(f"numpy {numpy.__version__}")
    except ImportError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            parts.append("GPU " + out.stdout.strip().replace("\n", "; "))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return ", ".join(parts)


def record(name: str, body: str, *, command: str) -> None:
    """Replace (or add) the section ``name`` of RESULTS.md with ``body``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"Machine: {machine()}  \nRun: {stamp}, `{command}`, load average {os.getloadavg()[0]:.1f} when recorded "
        f"(2 cores; a benchmark's own threads count)\n\n{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
