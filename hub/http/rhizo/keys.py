"""rhizo's key routes, `/api/v1/keys[/<id>]` with form values, on the hub's keys and rule.

rhizo-server's shapes, the hub's rule on who may (the hub's own `/api/v1/keys`):

- `POST /keys` `access_as_controller_id=<resource id>`: a new key for that controller,
  for a user (session or user key, never a controller key) with ADMIN on the controller
  folder (rhizo-server asked for write access; the hub asks what its own route asks).
  `{"status": "ok", "id": N, "secret_key": "hk_..."}`: the secret is shown this once and
  stored hashed, as every hub key. `access_as_user_id=<user id>` (rhizo's
  `organization_id` is accepted and ignored: hub user keys belong to no organization): a
  key for yourself, or for anyone as a system admin. A `key` (a key text chosen by the
  caller, which later rhizo-server took) is refused: the hub makes its keys; an existing
  key comes over with `run.py --import-key`.
- `GET /keys` `access_as_controller_id=...`: that controller's keys (ADMIN on it);
  without it a system admin's list of every key, anyone else 403. Answered as rhizo
  did, `{"<id>": {"id", "organization_id", "access_as_user_id", "access_as_controller_id",
  "creation_timestamp", "revocation_timestamp", "key_part"}}` (`key_part`: the hub's key
  prefix, as `DELETE /api/v1/keys/{prefix}` takes it), never a secret.
- `DELETE /keys/<id>`: revokes it (the owner of a user key, ADMIN on a key's controller,
  or a system admin); rhizo's `delete=1` revokes too: the hub keeps revoked keys. The
  change log tells the broker and every HTTP worker, so the key's MQTT connections and
  websockets close within seconds.

A key or controller the caller may not see is 404, as elsewhere in the dialect.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.http.auth import Caller, forget_access
from hub.http.deps import in_session
from hub.http.rhizo import form, shapes
from hub.http.rhizo.access import caller
from hub.http.rhizo.dialect import route
from hub.storage import keys, permissions, resources, users
from hub.storage.models import ApiKey, Level, Resource, ResourceType

CONTROLLER = ResourceType.CONTROLLER.value


async def _person(request: web.Request) -> Caller:
    """The calling user (rhizo-server: a signed-in user or a user key; a controller key may not)."""
    who = await caller(request)
    if who is None:
        raise Forbidden("sign in, or send a user's key (Basic auth, the key as the password)")
    if who.user_id is None:
        raise Forbidden("a controller key may not manage keys: use a user's key")
    return who


def _controller(s: Session, who: Caller, resource_id: int) -> Resource:
    """The live controller folder `resource_id`, for a caller with ADMIN on it."""
    r = resources.by_id(s, resource_id)
    if r is None or r.deleted or permissions.level(s, who.subject, r.path) < Level.READ:
        raise NotFound(f"no controller with id {resource_id}")
    if r.type != CONTROLLER:
        raise BadRequest(f"resource {resource_id} (/{r.path}) is a {r.type}, not a controller folder")
    if permissions.level(s, who.subject, r.path) < Level.ADMIN:
        raise Forbidden(f"admin access to /{r.path} is needed to manage its keys")
    return r


def _as_dict(s: Session, k: ApiKey) -> dict[str, Any]:
    organization_id = None
    if k.controller_id is not None:
        r = resources.by_id(s, k.controller_id)
        root = resources.find(s, r.path.split("/", 1)[0]) if r is not None else None
        organization_id = root.id if root is not None else None
    return {"id": k.id, "organization_id": organization_id, "access_as_user_id": k.user_id,
            "access_as_controller_id": k.controller_id, "creation_timestamp": shapes.stamp(k.created_at) or "",
            "revocation_timestamp": shapes.stamp(k.revoked_at) or "", "key_part": k.prefix}


@route(r"/keys", "POST")
async def create_key(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    who = await _person(request)
    if v.get("key"):
        raise BadRequest("the hub makes its keys itself: leave out 'key' (an existing rhizo key comes over "
                         "with run.py --import-key)")
    controller_id = form.integer(v, "access_as_controller_id", lo=1)
    user_id = form.integer(v, "access_as_user_id", lo=1)
    if (controller_id is None) == (user_id is None):
        raise BadRequest("send access_as_controller_id (a controller folder's id) or access_as_user_id")
    if user_id is not None and user_id != who.user_id and not who.is_admin:
        raise Forbidden("only a system admin may create keys for another user")

    def work(s: Session) -> dict[str, Any]:
        if controller_id is not None:
            r = _controller(s, who, controller_id)
            row, secret = keys.create(s, controller_path=r.path, created_by=who.user_id, name="rhizo")
        else:
            users.get_user(s, user_id)  # type: ignore[arg-type]
            row, secret = keys.create(s, user_id=user_id, created_by=who.user_id, name="rhizo")
        return {"status": "ok", "id": row.id, "secret_key": secret}

    return web.json_response(await in_session(request, work))


@route(r"/keys", "GET")
async def list_keys(request: web.Request, tail: str) -> web.StreamResponse:
    v = await form.values(request)
    who = await _person(request)
    controller_id = form.integer(v, "access_as_controller_id", lo=1)
    if controller_id is None and not who.is_admin:
        raise Forbidden("only a system admin may list every key: send access_as_controller_id")

    def work(s: Session) -> dict[str, Any]:
        if controller_id is not None:
            rows = keys.list_keys(s, controller_ids=[_controller(s, who, controller_id).id])
        else:
            rows = list(s.scalars(select(ApiKey).order_by(ApiKey.id)))
        return {str(k.id): _as_dict(s, k) for k in sorted(rows, key=lambda k: k.id)}

    return web.json_response(await in_session(request, work))


@route(r"/keys/(\d{1,10})", "DELETE")
async def revoke_key(request: web.Request, tail: str) -> web.StreamResponse:
    who = await _person(request)
    key_id = int(tail)

    def work(s: Session) -> None:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no key with id {key_id}")
        if not who.is_admin and row.user_id != who.user_id:
            if row.controller_id is None:
                raise NotFound(f"no key with id {key_id}")
            _controller(s, who, row.controller_id)
        if who.subject.key_prefix == row.prefix:
            raise Conflict("this request is authenticated with that key: revoke it with another one")
        if row.revoked_at is None:
            keys.revoke(s, row.prefix, by_user_id=who.user_id)

    await in_session(request, work)
    forget_access(request)
    return web.json_response(None)
