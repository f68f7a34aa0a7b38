"""The sidecar's HTTP API (starlette): thin routes over :class:`~.service.SidecarService`.

=======================================  ======  ===================================================================
route                                    auth    what
=======================================  ======  ===================================================================
``GET /livez``                           --      the event loop answers (shallow: for a liveness probe)
``GET /startupz``                        --      start-up verification passed (``--verify-first``; a startupProbe)
``GET /readyz``                          --      config loaded, journal writable, first round of checks done
``GET /metrics``                         --      Prometheus text format (OpenMetrics on request)
``GET /v1/status``                       --      per model: served version, each check's last result, incidents
``GET /v1/incidents``                    --      ``?state=open|resolved&model=M&limit=N``
``GET /v1/journal``                      --      decisions, ``?after=ID&model=M&limit=N`` (a timeline to follow)
``POST /v1/models/{model}/check``        bearer  run checks now: ``{"checks": [...], "sha256": bool, "wait": bool}``
``POST /v1/models/{model}/rollback``     bearer  ``{"reason": "..."}``: a person's rollback
``POST /v1/models/{model}/route``        bearer  ``{"route": "primary|fallback|cpu_variant", "reason": "..."}``:
                                                 a person moves traffic (an alternate only once it verifies)
``POST /v1/models/{model}/pause``        bearer  ``{"reason": "...", "for_s": 1800}``: no action, no page
``POST /v1/models/{model}/resume``       bearer  end a pause or a flap-guard stop
``POST /v1/models/{model}/evidence``     bearer  a report from another component (see the package docstring): 202
                                                 once validated and journaled, decided on right after (``?wait=true``:
                                                 200 with the decisions); 429 when too many wait
=======================================  ======  ===================================================================

State-changing routes need ``Authorization: Bearer <token>`` (compared in constant time); with no token configured
they answer 403 and say so. Bodies are JSON objects of at most ``serve.max_body_bytes``; anything else gets a 4xx
with one clear message. Responses never contain the token or any other secret.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from goldwatch.errors import GoldwatchError, InvalidInputError
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.sidecar.service import BusyError, ConflictError, SidecarService, UnknownModelError

__all__ = ["build_app", "document_routes"]

Handler = Callable[[Request], Awaitable[Response]]


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(to_jsonable(data), status_code=status)


def _error(status: int, message: str, *, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    headers = {"WWW-Authenticate": 'Bearer realm="goldwatch"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_json(request: Request, limit: int, *, required: bool) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _BodyError(413, f"the body is {int(declared)} bytes; at most {limit} are accepted")
        except ValueError:
            raise _BodyError(400, f"Content-Length is not a number: {declared!r}") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise _BodyError(400, "a JSON object body is required")
        return {}
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json":
        raise _BodyError(415, f"Content-Type must be application/json, got {ctype!r}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BodyError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BodyError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise _BodyError(400, f"{name}: expected {names}, got {type(value).__name__}")
    return value


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _BodyError(400, f"unknown field(s) {unknown}; accepted: {sorted(allowed)}")


def build_app(service: SidecarService) -> Starlette:
    """The starlette application for ``service`` (with any routes extensions added)."""
    limit = service.config.serve.max_body_bytes

    def guarded(handler: Handler, *, auth: bool) -> Handler:
        @functools.wraps(handler)  # the handler's docstring is the route's line in docs/reference/http.md
        async def endpoint(request: Request) -> Response:
            if auth:
                denied = service.authorize(request.headers.get("authorization"))
                if denied is not None:
                    return _error(*denied)
            try:
                return await handler(request)
            except _BodyError as exc:
                return _error(exc.status, exc.message)
            except UnknownModelError as exc:
                return _error(404, str(exc))
            except ConflictError as exc:
                return _error(409, exc.what, hint=exc.hint)
            except BusyError as exc:
                response = _error(429, str(exc))
                response.headers["Retry-After"] = "2"
                return response
            except InvalidInputError as exc:
                return _error(400, str(exc))
            except GoldwatchError as exc:
                return _error(503, str(exc))

        return endpoint

    async def livez(request: Request) -> Response:
        """The event loop answers (shallow: for a liveness probe)."""
        return _json({"status": "alive", "stopping": service.stopping})

    async def startupz(request: Request) -> Response:
        """Start-up verification passed (``--verify-first``; a startupProbe)."""
        if not service.startup_done:
            return _json({"status": "verifying", "models": {m: c.startup for m, c in service.models.items()}}, 503)
        if service.startup_problem:
            return _json({"status": "failed", "problem": service.startup_problem}, 503)
        return _json({"status": "ok", "models": {m: c.startup for m, c in service.models.items()}})

    async def readyz(request: Request) -> Response:
        """Config loaded, journal writable, first round of checks done (a readinessProbe)."""
        ready, reasons = service.readiness()
        return _json({"status": "ready" if ready else "not ready", "reasons": reasons}, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        """Prometheus text format (OpenMetrics on request); the metrics are in docs/reference/metrics.md."""
        body, content_type = service.metrics.render(request.headers.get("accept", ""))
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    async def status(request: Request) -> Response:
        """Per model: served version, each check's last result, incidents."""
        return _json(service.status())

    def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = 10000) -> int:
        text = request.query_params.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise _BodyError(400, f"{name} must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise _BodyError(400, f"{name} must be between {low} and {high}, got {value}")
        return value

    async def incidents(request: Request) -> Response:
        """Incidents: ``?state=open|resolved&model=M&limit=N``."""
        state = request.query_params.get("state")
        if state not in (None, "open", "resolved"):
            raise _BodyError(400, f"state must be open or resolved, got {state!r}")
        return _json({"incidents": service.incidents(state=state, model=request.query_params.get("model"),
                                                     limit=_int(request, "limit", 200, low=1))})

    async def journal(request: Request) -> Response:
        """Decisions, ``?after=ID&model=M&limit=N`` (a timeline to follow)."""
        return _json({"decisions": service.decisions(after=_int(request, "after", 0, high=2**62),
                                                     model=request.query_params.get("model"),
                                                     limit=_int(request, "limit", 200, low=1))})

    async def check(request: Request) -> Response:
        """Bearer token. Run checks now: ``{"checks": [...], "sha256": bool, "wait": bool}``."""
        body = await _read_json(request, limit, required=False)
        _only(body, {"checks", "sha256", "wait"})
        kinds = _field(body, "checks", list)
        if kinds is not None and not all(isinstance(k, str) for k in kinds):
            raise _BodyError(400, "checks: expected a list of check names, e.g. [\"files\", \"golden\"]")
        result = await service.check_now(request.path_params["model"], kinds=kinds,
                                         full=bool(_field(body, "sha256", bool, False)),
                                         wait=bool(_field(body, "wait", bool, True)))
        return _json(result, 200 if "runs" in result else 202)

    async def rollback(request: Request) -> Response:
        """Bearer token. A person's rollback: ``{"reason": "..."}``."""
        body = await _read_json(request, limit, required=True)
        _only(body, {"reason", "actor"})
        reason = _field(body, "reason", str)
        if not reason:
            raise _BodyError(400, "reason: required (say why, for the audit trail)")
        result = await service.rollback(request.path_params["model"], reason=reason,
                                        actor=_field(body, "actor", str))
        return _json(result, 200 if result["ok"] else 502)

    async def route(request: Request) -> Response:
        """Move MODEL's traffic to ``primary``, ``fallback`` or ``cpu_variant`` (an alternate is verified by its
        golden sets first; needs the bearer token)."""
        body = await _read_json(request, limit, required=True)
        _only(body, {"route", "reason", "actor"})
        where, reason = _field(body, "route", str), _field(body, "reason", str)
        if not where or not reason:
            raise _BodyError(400, "route and reason: required, e.g. {\"route\": \"primary\", \"reason\": \"why\"}")
        result = await service.route(request.path_params["model"], route=where, reason=reason,
                                     actor=_field(body, "actor", str))
        return _json(result, 200 if result["ok"] else 502)

    async def pause(request: Request) -> Response:
        """Bearer token. No action, no page: ``{"reason": "...", "for_s": 1800}``."""
        body = await _read_json(request, limit, required=True)
        _only(body, {"reason", "for_s"})
        reason = _field(body, "reason", str)
        if not reason:
            raise _BodyError(400, "reason: required (e.g. \"deploying v8\")")
        for_s = _field(body, "for_s", (int, float))
        return _json(await service.pause(request.path_params["model"], reason=reason,
                                         for_s=None if for_s is None else float(for_s)))

    async def resume(request: Request) -> Response:
        """Bearer token. End a pause or a flap-guard stop."""
        body = await _read_json(request, limit, required=False)
        _only(body, {"reason"})
        return _json(await service.resume(request.path_params["model"],
                                          reason=_field(body, "reason", str) or "resumed by a person"))

    async def evidence(request: Request) -> Response:
        """Bearer token. A report from another component (the in-process agent, a CI job)."""
        body = await _read_json(request, limit, required=True)
        service.model(request.path_params["model"])
        wait = request.query_params.get("wait", "false").lower()
        if wait not in ("true", "false", "1", "0"):
            raise _BodyError(400, f"wait must be true or false, got {wait!r}")
        result = await service.accept_evidence(request.path_params["model"], body, wait=wait in ("true", "1"))
        return _json(result, 200 if "decisions" in result else 202)

    routes: list[BaseRoute] = [
        Route("/livez", guarded(livez, auth=False), methods=["GET"]),
        Route("/startupz", guarded(startupz, auth=False), methods=["GET"]),
        Route("/readyz", guarded(readyz, auth=False), methods=["GET"]),
        Route("/metrics", guarded(metrics, auth=False), methods=["GET"]),
        Route("/v1/status", guarded(status, auth=False), methods=["GET"]),
        Route("/v1/incidents", guarded(incidents, auth=False), methods=["GET"]),
        Route("/v1/journal", guarded(journal, auth=False), methods=["GET"]),
        Route("/v1/models/{model}/check", guarded(check, auth=True), methods=["POST"]),
        Route("/v1/models/{model}/rollback", guarded(rollback, auth=True), methods=["POST"]),
        Route("/v1/models/{model}/route", guarded(route, auth=True), methods=["POST"]),
        Route("/v1/models/{model}/pause", guarded(pause, auth=True), methods=["POST"]),
        Route("/v1/models/{model}/resume", guarded(resume, auth=True), methods=["POST"]),
        Route("/v1/models/{model}/evidence", guarded(evidence, auth=True), methods=["POST"]),
        *service.extra_routes,
    ]
    return Starlette(routes=routes)


def document_routes() -> list[BaseRoute]:
    """The sidecar's own routes as served (extensions add theirs), for the reference documentation
    (goldwatch.reference). Built over a stand-in for the service: no route is called, nothing starts."""
    from types import SimpleNamespace

    from goldwatch.config import GoldwatchConfig

    stand_in: Any = SimpleNamespace(config=GoldwatchConfig(), extra_routes=[])
    return list(build_app(stand_in).routes)
