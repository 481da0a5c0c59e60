"""How handlers reach the storage layer: in a thread, off the event loop.

`await in_session(request, fn, *args)` runs `fn(session, *args)` in one
transaction (`Store.session()`) on the database executor and returns its
result. Handlers hold no SQL: `fn` calls `hub.storage.*` functions.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from hub.http.typedefs import DB_EXECUTOR, HASH_EXECUTOR, STORE
from hub.storage.store import Store

T = TypeVar("T")


async def in_thread(request: web.Request, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[DB_EXECUTOR], functools.partial(fn, *args, **kw))


async def in_hash_thread(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """For bcrypt: its own small pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[HASH_EXECUTOR], functools.partial(fn, *args))


async def in_session(request: web.Request, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    store = request.app[STORE]

    def work() -> T:
        with store.session() as s:
            return fn(s, *args, **kw)

    return await in_thread(request, work)


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def run_in_session(store: Store, fn: Callable[[Session], T]) -> T:
    with store.session() as s:
        return fn(s)
