"""/api/v1/keys: API keys for users and controllers.

- anyone (a user) creates, lists and revokes their own keys;
- a controller folder's keys need ADMIN on that folder;
- a system admin may do all of it for anyone.
The secret is in the create response only. Revoking records the change
through the storage layer, so the broker plugin closes the key's live MQTT
connections within seconds, and this server stops accepting it at once.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import Conflict, Forbidden, NotFound
from hub.http import views
from hub.http.auth import Caller, caller_of, forget_access, require_user
from hub.http.deps import in_session
from hub.http.params import INT32, bool_param, int_field, int_param, json_body, path_field, text_field
from hub.http.routes import API
from hub.storage import keys, permissions, resources, users
from hub.storage.models import ApiKey, Level, ResourceType

routes = web.RouteTableDef()
CONTROLLER = ResourceType.CONTROLLER.value


def _view(s: Session, k: ApiKey) -> dict[str, Any]:
    if k.controller_id is not None:
        r = resources.by_id(s, k.controller_id)
        path = r.path if r is not None else None
        return views.api_key(k, owner=f"controller {path}", controller=path)
    u = s.get(users.User, k.user_id) if k.user_id is not None else None
    return views.api_key(k, owner=u.email if u is not None else f"user {k.user_id}")


def _need_controller_admin(s: Session, caller: Caller, path: str) -> int:
    if permissions.level(s, caller.subject, path) < Level.ADMIN:
        permissions.require(s, caller.subject, path, Level.ADMIN)  # 404 or 403 as appropriate
    return resources.get(s, path, type=CONTROLLER).id


@routes.get(API + "/keys")
async def list_keys(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    me = require_user(caller)
    controller = request.query.get("controller")
    if controller is not None:
        controller = paths.normalize(controller)
    user_id = int_param(request, "user_id", None, 1, INT32)
    include_revoked = bool_param(request, "include_revoked", True)
    if user_id is not None and user_id != me and not caller.is_admin:
        raise Forbidden("only a system admin may list another user's keys")

    def work(s: Session) -> list[dict[str, Any]]:
        if controller is not None:
            rows = keys.list_keys(s, controller_ids=[_need_controller_admin(s, caller, controller)],
                                  include_revoked=include_revoked)
        else:
            rows = keys.list_keys(s, user_id=user_id or me, include_revoked=include_revoked)
        return [_view(s, k) for k in rows]

    return web.json_response({"keys": await in_session(request, work)})


@routes.post(API + "/keys")
async def create_key(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    me = require_user(caller)
    body = await json_body(request, "NewApiKey", required=False)
    name = text_field(body, "name", max_length=100, default="")
    controller = path_field(body, "controller")
    user_id = int_field(body, "user_id", 1, INT32)
    if user_id is not None and user_id != me and not caller.is_admin:
        raise Forbidden("only a system admin may create keys for another user")

    def work(s: Session) -> dict[str, Any]:
        if controller is not None:
            _need_controller_admin(s, caller, controller)
            row, secret = keys.create(s, controller_path=controller, created_by=me, name=name)
        else:
            row, secret = keys.create(s, user_id=user_id or me, created_by=me, name=name)
        return {**_view(s, row), "key": secret}

    out = await in_session(request, work)
    return web.json_response(out, status=201)


@routes.delete(API + "/keys/{prefix}")
async def revoke_key(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    me = require_user(caller)
    prefix = request.match_info["prefix"]
    if caller.subject.key_prefix == prefix:
        raise Conflict("this request is authenticated with that key: revoke it with another key or "
                       "from the console")

    def work(s: Session) -> dict[str, Any]:
        row = keys.get(s, prefix)
        if not caller.is_admin and row.user_id != me:
            if row.controller_id is None:
                raise NotFound(f"no key with prefix {prefix}")
            r = resources.by_id(s, row.controller_id)
            if r is None or r.deleted:
                raise NotFound(f"no key with prefix {prefix}")
            _need_controller_admin(s, caller, r.path)
        return _view(s, keys.revoke(s, prefix, by_user_id=me))

    out = await in_session(request, work)
    forget_access(request)
    return web.json_response(out)
