"""The base of goldwatch's small in-process HTTP servers (the PagerDuty stand-in, the drill's gateway, benchmark
stand-ins), kept apart from :mod:`goldwatch._http` so that HTTP clients do not import ``http.server``."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any


class QuietKeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log on stderr, one buffered write per answer and no Nagle: otherwise each
    keep-alive request waits ~40 ms for a delayed ACK and the stand-in, not goldwatch, sets the pace."""

    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass
