"""A small gateway in front of a model's endpoints: what clients call, and what goldwatch's route hook moves.

In production this is Envoy, Istio, an API gateway or a feature flag: goldwatch never sits in the request path, it
tells the gateway where a model's traffic goes (:mod:`.routes`). The local drill stack (``goldwatch drill
--local-stack``) needs one too, so that a fallback is really served to clients and the clients' view of an outage
can be measured; this is it -- a stand-in for that gateway, not a production proxy.

* ``POST /v2/models/{model}/infer`` (and ``GET /v2/models/{model}``, ``.../ready``): forwarded to the model's current
  upstream (an OIP v2 model URL); an unreachable upstream answers 502 with the reason;
* ``POST /v1/routes`` ``{"model", "route", "url", "reason"}``: goldwatch's HTTP route hook; ``GET /v1/routes``.

>>> with Gateway({"fraud": "http://127.0.0.1:9/v2/models/fraud"}) as gw:
...     import httpx
...     r = httpx.post(gw.route_hook_url, json={"model": "fraud", "route": "fallback", "reason": "drill",
...                    "url": "http://127.0.0.1:9/v2/models/fraud-small"}, trust_env=False)
...     gone = httpx.post(gw.model_url("fraud") + "/infer", json={"inputs": []}, trust_env=False)
>>> r.status_code, gw.routes()["fraud"], gone.status_code
(200, 'http://127.0.0.1:9/v2/models/fraud-small', 502)
>>> [(c.model, c.route) for c in gw.history]
[('fraud', 'fallback')]
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from goldwatch._http_server import QuietKeepAliveHandler

__all__ = ["Gateway", "RouteChange"]

_MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?P<rest>(/ready|/infer)?)$")
_URL = re.compile(r"^https?://[^/\s]+/v2/models/[^/\s]+(/versions/[^/\s]+)?$")
MAX_BODY = 64 << 20


@dataclasses.dataclass(frozen=True)
class RouteChange:
    """One call of the route hook: when (epoch s), which model, where its traffic goes now, and why."""

    at: float
    model: str
    route: str
    url: str
    reason: str


class Gateway:
    """Routes ``/v2/models/{model}`` to ``routes[model]``; start with ``with Gateway(routes) as gw``."""

    def __init__(self, routes: Mapping[str, str], *, timeout_s: float = 10.0, port: int = 0) -> None:
        import httpx

        self._routes = {name: url.rstrip("/") for name, url in routes.items()}
        self.history: list[RouteChange] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout_s, trust_env=False,
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        gateway = self

        class Handler(QuietKeepAliveHandler):
            def do_GET(self) -> None:
                gateway._handle(self, "GET")

            def do_POST(self) -> None:
                gateway._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="goldwatch-gateway")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def route_hook_url(self) -> str:
        return f"{self.url}/v1/routes"

    def model_url(self, model: str) -> str:
        return f"{self.url}/v2/models/{model}"

    def routes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._routes)

    def set_route(self, model: str, url: str, *, route: str = "manual", reason: str = "") -> None:
        with self._lock:
            self._routes[model] = url.rstrip("/")
            self.history.append(RouteChange(time.time(), model, route, url, reason))

    def __enter__(self) -> Gateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # -- requests --------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(h, 413, {"error": f"the body is {length} bytes; at most {MAX_BODY} are accepted"})
            return
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        if path == "/v1/routes":
            if method == "GET":
                self._reply(h, 200, {"routes": self.routes()})
            else:
                self._route_hook(h, raw)
            return
        match = _MODEL_PATH.match(path)
        if match is None or (method == "POST") != (match["rest"] == "/infer"):
            self._reply(h, 404, {"error": f"no such route: {method} {path}"})
            return
        with self._lock:
            upstream = self._routes.get(match["name"])
        if upstream is None:
            self._reply(h, 404, {"error": f"the gateway has no route for model {match['name']!r}"})
            return
        self._forward(h, method, upstream + match["rest"], raw)

    def _route_hook(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._reply(h, 400, {"error": "the body is not valid JSON"})
            return
        if not isinstance(body, dict):
            self._reply(h, 400, {"error": "the body must be a JSON object"})
            return
        problems = [f"{key}: required string" for key in ("model", "route", "url", "reason")
                    if not isinstance(body.get(key), str)]
        if not problems and not _URL.match(body["url"]):
            problems.append(f"url: not an OIP v2 model URL: {body['url']!r}")
        with self._lock:
            if not problems and body["model"] not in self._routes:
                problems.append(f"model: the gateway has no route for {body['model']!r}")
        if problems:
            self._reply(h, 400, {"error": "; ".join(problems)})
            return
        self.set_route(body["model"], body["url"], route=body["route"], reason=body["reason"])
        self._reply(h, 200, {"model": body["model"], "route": body["route"], "url": body["url"]})

    def _forward(self, h: BaseHTTPRequestHandler, method: str, url: str, raw: bytes) -> None:
        import httpx

        headers = {"Content-Type": h.headers.get("Content-Type") or "application/json"}
        try:
            resp = self._client.request(method, url, content=raw if method == "POST" else None, headers=headers)
        except httpx.HTTPError as exc:
            self._reply(h, 502, {"error": f"upstream {url} unreachable: {type(exc).__name__}: {exc}"})
            return
        self._send(h, resp.status_code, resp.content, resp.headers.get("content-type") or "application/json")

    def _reply(self, h: BaseHTTPRequestHandler, status: int, data: Any) -> None:
        self._send(h, status, json.dumps(data).encode("utf-8"), "application/json")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:  # the client gave up
            pass
