"""Promises about the repository itself: the README's two commands, CI calling the second one, pinned deps."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)][:2]


def test_readme_starts_with_two_one_line_commands() -> None:
    first, second = _readme_commands()
    for command in (first, second):
        assert "\n" not in command
        assert "-c constraints.txt" in command, "installs must be pinned by constraints.txt"
    assert first.endswith("goldwatch demo")
    assert second.endswith("-m pytest")


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    _, second = _readme_commands()
    assert second in (ROOT / ".ci" / "run").read_text()


def test_constraints_pin_torch_to_the_cpu_build_on_disk() -> None:
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    # an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU wheel this machine kind has on disk
    assert pins["torch"] == "2.13.0"
    assert pins["pandas"].split(".")[0] == "2", "evidently 0.7 needs pandas < 3"
