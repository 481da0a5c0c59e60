"""What an extension's HTTP handler uses: the hub's caller and access rule, as the hub's
own routes use them (hub/http/auth.py), and its storage in a worker thread.

    caller = await caller_of(request)                 # 401 without a credential
    await require_level(request, caller, path, Level.READ)   # 404 / 403 as the hub answers
    rows = await in_session(request, fn, *args)       # fn(session, *args), off the event loop

Errors raised as `hub.errors.HubError` (BadRequest, NotFound, ...) become the hub's JSON
error shape with their status.
"""

from __future__ import annotations

from aiohttp import web

from hub.extensions.api import Extension
from hub.http.auth import Caller, caller_of, level_of, optional_caller, require_admin, require_level, require_user
from hub.http.deps import in_session, in_thread
from hub.storage.models import Level

EXTENSION: web.AppKey[dict[str, Extension]] = web.AppKey("extensions")

__all__ = ["Caller", "Level", "caller_of", "extension_of", "in_session", "in_thread", "level_of",
           "optional_caller", "require_admin", "require_level", "require_user"]


def extension_of(request: web.Request, name: str) -> Extension:
    """The loaded extension `name` (its settings), from a handler."""
    return request.app[EXTENSION][name]
