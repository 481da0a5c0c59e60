"""Typed application keys: everything a handler reaches through `request.app`.

Each is created in `app.init_app`'s cleanup contexts and closed there.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web

from hub.settings import Settings
from hub.storage.store import Store

if TYPE_CHECKING:
    from hub.http.authcache import AuthCache
    from hub.http.metrics import Metrics
    from hub.http.publisher import Publisher
    from hub.http.ratelimit import LoginLimiter
    from hub.http.readcache import ReadCache
    from hub.storage.asyncreads import AsyncReads

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
# Storage calls (synchronous SQLAlchemy) run here, off the event loop.
DB_EXECUTOR = web.AppKey("db_executor", ThreadPoolExecutor)
# bcrypt runs here: a few slow logins must not starve the database pool.
HASH_EXECUTOR = web.AppKey("hash_executor", ThreadPoolExecutor)
# The latest-value read on the event loop (PostgreSQL through psycopg; None: the thread path).
ASYNC_READS: web.AppKey[AsyncReads | None] = web.AppKey("async_reads")
AUTH_CACHE: web.AppKey[AuthCache] = web.AppKey("auth_cache")
READ_CACHE: web.AppKey[ReadCache] = web.AppKey("read_cache")
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")
PUBLISHER: web.AppKey[Publisher] = web.AppKey("publisher")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
