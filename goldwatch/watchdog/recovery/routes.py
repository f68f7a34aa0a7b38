"""Moving a model's traffic between its primary and an alternate (the fallback, the CPU variant): the hooks.

goldwatch does not sit in the request path. A gateway (Envoy, Istio, an API gateway, a KServe InferenceGraph) or a
feature flag does, and goldwatch tells it where a model's traffic goes, through one small interface
(:class:`Router`):

* :class:`HttpRouter` -- ``POST {"model", "route", "url", "reason"}`` to a hook URL; any 2xx means done;
* :class:`CommandRouter` -- run a command (argv, never a shell string) with ``GOLDWATCH_MODEL``,
  ``GOLDWATCH_ROUTE``, ``GOLDWATCH_URL`` and ``GOLDWATCH_REASON`` in its environment; exit 0 means done.

``route`` is ``primary``, ``fallback`` or ``cpu_variant``; ``url`` the OIP v2 model URL traffic must go to. A hook
that cannot be reached or refuses raises :class:`~goldwatch.errors.ServerUnreachableError` (traffic stays where
it was). The sidecar verifies an alternate with its golden sets *before* it calls the hook.

>>> r = CommandRouter(["true"]); r.route(model="fraud", route="fallback", url="http://h/v2/models/f", reason="drill")
>>> CommandRouter(["false"]).route(model="fraud", route="primary", url="http://h/v2/models/fraud", reason="back")
Traceback (most recent call last):
...
goldwatch.errors.ServerUnreachableError: serve.watch.route.command: route command false: exited with status 1
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from goldwatch._http import one_line
from goldwatch.errors import ConfigError, ServerUnreachableError

if TYPE_CHECKING:
    from goldwatch.config import RouteConfig

__all__ = ["ALTERNATES", "PRIMARY", "CommandRouter", "HttpRouter", "Route", "Router", "make_router"]

Route = Literal["primary", "fallback", "cpu_variant"]
PRIMARY: Route = "primary"
ALTERNATES: tuple[Route, ...] = ("fallback", "cpu_variant")


class Router(Protocol):
    def route(self, *, model: str, route: str, url: str, reason: str) -> None: ...


class HttpRouter:
    """POST the route to a hook; a 2xx answer means traffic now goes to ``url``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        from goldwatch._http import client

        self.url = url
        self._client = client(timeout=timeout_s, urls=[url])

    def route(self, *, model: str, route: str, url: str, reason: str) -> None:
        import httpx

        body = {"model": model, "route": route, "url": url, "reason": reason[:1000]}
        try:
            resp = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(f"cannot reach the route hook ({type(exc).__name__}: {exc})",
                                         where=self.url, hint="is the gateway (or its hook) running?") from None
        if not 200 <= resp.status_code < 300:
            raise ServerUnreachableError(f"the route hook answered HTTP {resp.status_code}: {one_line(resp.text)}",
                                         where=self.url, hint="traffic was not moved; see the gateway's log")

    def close(self) -> None:
        self._client.close()


class CommandRouter:
    """Run ``argv`` with the route in its environment; exit status 0 means traffic now goes to ``url``."""

    def __init__(self, argv: Sequence[str], *, timeout_s: float = 10.0) -> None:
        if not argv:
            raise ConfigError("the route command is empty", where="serve.watch.route.command",
                              hint='give the command as a list, e.g. ["/usr/local/bin/set-route"]')
        self.argv = list(argv)
        self.timeout_s = timeout_s

    def route(self, *, model: str, route: str, url: str, reason: str) -> None:
        env = {**os.environ, "GOLDWATCH_MODEL": model, "GOLDWATCH_ROUTE": route, "GOLDWATCH_URL": url,
               "GOLDWATCH_REASON": reason[:1000]}
        where = "serve.watch.route.command"
        try:
            done = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout_s, check=False,
                                  env=env)
        except FileNotFoundError:
            raise ServerUnreachableError(f"route command not found: {self.argv[0]}", where=where,
                                         hint="give the full path of the executable") from None
        except subprocess.TimeoutExpired:
            raise ServerUnreachableError(f"route command {' '.join(self.argv)}: timed out after "
                                         f"{self.timeout_s:g} s", where=where) from None
        if done.returncode != 0:
            tail = one_line((done.stderr or done.stdout).strip()[-300:])
            raise ServerUnreachableError(f"route command {' '.join(self.argv)}: exited with status "
                                         f"{done.returncode}" + (f": {tail}" if tail else ""), where=where)

    def close(self) -> None:
        pass


def make_router(config: RouteConfig) -> HttpRouter | CommandRouter:
    """The hook ``[serve.watch.route]`` names."""
    if config.kind == "http":
        assert config.url is not None  # the config's validator requires it
        return HttpRouter(config.url, timeout_s=config.timeout_s)
    return CommandRouter(config.command or [], timeout_s=config.timeout_s)
