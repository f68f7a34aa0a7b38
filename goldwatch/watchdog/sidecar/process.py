"""Starting a real ``goldwatch serve`` process and talking to it: for the demo, the tests and the benchmark.

:func:`start_sidecar` writes nothing itself: it runs ``python -m goldwatch --config FILE serve`` with the given
environment (the token, the PagerDuty routing key and Events API URL), waits until ``/readyz`` answers 200 (or the
process dies, with its log tail in the error) and returns a :class:`SidecarProcess`, whose methods call the API
with the token and stop the process the way Kubernetes does (SIGTERM, timing the exit) or the way a crash does
(SIGKILL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from goldwatch.errors import ServerUnreachableError

__all__ = ["SidecarClient", "SidecarProcess", "start_sidecar"]


@dataclasses.dataclass
class SidecarClient:
    """A sidecar's API at ``url`` (``token``: the bearer token of its POST endpoints), wherever it runs."""

    url: str
    token: str | None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(self.url + path, params=params, timeout=30.0, trust_env=False)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: Mapping[str, Any] | None = None, *, timeout: float = 120.0) -> httpx.Response:
        return httpx.post(self.url + path, json=dict(body or {}), headers=self._headers(), timeout=timeout,
                          trust_env=False)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/v1/status")
        return result

    def decisions(self, after: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/v1/journal", after=after, limit=1000)["decisions"]
        return result

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/v1/incidents", **params)["incidents"]
        return result


@dataclasses.dataclass
class SidecarProcess(SidecarClient):
    """A running sidecar process: its API (``url``, ``token``), the process and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnreachableError(f"goldwatch serve exited with code {self.process.returncode}; log tail:\n"
                                             + self.log()[-3000:], where=self.url)
            with contextlib.suppress(httpx.HTTPError):
                resp = httpx.get(self.url + "/readyz", timeout=2.0, trust_env=False)
                if resp.status_code == 200:
                    return
                last = resp.text[:500]
            time.sleep(0.1)
        raise ServerUnreachableError(f"the sidecar was not ready after {timeout:.0f} s ({last}); log tail:\n"
                                     + self.log()[-3000:], where=self.url)

    def terminate(self, *, timeout: float = 20.0) -> float:
        """SIGTERM, then wait: returns the seconds the process took to exit (SIGKILL after ``timeout``)."""
        t0 = time.monotonic()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL (a crash): nothing gets to clean up."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> SidecarProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def start_sidecar(config: str | os.PathLike[str], *, url: str, env: Mapping[str, str] | None = None,
                  token: str | None = None, log_path: str | os.PathLike[str] | None = None,
                  extra_args: tuple[str, ...] = (), wait: bool = True, timeout: float = 60.0) -> SidecarProcess:
    """Run ``goldwatch --config CONFIG serve`` (``url`` is where its config makes it listen); wait until ready."""
    log = Path(log_path) if log_path else Path(config).with_suffix(".log")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if token is not None:
        full_env.setdefault("GOLDWATCH_SERVE_TOKEN", token)
    with open(log, "ab") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "goldwatch", "--config", str(config), "serve", *extra_args],
            stdout=fh, stderr=subprocess.STDOUT, env=full_env,
        )
    sidecar = SidecarProcess(url.rstrip("/"), token, process, log)
    if wait:
        try:
            sidecar.wait_ready(timeout=timeout)
        except BaseException:
            sidecar.kill()
            raise
    return sidecar
