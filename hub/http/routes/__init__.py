"""Route tables, one module per concern; `app.init_app` adds them all.

Every route lives under `/api/v1` (except `/metrics`) and is described in
`hub/http/openapi.py`; a test keeps the two equal.
"""

from __future__ import annotations

from aiohttp import web

API = "/api/v1"


def all_routes() -> list[web.RouteTableDef]:
    from hub.http.routes import (
        accounts,
        auth,
        contacts,
        controllers,
        docs,
        health,
        history,
        keys,
        messages,
        organizations,
        permissions,
        pins,
        resources,
        rhizo,
        tokens,
        users,
    )

    return [m.routes for m in (auth, docs, health, history, keys, messages, organizations, permissions,
                               tokens, users, pins, controllers, contacts, rhizo, resources, accounts)]
