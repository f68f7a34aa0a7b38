"""Live drift's HTTP endpoints, on ``goldwatch serve``'s API port when a model's live traffic is watched (and in any
ASGI app that mounts them): thin starlette routes over :class:`~goldwatch.watchdog.live.service.LiveDrift`. The same
sink also listens on ``[live_drift] sink_port`` when set (:class:`~goldwatch.watchdog.live.sinkserver.SinkServer`).

=======================================  ==========================================================================
``POST /v1/cloudevents``                 the payload-logger sink (KServe's ``logger.url``; Seldon): binary or
                                         structured CloudEvents, the model from ``Ce-Inferenceservicename`` /
                                         ``Ce-Modelid``; 200 with an empty body as soon as the event is queued
``POST /v1/models/{model}/cloudevents``  the same sink, the model from the path
``POST /v1/models/{model}/observe``      rows from anyone else: ``{"inputs": ..., "outputs": ..., "version": ...}``,
                                         each part an object of column -> values or a list of OIP v2 tensors
``GET /v1/models/{model}/drift``         JSON: state, ingestion counts, the last windows (``?windows=N``)
``GET /v1/models/{model}/drift.html``    the page: reference-vs-current histograms of the worst features
=======================================  ==========================================================================

The sink is a plain ASGI endpoint (no request object, one pass over the headers): it is on the hot path of every
inference the server logs. :class:`SinkMiddleware` serves the same two paths in front of a whole app, before its
routing and middleware, for hosts that take the last bit of throughput. Answers other than 200 carry one JSON
line: ``{"error": "..."}``. The sinks take no token (a payload logger sends none; bind the sidecar to the pod
network only); ``observe`` goes through the host's ``authorize`` when one is given.

Importing this module imports starlette (the ``serve`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from goldwatch.errors import GoldwatchError
from goldwatch.watchdog.live.service import LiveDrift, UnknownModelError

__all__ = ["SinkMiddleware", "document_routes", "live_drift_routes"]

Authorize = Callable[[Request], Awaitable[Response | None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Sink:
    """The payload-logger sink (KServe's ``logger.url``, Seldon): one CloudEvent, binary or structured mode; 200
    with an empty body as soon as it is queued (the model from ``Ce-Inferenceservicename`` / ``Ce-Modelid``, or the
    path).

    A raw ASGI app (a starlette Route endpoint that is not a function): no request object on the hot path."""

    def __init__(self, live: LiveDrift) -> None:
        self.live = live

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send, scope.get("path_params", {}).get("model"))

    async def handle(self, scope: dict[str, Any], receive: Receive, send: Send, model: str | None) -> None:
        headers: dict[str, str] = {}
        length = -1
        for key, value in scope["headers"]:
            if key.startswith(b"ce-") or key == b"content-type":
                headers[key.decode("latin-1")] = value.decode("latin-1")
            elif key == b"content-length":
                length = int(value) if value.isdigit() else -1
        limit = self.live.max_body_bytes
        if length > limit:
            self.live.counters.bad("too_large")
            await _answer(send, 413, f"body of {length} bytes exceeds {limit}")
            return
        body = b""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                self.live.counters.bad("too_large")
                await _answer(send, 413, f"body exceeds {limit} bytes")
                return
            chunks.append(part)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        outcome = self.live.sink(headers, body, model=model)
        await _answer(send, outcome.status, outcome.message)


async def _answer(send: Send, status: int, message: str) -> None:
    body = b"" if status == 200 else json.dumps({"error": message}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SinkMiddleware:
    """The sink in front of a whole ASGI app: ``POST /v1/cloudevents`` and ``POST /v1/models/{model}/cloudevents``
    are answered before the app's routing and its error and exception middleware (every logged inference comes
    through here: benchmarks/RESULTS.md measures the difference); everything else goes on to the app."""

    _PREFIX, _SUFFIX = "/v1/models/", "/cloudevents"

    def __init__(self, app: Any, live: LiveDrift) -> None:
        self.app = app
        self.sink = _Sink(live)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/v1/cloudevents":
                await self.sink.handle(scope, receive, send, None)
                return
            if path.startswith(self._PREFIX) and path.endswith(self._SUFFIX):
                model = path[len(self._PREFIX): -len(self._SUFFIX)]
                if model and "/" not in model:
                    await self.sink.handle(scope, receive, send, model)
                    return
        await self.app(scope, receive, send)


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


def live_drift_routes(live: LiveDrift, *, authorize: Authorize | None = None) -> list[Route]:
    """The routes above; ``authorize(request)`` returns a response to refuse a state-changing request, or None."""

    async def observe(request: Request) -> Response:
        """Rows observed elsewhere (needs the bearer token): ``{"inputs": ..., "outputs": ..., "version": ...}``,
        each an object of column -> values or a list of OIP v2 tensors; 202 once queued, 503 when the queue is full."""
        if authorize is not None:
            refused = await authorize(request)
            if refused is not None:
                return refused
        raw = await request.body()
        if len(raw) > live.max_body_bytes:
            return JSONResponse({"error": f"body exceeds {live.max_body_bytes} bytes"}, status_code=413)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            return JSONResponse({"error": f"not JSON: {exc}"}, status_code=400)
        if not isinstance(data, dict) or not ({"inputs", "outputs"} & set(data)):
            return JSONResponse({"error": 'send {"inputs": ..., "outputs": ..., "version": ...} (either part may be '
                                          "left out): each an object of column -> values or a list of OIP v2 "
                                          "tensors"}, status_code=400)
        unknown = sorted(set(data) - {"inputs", "outputs", "version"})
        if unknown:
            return JSONResponse({"error": f"unknown key(s): {', '.join(unknown)}"}, status_code=400)
        parts = {k: ({k: v} if isinstance(v, list) else v) for k, v in data.items() if k in ("inputs", "outputs")}
        version = data.get("version")
        try:
            ok = live.observe(request.path_params["model"], parts.get("inputs"), parts.get("outputs"),
                              version=None if version is None else str(version))
        except UnknownModelError as exc:
            return _error(404, exc)
        except GoldwatchError as exc:
            return _error(400, exc)
        if not ok:
            return JSONResponse({"error": "the model's queue is full; the rows were dropped (counted)"},
                                status_code=503)
        return Response(status_code=202)

    async def drift(request: Request) -> Response:
        """The model's live drift as JSON: state, ingestion counts, the window being filled, the last windows
        (``?windows=N``, default 20)."""
        try:
            windows = int(request.query_params.get("windows", "20"))
        except ValueError:
            return JSONResponse({"error": "windows must be an integer"}, status_code=400)
        try:
            return JSONResponse(live.status(request.path_params["model"], windows=max(0, min(windows, 1000))))
        except UnknownModelError as exc:
            return _error(404, exc)

    async def page(request: Request) -> Response:
        """The model's live drift as an HTML page: reference-vs-current histograms of the worst features."""
        try:
            return HTMLResponse(live.html(request.path_params["model"]))
        except UnknownModelError as exc:
            return _error(404, exc)

    sink = _Sink(live)
    return [
        Route("/v1/cloudevents", sink, methods=["POST"]),
        Route("/v1/models/{model}/cloudevents", sink, methods=["POST"]),
        Route("/v1/models/{model}/observe", observe, methods=["POST"]),
        Route("/v1/models/{model}/drift", drift, methods=["GET"]),
        Route("/v1/models/{model}/drift.html", page, methods=["GET"]),
    ]


def document_routes() -> list[Route]:
    """The live-drift routes as ``goldwatch serve`` mounts them on its API port (over one example model), for the
    reference documentation (goldwatch.reference); nothing starts."""
    from goldwatch.config import LiveDriftModelConfig, LiveDriftSection

    return live_drift_routes(LiveDrift.from_config(LiveDriftSection(models=[LiveDriftModelConfig(name="fraud")])))
