"""Helpers for the agent tests: goldwatch model directories generated in code, and a strict local stand-in of the
sidecar's evidence endpoint (``POST /v1/models/{model}/evidence``) until ``goldwatch serve`` lands."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from goldwatch.examples import KINDS
from goldwatch.integrity import build_manifest
from goldwatch.runtimes.base import DESCRIPTOR_NAME

FACTORY = KINDS["tabular"].factory
SIGNATURE = KINDS["tabular"].signature.to_dict()


def write_model_dir(path: Path, *, seed: int, hidden: int = 32, manifest: bool = True) -> Path:
    """A ``goldwatch-model.json`` directory of the tabular MLP with ``hidden`` units (hidden=600: the middle
    layers' weights are 1.4 MB, two 1 MiB blocks), random weights from ``seed``; its manifest beside it."""
    import torch
    from safetensors.torch import save_file

    from goldwatch.examples.models import tabular_mlp

    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = tabular_mlp(hidden=hidden)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path / "weights.safetensors"))
    descriptor = {"format": "goldwatch-model", "version": 1, "factory": FACTORY, "kwargs": {"hidden": hidden},
                  "weights": "weights.safetensors", "signature": SIGNATURE}
    (path / DESCRIPTOR_NAME).write_text(json.dumps(descriptor, indent=2))
    if manifest:
        build_manifest(path).save(path.parent / f"{path.name}.manifest.json")
    return path


def flip_file_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


_PATH = re.compile(r"^/v1/models/([A-Za-z0-9][A-Za-z0-9._-]*)/evidence$")
_SOURCE = re.compile(r"^agent:[^:\s]+:\d+$")
_BODY_KEYS = {"source", "kind", "version", "interval_s", "checks"}
_CHECK_KEYS = {"name", "status", "summary", "measured", "threshold", "details"}


def body_problems(body: Any) -> list[str]:
    """Everything wrong with an evidence body, judged by the contract both sides build to."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = []
    if set(body) != _BODY_KEYS:
        problems.append(f"keys {sorted(body)} != {sorted(_BODY_KEYS)}")
    if not isinstance(body.get("source"), str) or not _SOURCE.match(body["source"]):
        problems.append(f"source {body.get('source')!r} is not agent:<host>:<pid>")
    if body.get("kind") != "resident":
        problems.append(f"kind {body.get('kind')!r} != 'resident'")
    if body.get("version") is not None and not isinstance(body.get("version"), str):
        problems.append("version must be a string or null")
    interval = body.get("interval_s")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        problems.append(f"interval_s {interval!r} is not a positive number")
    checks = body.get("checks")
    if not isinstance(checks, list) or not checks:
        return [*problems, "checks must be a non-empty list"]
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or set(check) != _CHECK_KEYS:
            problems.append(f"checks[{i}] keys {sorted(check) if isinstance(check, dict) else check!r}")
            continue
        if not isinstance(check["name"], str) or not check["name"].startswith("resident:"):
            problems.append(f"checks[{i}].name {check['name']!r}")
        if check["status"] not in ("pass", "fail", "error", "skip"):
            problems.append(f"checks[{i}].status {check['status']!r}")
        if not isinstance(check["summary"], str):
            problems.append(f"checks[{i}].summary is not a string")
        for key in ("measured", "threshold"):
            value = check[key]
            if not isinstance(value, dict) or not all(
                    v is None or isinstance(v, (str, int, float, bool)) for v in value.values()):
                problems.append(f"checks[{i}].{key} must map names to numbers, strings, booleans or null")
        if not isinstance(check["details"], dict):
            problems.append(f"checks[{i}].details is not an object")
    return problems


class EvidenceStandIn:
    """A strict stand-in of the sidecar's evidence endpoint with a minimal incident state per model.

    A failed ``resident:*`` check opens an incident and calls ``on_fail(model, body)`` once (on a thread of its
    own, so the agent's request is answered at once); a passing check that arrives after the action completed
    resolves it. Every request and the answer given are kept in ``received``.
    """

    def __init__(self, *, token: str, on_fail: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.token = token
        self.on_fail = on_fail
        self.received: list[tuple[float, str, int, dict[str, Any] | None]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                stand_in._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, request: Any) -> None:
        match = _PATH.match(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        body: dict[str, Any] | None = None
        if not match:
            code, answer = 404, {"error": f"no route {request.path}"}
        elif request.headers.get("Authorization") != f"Bearer {self.token}":
            code, answer = 401, {"error": "missing or wrong bearer token"}
        elif (request.headers.get("Content-Type") or "").split(";")[0] != "application/json":
            code, answer = 415, {"error": "expected application/json"}
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            problems = body_problems(body)
            code, answer = (422, {"error": problems}) if problems else (202, {"accepted": True})
        with self.changed:
            self.received.append((time.monotonic(), request.path, code, body))
            if code == 202 and match and body is not None:
                self._apply(match.group(1), body)
            self.changed.notify_all()
        request._answer(code, answer)

    def _apply(self, model: str, body: dict[str, Any]) -> None:
        statuses = {c["status"] for c in body["checks"]}
        incident = self.incidents.get(model)
        if "fail" in statuses and (incident is None or incident["state"] == "resolved"):
            self.incidents[model] = incident = {"state": "open", "opened_by": body, "action": "pending",
                                                "opened_at": time.monotonic()}
            if self.on_fail is not None:
                threading.Thread(target=self._act, args=(model, body), daemon=True).start()
        elif statuses == {"pass"} and incident is not None and incident["state"] == "open" \
                and incident["action"] == "done":
            incident.update(state="resolved", resolved_by=body)

    def _act(self, model: str, body: dict[str, Any]) -> None:
        assert self.on_fail is not None
        try:
            self.on_fail(model, body)
            outcome = "done"
        except Exception as exc:  # recorded for the test to see
            outcome = f"failed: {exc!r}"
        with self.changed:
            self.incidents[model]["action"] = outcome
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], Any], *, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                self.changed.wait(left)

    def bodies(self, model: str | None = None) -> list[dict[str, Any]]:
        return [b for _, path, code, b in self.received
                if code == 202 and b is not None and (model is None or path == f"/v1/models/{model}/evidence")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
