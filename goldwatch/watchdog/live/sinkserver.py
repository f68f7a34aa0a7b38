"""The payload-logger sink on its own port: HTTP/1.1 parsed by httptools, nothing else on the path.

Every logged inference is two HTTP requests to the sink. Through an ASGI server and a web framework, each costs
~90 us of Python in the host process (benchmarks/RESULTS.md: uvicorn + starlette), the same GIL the drift worker
needs; :class:`SinkServer` answers the same requests for ~30 us: an asyncio protocol on the host's event loop
(no thread of its own) that feeds bytes to ``httptools`` (the parser uvicorn uses) and hands each complete
request's ``ce-*`` attributes and body to :meth:`LiveDrift.sink_attributes
<goldwatch.watchdog.live.service.LiveDrift.sink_attributes>`. It serves only ``POST /v1/cloudevents`` and ``POST
/v1/models/{model}/cloudevents`` -- keep-alive, pipelining and chunked bodies included -- and answers anything else
with one JSON line (404, 405, 400 for a malformed request, 413 past the body limit) before closing a connection it
cannot trust.

>>> import asyncio
>>> from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
>>> from goldwatch.watchdog.live.service import LiveDrift
>>> live = LiveDrift.from_config(LiveDriftSection(models=[LiveDriftModelConfig(name="fraud")]))
>>> async def demo():
...     server = SinkServer(live, port=0)
...     await server.start()
...     reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
...     writer.write(b"POST /v1/cloudevents HTTP/1.1\\r\\nHost: x\\r\\nCe-Id: 1\\r\\nCe-Specversion: 1.0\\r\\n"
...                  b"Ce-Source: s\\r\\nCe-Type: org.kubeflow.serving.inference.request\\r\\n"
...                  b"Content-Length: 2\\r\\n\\r\\n{}")
...     status = await reader.readline()
...     writer.close()
...     await server.stop()
...     return status
>>> asyncio.run(demo())
b'HTTP/1.1 200 OK\\r\\n'
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from goldwatch._optional import require
from goldwatch.watchdog.live.events import STRUCTURED
from goldwatch.watchdog.live.service import LiveDrift

__all__ = ["SinkServer"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_REASONS = {400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large"}
_PREFIX, _SUFFIX = b"/v1/models/", b"/cloudevents"


def _answer(status: int, message: str, *, close: bool) -> bytes:
    if status == 200:
        return _OK
    body = json.dumps({"error": message}).encode()
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status, _REASONS.get(status, b"Error"), len(body))
    return head + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body


class _Protocol(asyncio.Protocol):
    """One connection: httptools calls back as the bytes arrive; each complete request is answered in order."""

    def __init__(self, live: LiveDrift, httptools: Any) -> None:
        self.live = live
        self.httptools = httptools
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.raw: list[tuple[bytes, bytes]] = []  # the headers as they came (read once, when complete)
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not served here")
        except self.httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request ({exc})")

    def _fail(self, status: int, message: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_answer(status, message, close=True))
            self.transport.close()

    # -- httptools callbacks ----------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.live.max_body_bytes:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.too_large:
            self.live.counters.bad("too_large")
            self._fail(413, f"body exceeds {self.live.max_body_bytes} bytes")
            return
        path = self.url.split(b"?", 1)[0]
        model: str | None = None
        if path == b"/v1/cloudevents":
            pass
        elif path.startswith(_PREFIX) and path.endswith(_SUFFIX) and len(path) > len(_PREFIX) + len(_SUFFIX):
            name = path[len(_PREFIX): -len(_SUFFIX)]
            if b"/" in name:
                self.transport.write(_answer(404, "not found", close=False))
                return
            model = name.decode("utf-8", errors="replace")
        else:
            self.transport.write(_answer(404, "only POST /v1/cloudevents and /v1/models/{model}/cloudevents here",
                                         close=False))
            return
        if self.parser.get_method() != b"POST":
            self.transport.write(_answer(405, "send the events with POST", close=False))
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        attrs: dict[str, str] = {}
        content_type = ""
        for name, value in self.raw:
            low = name.lower()
            if low[:3] == b"ce-":
                attrs[low[3:].decode("latin-1")] = value.decode("latin-1")
            elif low == b"content-type":
                content_type = value.decode("latin-1")
        if attrs and not content_type.startswith(STRUCTURED):  # binary mode: the hot path
            outcome = self.live.sink_attributes(attrs, body, content_type=content_type or "application/json",
                                                model=model)
        else:
            headers = {f"ce-{k}": v for k, v in attrs.items()} | ({"content-type": content_type} if content_type
                                                                     else {})
            outcome = self.live.sink(headers, body, model=model)
        keep = self.parser.should_keep_alive()
        self.transport.write(_answer(outcome.status, outcome.message, close=not keep))
        if not keep:
            self.transport.close()


class SinkServer:
    """The sink on ``host:port`` (port 0: any free one, see :attr:`port`), on the running event loop."""

    def __init__(self, live: LiveDrift, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.live, self.host, self._port = live, host, int(port)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        httptools = require("httptools", purpose="the live-drift sink server")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Protocol(self.live, httptools), self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
