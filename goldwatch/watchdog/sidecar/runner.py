"""Running the sidecar as a process: the HTTP server (uvicorn) and the service on one event loop, with signals.

SIGTERM or SIGINT: scheduling stops at once, an action in progress may finish (``serve.shutdown_timeout_s``, 8 s by
default), pending alerts get one last delivery attempt, the HTTP server closes, and the process exits -- within
10 s. What did not finish is in the journals (the registry's intent journal and the sidecar's) and is finished by
the next start. The listening socket is bound before anything starts, so a port in use is a clear error (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

from goldwatch.errors import ConfigError
from goldwatch.logs import get_logger
from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["bind", "run_service", "serve_forever"]

log = get_logger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), or a ConfigError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and a
    # response written in two parts (headers, body) would otherwise wait ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})", where="serve.host / serve.port",
                          hint="pick a free port, or stop what listens there") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _server(service: SidecarService, sock: socket.socket) -> Any:
    from goldwatch._optional import require

    uvicorn = require("uvicorn", purpose="the sidecar's HTTP API")
    from goldwatch.watchdog.sidecar.api import build_app

    class Server(uvicorn.Server):  # type: ignore[name-defined]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the runner owns the signals (see serve_forever)
            yield

    config = uvicorn.Config(build_app(service), log_config=None, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1, server_header=False)
    return Server(config)


async def serve_forever(service: SidecarService, sock: socket.socket, *,
                        on_ready: Callable[[str], None] | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Start ``service`` and its HTTP API on ``sock``; return after SIGTERM/SIGINT (or ``stop`` set) and a clean
    shutdown."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    server = _server(service, sock)
    http = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await service.start()
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        log.info("goldwatch sidecar listening on %s, watching %s", url, ", ".join(service.models))
        if on_ready is not None:
            on_ready(url)
        settle = asyncio.create_task(_freeze_when_ready(service))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, http], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        settle.cancel()
    finally:
        log.info("stopping: no new checks; an action in progress may finish")
        await service.stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(http, 1.5)
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _freeze_when_ready(service: SidecarService) -> None:
    """Once the first round is done, what start-up loaded (libraries, golden sets, manifests) lives as long as the
    process: keep it out of the garbage collector's full passes, which would otherwise stall the event loop for
    hundreds of milliseconds at a time walking it (a process-wide setting: only the sidecar process does this)."""
    while service.ready_at is None:
        await asyncio.sleep(0.2)
    gc.collect()
    gc.freeze()


def run_service(service: SidecarService, sock: socket.socket, *,
                on_ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT (the ``goldwatch serve`` command)."""
    asyncio.run(serve_forever(service, sock, on_ready=on_ready))
