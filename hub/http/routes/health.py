"""/api/v1/health: can this server do its job, and how are its neighbours.

Checks the database (a query), bulk storage (reachable, writable), the broker
(the publisher's connection, else a TCP connect), the persisters (as the broker
plugin's storage gate sees them: none subscribed, or one away) and the notifier
(none subscribed, once one was since the broker started; on RabbitMQ: the broker-auth
service, and the consumers of the hub's queues), and includes the
persister's and broker plugin's counters when those components publish them. 200 when
the database and bulk storage work ("degraded" if the broker, a persister or the
notifier is away, or history blocks are damaged: `hub.storage.blocks`), 503 otherwise.

Anyone gets the status and the names of the failing parts (`failing`), which is
all a load balancer needs. The detail (each check's text, the persister's and
the plugin's counters, process and client ids, the damaged blocks' sequences) is
for a system admin, or for a caller on this machine talking to the server
directly, the bound nginx puts on /metrics (a request nginx forwarded carries
X-Forwarded-For).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from aiohttp import web

from hub import supervisor_status
from hub.errors import Unauthenticated
from hub.http.auth import optional_caller
from hub.http.deps import in_thread
from hub.http.metrics import component_stats
from hub.http.routes import API
from hub.http.typedefs import PUBLISHER, SETTINGS, STORE
from hub.storage import blocks, changes

routes = web.RouteTableDef()
CHECK_TIMEOUT = 5.0


def _database(request: web.Request) -> str:
    store = request.app[STORE]
    t = time.perf_counter()
    with store.session() as s:
        latest = changes.latest(s)
    return f"{store.db.engine.dialect.name} ok in {1000 * (time.perf_counter() - t):.1f} ms (change log at {latest})"


def _bulk(request: web.Request) -> str:
    request.app[STORE].bulk.check()
    return "reachable"


def _broker(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    if request.app[PUBLISHER].connected.is_set():
        return f"{settings.MQTT_HOST}:{settings.MQTT_PORT} connected as hub-service"
    with socket.create_connection((settings.MQTT_HOST, settings.MQTT_PORT), timeout=2):
        pass
    return f"{settings.MQTT_HOST}:{settings.MQTT_PORT} accepts connections (hub-service not logged in yet)"


def _persisters(plugin: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the broker plugin's storage gate says of the persisters (None: it says nothing
    fresh, e.g. the broker is down, which the broker check reports)."""
    if not plugin or plugin.get("storage_gate") is None or plugin.get("age_s", 99) > 10:
        return None
    if plugin["storage_gate"] == "closed":
        return {"ok": False, "detail": "no persister subscribed: the broker holds controllers back"}
    away = int(plugin.get("persister_sessions_away", 0))
    detail = f"{plugin.get('persisters_subscribed', 0)} subscribed"
    if away:
        return {"ok": False, "detail": f"{detail}, {away} away (their share of the values waits for them)"}
    return {"ok": True, "detail": detail}


async def _check(request: web.Request, fn: Any) -> dict[str, Any]:
    try:
        detail = await asyncio.wait_for(in_thread(request, fn, request), CHECK_TIMEOUT)
        return {"ok": True, "detail": detail}
    except Exception as e:  # report, never raise: that is the point of a health check
        text = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        return {"ok": False, "detail": str(text)[:300]}


LOOPBACK = frozenset({"127.0.0.1", "::1"})
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


async def may_see_detail(request: web.Request) -> bool:
    """A system admin, or a direct caller on this machine (not through a proxy)."""
    if request.remote in LOOPBACK and not any(h in request.headers for h in PROXY_HEADERS):
        return True
    try:
        caller = await optional_caller(request)
    except Unauthenticated:  # a stale cookie or key: answer as to anyone
        return False
    return caller is not None and caller.is_admin


@routes.get("/health")  # for load balancers
@routes.get(API + "/health")
async def health(request: web.Request) -> web.Response:
    checks = dict(zip(("database", "bulk", "broker"), await asyncio.gather(
        _check(request, _database), _check(request, _bulk), _check(request, _broker)), strict=True))
    stats = await in_thread(request, component_stats, request.app[SETTINGS])
    persisters = _persisters(stats.get("broker_plugin"))
    if not request.app[SETTINGS].broker_has_plugin:  # RabbitMQ: its broker-auth service and queues
        from hub.rabbitmq.checks import health as rabbitmq_health

        try:
            checks.update(await asyncio.wait_for(in_thread(request, rabbitmq_health, request.app[SETTINGS]),
                                                 CHECK_TIMEOUT * 2))
        except TimeoutError:
            checks["broker_auth"] = {"ok": False, "detail": "the broker-auth service or the management API "
                                                            f"did not answer within {CHECK_TIMEOUT * 2:.0f} s"}
    elif persisters is not None:
        checks["persister"] = persisters
        notifiers = (stats.get("broker_plugin") or {}).get("notifiers_subscribed")
        if notifiers is not None:  # once a notifier has subscribed since the broker started
            checks["notifier"] = {"ok": notifiers > 0, "detail": f"{notifiers} subscribed" if notifiers else
                                  "none subscribed: emails and text messages wait for it"}
    supervised = await in_thread(request, supervisor_status.read_status, request.app[SETTINGS])
    if supervised is not None:  # run.py runs every part: its supervisor's word on them
        checks["processes"] = supervisor_status.check(supervised)
        stats["supervisor"] = supervised
    essential = checks["database"]["ok"] and checks["bulk"]["ok"]
    damaged = blocks.corrupt(request.app[STORE].db.safe_url)
    healthy = all(c["ok"] for c in checks.values()) and not damaged
    status = "ok" if essential and healthy else "degraded" if essential else "down"
    failing = [name for name, c in checks.items() if not c["ok"]] + (["history_blocks"] if damaged else [])
    body: dict[str, Any] = {"status": status, "failing": failing}
    if await may_see_detail(request):
        body.update({"checks": checks, **stats})
        if damaged:
            body["corrupt_blocks"] = damaged
    return web.json_response(body, status=200 if essential else 503)
