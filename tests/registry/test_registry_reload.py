"""Reload adapters against a local HTTP server: OIP repository API, generic hook, readiness polling."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from goldwatch.errors import ConfigError, ServerUnreachableError
from goldwatch.watchdog.registry import (
    CommandReloader,
    HttpHookReloader,
    OipReloader,
    make_reloader,
)


class _Server:
    """Records requests; answers load with ``load_status``; ready turns 200 after ``ready_after`` polls."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.load_status = 200
        self.ready_after = 2
        self.polls = 0


@pytest.fixture
def server(free_port: int) -> Iterator[tuple[_Server, str]]:
    state = _Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"{}") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(("POST", self.path, body))
            self._answer(state.load_status, b'{"error": "nope"}' if state.load_status != 200 else b"")

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, b""))
            state.polls += 1
            self._answer(200 if state.polls > state.ready_after else 503)

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{free_port}"
    httpd.shutdown()
    httpd.server_close()


def test_oip_load_then_ready(server) -> None:
    state, url = server
    r = OipReloader(url, model_name="fraud model")
    r.reload(model="m", version="3", path=Path("/x"))
    r.wait_ready(timeout_s=5)
    r.close()
    assert state.requests[0][:2] == ("POST", "/v2/repository/models/fraud%20model/load")
    assert [p for m, p, _ in state.requests[1:]] == ["/v2/models/fraud%20model/ready"] * 3


def test_oip_errors_are_server_errors_not_model_verdicts(server, free_port: int) -> None:
    state, url = server
    state.load_status = 400
    with pytest.raises(ServerUnreachableError, match=re.escape('load answered HTTP 400: {"error": "nope"}')):
        OipReloader(url, model_name="m").reload(model="m", version="1", path=Path("/x"))
    state.ready_after = 10**6
    with pytest.raises(ServerUnreachableError, match=r"model 'm' not ready after 0.2 s \(last answer: HTTP 503\)"):
        OipReloader(url, model_name="m").wait_ready(timeout_s=0.2)
    with pytest.raises(ServerUnreachableError, match="cannot reach the server"):
        OipReloader("http://127.0.0.1:9", model_name="m").reload(model="m", version="1", path=Path("/x"))


def test_http_hook_posts_the_target(server) -> None:
    state, url = server
    r = HttpHookReloader(f"{url}/hooks/reload", ready_url=f"{url}/healthz")
    r.reload(model="m", version="7", path=Path("/srv/m/current"))
    r.wait_ready(timeout_s=5)
    method, path, body = state.requests[0]
    assert (method, path) == ("POST", "/hooks/reload")
    assert json.loads(body) == {"model": "m", "version": "7", "path": "/srv/m/current"}
    state.load_status = 500
    with pytest.raises(ServerUnreachableError, match="reload hook answered HTTP 500"):
        r.reload(model="m", version="7", path=Path("/x"))


def test_command_reloader(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    r = CommandReloader(["sh", "-c", f"touch {flag}"], ready_argv=["test", "-e", str(flag)])
    r.reload(model="m", version="1", path=tmp_path)
    r.wait_ready(timeout_s=2)
    with pytest.raises(ServerUnreachableError, match="reload command not found: /no/such/binary"):
        CommandReloader(["/no/such/binary"]).reload(model="m", version="1", path=tmp_path)
    never = CommandReloader(["true"], ready_argv=["false"])
    with pytest.raises(ServerUnreachableError, match=r"ready command not satisfied after 0\.1 s"):
        never.wait_ready(timeout_s=0.1)


def test_make_reloader_from_config_values() -> None:
    assert make_reloader("none", model="m") is None
    assert isinstance(make_reloader("oip", model="m", url="http://127.0.0.1:1"), OipReloader)
    assert isinstance(make_reloader("command", model="m", command=["true"]), CommandReloader)
    with pytest.raises(ConfigError, match="needs reload_url"):
        make_reloader("http", model="m")
    with pytest.raises(ConfigError, match="the reload command is empty"):
        make_reloader("command", model="m")
