"""A module as later goldwatch code writes one: metrics and routes that follow the reference conventions."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route


class QueueCollector(Collector):
    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("goldwatch_fixture_queue_events", "events waiting", labels=["model"])


def document_metrics(registry: CollectorRegistry) -> None:
    Counter("goldwatch_fixture_checks", "Check runs", ["model", "status"], registry=registry)
    Histogram("goldwatch_fixture_check_seconds", "How long a check took", ["check"], registry=registry)
    Info("goldwatch_fixture_build", "goldwatch's version", registry=registry).info({"version": "0"})
    registry.register(QueueCollector())


def _guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request)

    return endpoint


async def livez(request: Request) -> Response:
    """The event loop answers (a liveness probe).

    More detail that the reference leaves out.
    """
    return PlainTextResponse("ok")


async def rollback(request: Request) -> Response:
    """Roll MODEL back now (needs the bearer token)."""
    return PlainTextResponse("ok")


def document_routes() -> list[BaseRoute]:
    return [Route("/livez", _guarded(livez), methods=["GET"]),
            Mount("/v1", routes=[Route("/models/{model}/rollback", _guarded(rollback), methods=["POST"])])]
