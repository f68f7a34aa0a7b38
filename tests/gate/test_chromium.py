"""The HTML report in a real browser: headless Chromium renders it offline, without console errors, and the
rendered DOM shows the verdict and the plots.

Skips (saying why) when Chromium is not installed, unless GOLDWATCH_REQUIRE_CHROMIUM=1 (CI), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from goldwatch.watchdog.gate.html import write_html
from goldwatch.watchdog.gate.runner import run_gate
from tests.gate.conftest import GateWorld

pytestmark = pytest.mark.integration

# With --enable-logging=stderr Chromium prints page console messages (JS errors included) as
# `...:INFO:CONSOLE:1] "Uncaught ReferenceError: ..."` (older builds: `CONSOLE(1)`).
CONSOLE = re.compile(r"CONSOLE[:(]\d+|Uncaught|net::ERR_")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("GOLDWATCH_REQUIRE_CHROMIUM") == "1":
        pytest.fail("GOLDWATCH_REQUIRE_CHROMIUM=1 but no chromium binary on PATH (apt-get install chromium)")
    pytest.skip("chromium is not installed (Debian: apt-get install chromium); set GOLDWATCH_REQUIRE_CHROMIUM=1 "
                "to make this a failure")


def run_chromium(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


@pytest.fixture(scope="module")
def report(world: GateWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # shifted outputs: a failing verdict with every kind of plot (error histogram, agreement, drift, latency)
    verdict = run_gate(world.shifted, [world.golden], baseline=world.candidate)
    page = tmp_path_factory.mktemp("html") / "gate.html"
    write_html(verdict, page)
    return page


def test_report_renders_without_console_errors(report: Path, tmp_path: Path) -> None:
    proc = run_chromium(report, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_lines(proc.stderr) == []
    dom = proc.stdout
    assert re.search(r'id="verdict"[^>]*data-verdict="(fail|error)"', dom)
    assert dom.count("<svg") >= 3
    assert "Golden replay: error per output" in dom
    assert "Agreement with the baseline" in dom
    assert 'class="bar' in dom


def test_screenshot_is_drawn(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "gate.png"
    proc = run_chromium(report, tmp_path, "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank page compresses to a few kB


def test_console_errors_would_be_caught(tmp_path: Path) -> None:
    # the detector above must be able to fail: a page with a JS error and a missing image
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png"><script>undefinedFunction();</script></body></html>')
    proc = run_chromium(page, tmp_path, "--dump-dom")
    assert any("undefinedFunction" in line for line in console_lines(proc.stderr)), proc.stderr[-2000:]
