"""How goldwatch marks its own inference traffic, so that nobody mistakes it for users' traffic.

The sidecar replays golden sets against the live server. Those requests must not reach the drift windows (they
would make every window look like the golden set) nor a payload logger's archive. Each probe request carries two
marks, either of which is enough to recognise it:

* the HTTP header ``Ce-Id: goldwatch-<uuid>``. KServe's payload logger takes a request's ``Ce-Id`` header as the
  id of the CloudEvents it emits for that request and its response, so both events arrive with ``ce-id``
  ``goldwatch-...``;
* the Open Inference Protocol v2 request parameter ``"goldwatch_probe": true`` (``parameters`` at the top of the
  request body), which survives proxies and loggers that drop or rewrite headers.

This module is the one place that defines both marks; the OIP client sets them and the ingestion side tests them.

>>> pid = new_probe_id()
>>> pid.startswith(PROBE_ID_PREFIX), is_probe_id(pid), is_probe_id("5f0c7a9e-2b1d-4c8e-9d4e-1a2b3c4d5e6f")
(True, True, False)
>>> is_probe_body({"parameters": {PROBE_PARAMETER: True}, "inputs": []}), is_probe_body({"inputs": []})
(True, False)
>>> mark_request({"inputs": []})["parameters"] == {PROBE_PARAMETER: True}
True
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PROBE_HEADER",
    "PROBE_ID_PREFIX",
    "PROBE_PARAMETER",
    "is_probe_body",
    "is_probe_id",
    "mark_request",
    "new_probe_id",
    "probe_headers",
]

PROBE_HEADER = "Ce-Id"
PROBE_ID_PREFIX = "goldwatch-"
PROBE_PARAMETER = "goldwatch_probe"


def new_probe_id() -> str:
    """A fresh id for one probe request: ``goldwatch-`` and a random UUID."""
    return f"{PROBE_ID_PREFIX}{uuid.uuid4()}"


def probe_headers(probe_id: str | None = None) -> dict[str, str]:
    """The HTTP headers that mark one probe request."""
    return {PROBE_HEADER: probe_id or new_probe_id()}


def mark_request(body: dict[str, Any]) -> dict[str, Any]:
    """Add the probe parameter to an OIP v2 request body (in place; returned for chaining)."""
    params = body.get("parameters")
    body["parameters"] = {**(params if isinstance(params, Mapping) else {}), PROBE_PARAMETER: True}
    return body


def is_probe_id(event_id: str | None) -> bool:
    """Whether a CloudEvent id / request id belongs to a goldwatch probe."""
    return isinstance(event_id, str) and event_id.startswith(PROBE_ID_PREFIX)


def is_probe_body(body: Any) -> bool:
    """Whether a decoded OIP v2 request (or response) body carries the probe parameter."""
    if not isinstance(body, Mapping):
        return False
    params = body.get("parameters")
    return isinstance(params, Mapping) and params.get(PROBE_PARAMETER) is True
