"""Who is calling, as rhizo-server saw it: a key (Basic, the key as the password), a
browser session, or nobody. A credential the hub does not know counts as nobody, so a
request gets rhizo's 403 / 404 rather than a 401."""

from __future__ import annotations

from aiohttp import web

from hub.access import Subject
from hub.errors import Unauthenticated
from hub.http.auth import Caller, optional_caller

NOBODY = Subject()


async def caller(request: web.Request) -> Caller | None:
    try:
        return await optional_caller(request)
    except Unauthenticated:
        return None


async def subject(request: web.Request) -> Subject:
    found = await caller(request)
    return found.subject if found is not None else NOBODY
