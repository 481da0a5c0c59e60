"""The one app factory: `init_app(settings) -> web.Application`.

Middlewares (outermost first): metrics, errors (every failure as JSON),
body limit (413 before a large body is read), rhizo (serves rhizo-server's dialect,
hub/http/rhizo/, before the hub's own routes see it). Cleanup contexts own the
executors, the Store, the change-log watcher and the MQTT publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from hub.errors import TooLarge
from hub.extensions import http as extensions_http
from hub.extensions.loader import of as extensions_of
from hub.http import accesslog, console, metrics
from hub.http.auth import SAFE_METHODS
from hub.http.authcache import AuthCache
from hub.http.brokersync import BrokerSync
from hub.http.errors import Handler, error_middleware
from hub.http.publisher import Publisher
from hub.http.ratelimit import LoginLimiter
from hub.http.readcache import POLL_SECONDS, ReadCache
from hub.http.rhizo import dialect as rhizo_dialect
from hub.http.routes import all_routes
from hub.http.typedefs import (
    ASYNC_READS,
    AUTH_CACHE,
    BROKER_SYNC,
    DB_EXECUTOR,
    HASH_EXECUTOR,
    LOGIN_LIMITER,
    PUBLISHER,
    READ_CACHE,
    SETTINGS,
    STORE,
)
from hub.settings import Settings
from hub.storage import changes, revisions
from hub.storage.asyncreads import AsyncReads
from hub.storage.store import Store

log = logging.getLogger("hub.http")
DB_THREADS = 8
HASH_THREADS = 2
PING_IDLE_SECONDS = 2.0  # a pooled connection unused this long is checked before use


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SETTINGS].MAX_REQUEST_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"request body of {request.content_length} bytes is over the limit of {limit} "
                       "(MAX_REQUEST_BYTES)")
    try:
        resp = await handler(request)
    finally:
        if request.method not in SAFE_METHODS:  # a write: later reads must see it
            request.app[READ_CACHE].clear()
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


async def _executors(app: web.Application) -> AsyncIterator[None]:
    app[DB_EXECUTOR] = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="hub-db")
    app[HASH_EXECUTOR] = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="hub-bcrypt")
    yield
    app[DB_EXECUTOR].shutdown(wait=True)
    app[HASH_EXECUTOR].shutdown(wait=True)


async def _store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    kw: dict[str, object] = {}
    if not settings.database_url.startswith("sqlite"):
        kw = {"pool_size": DB_THREADS + HASH_THREADS, "max_overflow": 4, "ping_idle_seconds": PING_IDLE_SECONDS}
    app[STORE] = Store.from_settings(settings, **kw)
    reads = app[ASYNC_READS] = AsyncReads.for_database(app[STORE].db, max_size=DB_THREADS)
    if reads is not None:
        await reads.open()
    yield
    if reads is not None:
        await reads.close()
    app[STORE].close()


CHANGES_PER_POLL = 1000


def _generation(store: Store, cursor: list[changes.ChangeCursor]) -> tuple[int, int, list[tuple[int, str, str]]]:
    """(newest change id, newest revision id, the changes that committed late: below
    the change id already seen) through the worker's `ChangeCursor` (made on first use)."""
    with store.session() as s:
        if not cursor:
            cursor.append(changes.ChangeCursor(changes.latest(s)))
        before = cursor[0].position
        rows = cursor[0].read(s, CHANGES_PER_POLL)
        newest_revision = revisions.newest_id(s)
    cursor[0].consume(rows)
    return cursor[0].position, newest_revision, [r for r in rows if r[0] <= before]


async def _watch_changes(app: web.Application) -> None:
    """Drop cached access decisions when the change log moves (or a change commits late,
    after a newer one), and cached reads when it or the newest revision moves."""
    loop = asyncio.get_running_loop()
    auth, reads = app[AUTH_CACHE], app[READ_CACHE]
    cursor: list[changes.ChangeCursor] = []
    while True:
        late: list[tuple[int, str, str]] = []
        try:
            change_id, revision, late = await loop.run_in_executor(app[DB_EXECUTOR], _generation,
                                                                   app[STORE], cursor)
        except Exception as e:  # database away: trust nothing cached, try again
            log.debug("change-log poll failed: %s", e)
            change_id, revision = -1, -1
        auth.observe(change_id, late)
        if late:
            reads.clear()
        reads.observe((change_id, revision))
        await asyncio.sleep(POLL_SECONDS)


async def _auth_cache(app: web.Application) -> AsyncIterator[None]:
    app[AUTH_CACHE] = AuthCache()
    app[READ_CACHE] = ReadCache(app[SETTINGS].HTTP_READ_CACHE_SECONDS)
    task = asyncio.create_task(_watch_changes(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    pub = Publisher(app[SETTINGS])
    pub.start()
    app[PUBLISHER] = pub
    yield
    await asyncio.get_running_loop().run_in_executor(None, pub.close)


async def _broker_sync(app: web.Application) -> AsyncIterator[None]:
    if not app[SETTINGS].broker_has_plugin:
        yield  # nothing to wait for (`settle_created` answers at once)
        return
    sync = BrokerSync(app[SETTINGS], asyncio.get_running_loop())
    sync.start()
    app[BROKER_SYNC] = sync
    yield
    await asyncio.get_running_loop().run_in_executor(None, sync.close)


def init_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.MAX_REQUEST_BYTES,
                          middlewares=[metrics.metrics_middleware, error_middleware, body_limit_middleware])
    app[SETTINGS] = settings
    app[LOGIN_LIMITER] = LoginLimiter()
    # cleaned up in reverse: the executors finish their jobs before the Store closes its pool
    # (a job still running at shutdown would otherwise open a connection nobody closes)
    app.cleanup_ctx.extend([_store, _executors, _auth_cache, _publisher, _broker_sync])
    for table in all_routes():
        app.router.add_routes(table)
    metrics.setup(app)
    accesslog.setup(app)
    console.setup(app)
    extensions_http.setup(app, extensions_of(settings))  # /ext/<name>/... (hub/extensions/http.py)
    rhizo_dialect.setup(app)  # rhizo-server's dialect, innermost (hub/http/rhizo/)
    return app
