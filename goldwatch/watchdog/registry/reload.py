"""Telling the inference server to reload after the pointer switched, and waiting until it is ready.

Three adapters share one small interface (:class:`Reloader`):

* :class:`OipReloader` -- the Open Inference Protocol repository API as Triton and MLServer implement it:
  ``POST /v2/repository/models/{name}/load``, then ``GET /v2/models/{name}/ready`` until 200;
* :class:`HttpHookReloader` -- POST a JSON body ``{"model", "version", "path"}`` to any URL (optionally poll a
  readiness URL);
* :class:`CommandReloader` -- run a command (``argv``, never a shell string), with ``GOLDWATCH_MODEL``,
  ``GOLDWATCH_VERSION`` and ``GOLDWATCH_PATH`` in its environment.

A server that cannot be reached or never becomes ready raises
:class:`~goldwatch.errors.ServerUnreachableError`: that is an operational error, never proof about the model.

>>> r = CommandReloader(["true"])
>>> r.reload(model="m", version="3", path=Path("/tmp")); r.wait_ready(timeout_s=1.0)
>>> CommandReloader(["false"]).reload(model="m", version="3", path=Path("/tmp"))
Traceback (most recent call last):
...
goldwatch.errors.ServerUnreachableError: registry.reload_command: reload command false: exited with status 1
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from goldwatch._http import one_line
from goldwatch.errors import ConfigError, ServerUnreachableError
from goldwatch.logs import get_logger

if TYPE_CHECKING:
    import httpx

__all__ = ["CommandReloader", "HttpHookReloader", "OipReloader", "Reloader", "make_reloader"]

log = get_logger(__name__)
_POLL_S = 0.02


class Reloader(Protocol):
    def reload(self, *, model: str, version: str | None, path: Path) -> None: ...
    def wait_ready(self, *, timeout_s: float) -> None: ...


def _client(timeout_s: float, *urls: str | None) -> httpx.Client:
    from goldwatch._http import client

    # a proxy from the environment must never intercept calls to a server on loopback; remote ones may use it
    return client(timeout=timeout_s, urls=[u for u in urls if u])


def _poll_ready(client: httpx.Client, url: str, *, timeout_s: float, what: str) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            resp = client.get(url)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise ServerUnreachableError(
                f"{what} not ready after {timeout_s:g} s (last answer: {last})", where=url,
                hint="check the server's log; the pointer already serves the new version",
            )
        time.sleep(_POLL_S)


class OipReloader:
    """Open Inference Protocol v2 repository API (Triton, MLServer). ``base_url`` like ``http://127.0.0.1:8080``."""

    def __init__(self, base_url: str, *, model_name: str, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self._client = _client(timeout_s, self.base_url)

    def reload(self, *, model: str, version: str | None, path: Path) -> None:
        import httpx

        url = f"{self.base_url}/v2/repository/models/{quote(self.model_name, safe='')}/load"
        try:
            resp = self._client.post(url)
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(f"cannot reach the server ({exc})", where=url,
                                         hint="is the inference server running?") from None
        if resp.status_code != 200:
            raise ServerUnreachableError(f"load answered HTTP {resp.status_code}: {one_line(resp.text)}", where=url,
                                         hint="check the server's log for why it could not load the model")

    def wait_ready(self, *, timeout_s: float) -> None:
        url = f"{self.base_url}/v2/models/{quote(self.model_name, safe='')}/ready"
        _poll_ready(self._client, url, timeout_s=timeout_s, what=f"model {self.model_name!r}")

    def close(self) -> None:
        self._client.close()


class HttpHookReloader:
    """POST ``{"model", "version", "path"}`` to ``url``; 2xx means accepted. Optional ``ready_url`` is polled."""

    def __init__(self, url: str, *, ready_url: str | None = None, timeout_s: float = 60.0,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.ready_url = ready_url
        self._client = _client(timeout_s, url, ready_url)
        self._headers = dict(headers or {})

    def reload(self, *, model: str, version: str | None, path: Path) -> None:
        import httpx

        body: dict[str, Any] = {"model": model, "version": version, "path": str(path)}
        try:
            resp = self._client.post(self.url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(f"cannot reach the reload hook ({type(exc).__name__})",
                                         where=self.url) from None
        if not 200 <= resp.status_code < 300:
            raise ServerUnreachableError(f"reload hook answered HTTP {resp.status_code}", where=self.url)

    def wait_ready(self, *, timeout_s: float) -> None:
        if self.ready_url:
            _poll_ready(self._client, self.ready_url, timeout_s=timeout_s, what="server")

    def close(self) -> None:
        self._client.close()


class CommandReloader:
    """Run ``argv`` to reload (exit 0 = done); optional ``ready_argv`` is retried until it exits 0."""

    def __init__(self, argv: Sequence[str], *, ready_argv: Sequence[str] | None = None,
                 timeout_s: float = 60.0) -> None:
        if not argv:
            raise ConfigError("the reload command is empty", where="registry.reload_command",
                              hint='give the command as a list, e.g. ["systemctl", "reload", "model-server"]')
        self.argv = list(argv)
        self.ready_argv = list(ready_argv) if ready_argv else None
        self.timeout_s = timeout_s
        self._env: dict[str, str] = {}

    def _run(self, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False,
                                  env={**os.environ, **self._env})
        except FileNotFoundError:
            raise ServerUnreachableError(f"reload command not found: {argv[0]}", where="registry.reload_command",
                                         hint="give the full path of the executable") from None
        except subprocess.TimeoutExpired:
            raise ServerUnreachableError(f"reload command {' '.join(argv)}: timed out after {timeout_s:g} s",
                                         where="registry.reload_command") from None

    def reload(self, *, model: str, version: str | None, path: Path) -> None:
        self._env = {"GOLDWATCH_MODEL": model, "GOLDWATCH_VERSION": version or "", "GOLDWATCH_PATH": str(path)}
        done = self._run(self.argv, self.timeout_s)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-300:]
            raise ServerUnreachableError(
                f"reload command {' '.join(self.argv)}: exited with status {done.returncode}"
                + (f": {tail}" if tail else ""),
                where="registry.reload_command",
            )

    def wait_ready(self, *, timeout_s: float) -> None:
        if self.ready_argv is None:
            return
        deadline = time.monotonic() + timeout_s
        while self._run(self.ready_argv, timeout_s).returncode != 0:
            if time.monotonic() >= deadline:
                raise ServerUnreachableError(f"ready command not satisfied after {timeout_s:g} s",
                                             where=" ".join(self.ready_argv))
            time.sleep(_POLL_S)


def make_reloader(kind: str, *, model: str, url: str | None = None, command: Sequence[str] | None = None,
                  timeout_s: float = 60.0) -> Reloader | None:
    """The adapter the config names (``registry.reload``: none | oip | http | command)."""
    if kind == "none":
        return None
    if kind in ("oip", "http") and not url:
        raise ConfigError(f"reload = {kind!r} needs reload_url", where="goldwatch.toml: registry.reload_url",
                          hint="e.g. reload_url = \"http://127.0.0.1:8080\"")
    if kind == "oip":
        return OipReloader(str(url), model_name=model, timeout_s=timeout_s)
    if kind == "http":
        return HttpHookReloader(str(url), timeout_s=timeout_s)
    if kind == "command":
        return CommandReloader(command or [], timeout_s=timeout_s)
    raise ConfigError(f"unknown reload kind {kind!r}", where="goldwatch.toml: registry.reload",
                      hint="use none, oip, http or command")
