"""Which dialect a request to /api/v1 speaks, and the middleware serving rhizo's.

The rule (docs/rhizo-compat.md): a request is in rhizo's dialect when it sends
`Content-Type: application/x-www-form-urlencoded` AND asks for `Accept: text/plain` or
`Accept: application/octet-stream`, exactly what rhizo-client sends on every request
(GET and DELETE included), and goes to one of the routes rhizo-client uses
(`/resources`, `/messages`, `/pins`, `/keys`). No client of the hub's own API sends that pair
(they ask for JSON, `*/*`, or nothing), so none of their answers changes. Requests to
`/api/v1/websocket`, which the hub's own API does not have, are rhizo's message websocket.

Everything else reaches the hub's own routes untouched; the OpenAPI document describes
only those.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.errors import HubError
from hub.http.errors import Handler
from hub.http.routes import API

FORM = "application/x-www-form-urlencoded"
RHIZO_ACCEPTS = frozenset({"text/plain", "application/octet-stream"})
WEBSOCKET = API + "/websocket"

RhizoHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
_ROUTES: list[tuple[re.Pattern[str], dict[str, RhizoHandler]]] = []


class MethodNotAllowed(HubError):
    status = 405
    code = "method_not_allowed"


def route(pattern: str, method: str) -> Callable[[RhizoHandler], RhizoHandler]:
    """Register a rhizo handler; `pattern`'s one group (if any) is passed as `tail`."""
    compiled = re.compile(re.escape(API) + pattern + r"\Z")

    def deco(fn: RhizoHandler) -> RhizoHandler:
        for pat, methods in _ROUTES:
            if pat.pattern == compiled.pattern:
                methods[method] = fn
                return fn
        _ROUTES.append((compiled, {method: fn}))
        return fn

    return deco


def is_rhizo(request: web.Request) -> bool:
    """The rule above (for the form routes; the websocket is matched by path alone)."""
    if request.content_type != FORM:
        return False
    accept = request.headers.get("Accept", "").split(";", 1)[0].strip().lower()
    return accept in RHIZO_ACCEPTS


def _match(request: web.Request) -> tuple[RhizoHandler, str] | None:
    for pattern, methods in _ROUTES:
        m = pattern.match(request.path)
        if m is None:
            continue
        fn = methods.get(request.method)
        if fn is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(f"{request.method} is not part of rhizo's API here: use {allowed}")
        return fn, (m.group(1) if m.groups() else "")
    return None


@web.middleware
async def rhizo_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == WEBSOCKET:
        from hub.http.rhizo.websocket import serve

        return await serve(request)
    if request.path.startswith(API + "/") and is_rhizo(request):
        _load_handlers()
        found = _match(request)
        if found is not None:
            fn, tail = found
            return await fn(request, tail)
    return await handler(request)


def setup(app: web.Application) -> None:
    """Serve rhizo's dialect in `app`: the middleware (innermost: after the error shape and the
    body limit apply) and the websocket's shutdown."""
    from hub.http.rhizo import websocket

    app.middlewares.append(rhizo_middleware)
    websocket.setup(app)


def _load_handlers() -> None:
    from hub.http.rhizo import keys, pins, resources  # noqa: F401  (importing them registers their routes)
