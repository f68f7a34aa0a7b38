"""Getting the agent's evidence to the sidecar without ever holding up serving.

The agent pushes (the sidecar does not pull): a worker can start, move and die without the sidecar knowing its
address, and a worker that stops reporting is itself the evidence the sidecar needs (stale after 3 x
``interval_s``: a warning, never a rollback).

:class:`HttpReporter` posts each :class:`~goldwatch.watchdog.agent.results.Evidence` as JSON to
``{sidecar_url}/v1/models/{model}/evidence`` with ``Authorization: Bearer <token>``. The token comes from an
environment variable or a file (never from code or config text) and is registered with the log redactor, so it
never reaches a log line. ``report`` only appends to a bounded in-memory queue and returns; a background thread
delivers with bounded retries (connection errors, timeouts, 408/429/5xx; exponential backoff with jitter) and gives
up on other 4xx answers at once (a wrong token or body will not fix itself). When the queue is full the oldest
passing report is dropped first: a failure is the last thing to lose. The HTTP client takes an injectable httpx
transport (tests use ``httpx.MockTransport``).

:class:`CallbackReporter` hands each report to a function in the same process (a sidecar embedded in the server,
tests); exceptions it raises are logged, never propagated into the agent.

>>> import httpx, json
>>> seen = []
>>> def sidecar(request):
...     seen.append((request.url.path, request.headers["authorization"], json.loads(request.content)["kind"]))
...     return httpx.Response(202)
>>> rep = HttpReporter("http://127.0.0.1:9", token="s3cret-token", transport=httpx.MockTransport(sidecar))
>>> rep.report(Evidence(model="fraud", source="agent:h:1", version="7", interval_s=60.0, checks=()))
>>> rep.close()
>>> seen
[('/v1/models/fraud/evidence', 'Bearer s3cret-token', 'resident')]
"""

from __future__ import annotations

import collections
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from goldwatch.config import resolve_secret
from goldwatch.errors import ConfigError
from goldwatch.logs import get_logger, redact
from goldwatch.watchdog.agent.metrics import agent_metrics
from goldwatch.watchdog.agent.results import Evidence

__all__ = ["DEFAULT_TOKEN_ENV", "CallbackReporter", "HttpReporter", "Reporter", "evidence_url"]

log = get_logger(__name__)

DEFAULT_TOKEN_ENV = "GOLDWATCH_SERVE_TOKEN"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class Reporter(Protocol):
    """Where an agent sends its evidence. ``report`` must return at once; ``close`` flushes within a time bound."""

    def report(self, evidence: Evidence) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class CallbackReporter:
    """Deliver evidence to ``callback`` in this process (called on the agent's thread)."""

    def __init__(self, callback: Callable[[Evidence], None]) -> None:
        self.callback = callback

    def report(self, evidence: Evidence) -> None:
        try:
            self.callback(evidence)
        except Exception:  # the agent must survive a broken consumer
            log.exception("the evidence callback for model %s raised", evidence.model)

    def close(self, timeout_s: float = 5.0) -> None:
        return None


def evidence_url(sidecar_url: str, model: str) -> str:
    """``{sidecar_url}/v1/models/{model}/evidence`` (the model name percent-encoded)."""
    return f"{sidecar_url.rstrip('/')}/v1/models/{urllib.parse.quote(model, safe='')}/evidence"


class HttpReporter:
    """POST evidence to the sidecar from a background thread (see the module docstring).

    ``token`` (tests, embedding) or ``token_env`` / ``token_file`` (env wins) supply the bearer token; without one
    the reporter refuses to start: the sidecar would reject every report. ``retries`` extra attempts per report,
    ``backoff_s`` the first delay (doubled each time, with jitter), ``timeout_s`` per request.
    """

    def __init__(
        self,
        sidecar_url: str,
        *,
        token: str | None = None,
        token_env: str | None = DEFAULT_TOKEN_ENV,
        token_file: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        queue_size: int = 32,
        metrics_registry: Any = None,
    ) -> None:
        if not sidecar_url.startswith(("http://", "https://")):
            raise ConfigError(f"the sidecar URL must start with http:// or https://, got {sidecar_url!r}",
                              where="agent.sidecar_url", hint="e.g. http://127.0.0.1:9180")
        if token is None:
            token = resolve_secret(env=token_env, file=Path(token_file) if token_file else None, what="agent token")
        if not token:
            raise ConfigError(
                "no bearer token for the sidecar", where=f"${token_env}" if token_env else "agent.token_file",
                hint=f"set ${token_env or 'GOLDWATCH_SERVE_TOKEN'} or agent.token_file to the token `goldwatch serve`"
                " accepts",
            )
        redact(token)
        if retries < 0 or queue_size < 1 or timeout_s <= 0 or backoff_s < 0:
            raise ConfigError("retries >= 0, queue_size >= 1, timeout_s > 0 and backoff_s >= 0 are required",
                              where="HttpReporter")
        self.sidecar_url = sidecar_url
        self.retries = retries
        self.backoff_s = backoff_s
        self.queue_size = queue_size
        self._client = httpx.Client(
            transport=transport, timeout=timeout_s, trust_env=False,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "goldwatch-agent"},
        )
        self._metrics = agent_metrics(metrics_registry)
        self._queue: collections.deque[Evidence] = collections.deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._abort = threading.Event()  # close()'s deadline passed: stop retrying
        self._thread = threading.Thread(target=self._run, name="goldwatch-agent-reporter", daemon=True)
        self._thread.start()

    # -- producer side (the agent's thread): never blocks --------------------------------------------------------

    def report(self, evidence: Evidence) -> None:
        with self._cond:
            if self._closing.is_set():
                self._count(evidence.model, "dropped")
                return
            if len(self._queue) >= self.queue_size:
                victim = next((e for e in self._queue if e.status not in ("fail", "error")), self._queue[0])
                self._queue.remove(victim)
                self._count(victim.model, "dropped")
                log.warning("evidence queue full (%d): dropped a %s report of %s", self.queue_size, victim.status,
                            victim.model)
            self._queue.append(evidence)
            self._cond.notify()

    def _count(self, model: str, outcome: str) -> None:
        self._metrics.reports.labels(model=model, outcome=outcome).inc()

    # -- consumer side --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                evidence = self._queue.popleft()
            self._count(evidence.model, self._deliver(evidence))

    def _deliver(self, evidence: Evidence) -> str:
        url = evidence_url(self.sidecar_url, evidence.model)
        body = evidence.to_json()
        problem = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
                if self._abort.wait(delay):
                    break
            attempts += 1
            try:
                response = self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= response.status_code < 300:
                return "delivered"
            problem = f"HTTP {response.status_code} {response.text[:200]!r}"
            if response.status_code not in _RETRY_STATUS:
                log.error("the sidecar rejected a %s report of %s at %s: %s (fix the agent's token or "
                          "configuration)", evidence.status, evidence.model, url, problem)
                return "rejected"
        log.warning("could not deliver a %s report of %s to %s after %d attempt(s): %s", evidence.status,
                    evidence.model, url, attempts, problem)
        return "failed"

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within ``timeout_s`` (what is left is dropped), then stop the thread."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._closing.set()
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()
        with self._cond:
            for e in self._queue:
                self._count(e.model, "dropped")
            self._queue.clear()
        if not self._thread.is_alive():
            self._client.close()
