"""The clients' view of a drill: steady requests through the serving path, each judged right, wrong or failed.

A drill measures recovery from the side that matters: a :class:`Prober` sends the same small batch to the URL
clients call (the gateway in front of the model) every ``interval_s``, and judges each answer against the answers
of every approved model (the registry's versions, the fallback, the CPU variant): ``ok`` when it matches one of
them within tolerance, ``wrong`` when the server answered something else, ``error`` when it did not answer (HTTP
error, refused connection, timeout). Its requests are marked as goldwatch's own (:mod:`goldwatch.probe`), so
payload loggers and drift windows leave them out.

>>> samples = [Sample(10.0, "ok", "2"), Sample(10.1, "error"), Sample(10.2, "error"), Sample(10.3, "ok", "fallback"),
...            Sample(10.4, "ok", "fallback")]
>>> view = client_view(samples, start=10.05, end=10.5)
>>> view.requests, view.failed, view.restored_s, view.served_by
(4, 2, 0.25, {'fallback': 2})
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from goldwatch.probe import mark_request, probe_headers

__all__ = ["ClientView", "Prober", "Sample", "client_view"]

Outcome = Literal["ok", "wrong", "error"]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One request: when it was sent (epoch s), how it went, which approved model's answer it matched."""

    at: float
    outcome: Outcome
    label: str | None = None
    latency_s: float = 0.0
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ClientView:
    """What clients saw between ``start`` and ``end``: requests, how many failed or were answered wrong, and when
    the answers became right for good (``restored_s`` after ``start``; 0 when nothing ever went wrong)."""

    requests: int
    failed: int
    wrong: int
    restored_s: float
    first_bad_s: float | None
    served_by: dict[str, int]
    examples: tuple[str, ...] = ()

    @property
    def lost(self) -> int:
        return self.failed + self.wrong


def client_view(samples: Sequence[Sample], *, start: float, end: float) -> ClientView:
    """Summarise the samples sent in [start, end]."""
    window = [s for s in samples if start <= s.at <= end]
    bad = [s for s in window if s.outcome != "ok"]
    restored = 0.0
    if bad:
        last_bad = bad[-1].at
        after = [s for s in window if s.at > last_bad]
        restored = (after[0].at if after else end) - start
    served: dict[str, int] = {}
    for s in window:
        if s.outcome == "ok" and s.label:
            served[s.label] = served.get(s.label, 0) + 1
    examples = tuple(dict.fromkeys(s.detail for s in bad if s.detail))[:3]
    return ClientView(len(window), sum(1 for s in bad if s.outcome == "error"),
                      sum(1 for s in bad if s.outcome == "wrong"), round(restored, 6),
                      round(bad[0].at - start, 6) if bad else None, served, examples)


class Prober:
    """Send ``inputs`` to ``url`` (an OIP v2 model URL) every ``interval_s`` from a thread, judging each answer
    against ``answers`` (approved model -> output name -> expected array) with ``atol`` + ``rtol``."""

    def __init__(self, url: str, inputs: Mapping[str, np.ndarray], answers: Mapping[str, Mapping[str, np.ndarray]],
                 *, interval_s: float = 0.05, timeout_s: float = 2.0, atol: float = 1e-4, rtol: float = 1e-4) -> None:
        from goldwatch._http import client
        from goldwatch.runtimes.oip import numpy_to_oip

        self.url = url.rstrip("/")
        self.answers = {k: {n: np.asarray(v) for n, v in out.items()} for k, out in answers.items()}
        self.interval_s = interval_s
        self.atol, self.rtol = atol, rtol
        self.samples: list[Sample] = []
        self._body = {"inputs": [{"name": name, "shape": list(np.asarray(a).shape),
                                  "datatype": numpy_to_oip(str(np.asarray(a).dtype)),
                                  "data": np.asarray(a).ravel().tolist()} for name, a in inputs.items()]}
        self._client = client(timeout=timeout_s, urls=[url])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="goldwatch-drill-prober")
        self._lock = threading.Lock()

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._client.close()

    def window(self, start: float, end: float) -> ClientView:
        with self._lock:
            samples = list(self.samples)
        return client_view(samples, start=start, end=end)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.time()
            sample = self.send(t0)
            with self._lock:
                self.samples.append(sample)
            self._stop.wait(max(0.0, self.interval_s - (time.time() - t0)))

    def send(self, at: float) -> Sample:
        """One request, judged."""
        import httpx

        body = mark_request(dict(self._body))
        t0 = time.perf_counter()
        try:
            resp = self._client.post(self.url + "/infer", json=body, headers=probe_headers())
        except httpx.HTTPError as exc:
            return Sample(at, "error", None, time.perf_counter() - t0, f"{type(exc).__name__}")
        took = time.perf_counter() - t0
        if resp.status_code != 200:
            return Sample(at, "error", None, took, f"HTTP {resp.status_code}")
        try:
            outputs = _decode(resp.json())
        except (ValueError, KeyError, TypeError) as exc:
            return Sample(at, "wrong", None, took, f"unreadable answer ({exc})")
        for label, expected in self.answers.items():
            if all(name in outputs and outputs[name].shape == want.shape
                   and np.allclose(outputs[name], want, atol=self.atol, rtol=self.rtol)
                   for name, want in expected.items()):
                return Sample(at, "ok", label, took)
        return Sample(at, "wrong", None, took, "an answer no approved model gives")


def _decode(body: Any) -> dict[str, np.ndarray]:
    return {str(o["name"]): np.asarray(o["data"], dtype=np.float64).reshape([int(d) for d in o["shape"]])
            for o in body["outputs"]}
