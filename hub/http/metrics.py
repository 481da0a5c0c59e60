"""Prometheus metrics: request counts and latencies by route, plus the
persister's and the broker plugin's counters (read when scraped).

Each app has its own registry, so several apps in one process (tests) do
not collide. `GET /metrics` serves it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.http.errors import Handler
from hub.http.typedefs import METRICS, SETTINGS
from hub.settings import Settings

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def component_stats(settings: Settings) -> dict[str, dict[str, Any] | None]:
    """The persister's and the broker plugin's counters, if those components
    (and their stats readers) are installed and have published any."""
    out: dict[str, dict[str, Any] | None] = {}
    for name, module in (("persister", "hub.persister.stats"), ("broker_plugin", "hub.broker_auth.stats")):
        try:
            mod = __import__(module, fromlist=["read_stats"])
            stats = mod.read_stats(settings)
            out[name] = dict(stats) if stats is not None else None
        except ImportError:
            out[name] = None
        except Exception as e:  # a broken stats file must not break health or metrics
            out[name] = {"error": f"{type(e).__name__}: {e}"[:200]}
    return out


class _ComponentCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        for component, stats in component_stats(self.settings).items():
            for key, value in (stats or {}).items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                name = "".join(c if c.isalnum() else "_" for c in f"hub_{component}_{key}")
                yield GaugeMetricFamily(name, f"{component} counter {key}", value=float(value))


class Metrics:
    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hub_http_requests", "HTTP requests by route, method and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("hub_http_request_seconds", "HTTP request latency by route and method",
                                 ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_ComponentCollector(settings))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        m = request.app[METRICS]
        route = _route_name(request)
        m.requests.labels(request.method, route, str(status)).inc()
        m.latency.labels(request.method, route).observe(time.perf_counter() - start)


routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    import asyncio

    body = await asyncio.get_running_loop().run_in_executor(None, request.app[METRICS].render)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics(app[SETTINGS])
    app.router.add_routes(routes)
