"""/api/v1/permissions/{path}: who may read, write or administer a folder.

Listing, granting and revoking need ADMIN on the folder. A grant names
exactly one subject: `user_id`, `organization` (all its members) or
`controller` (a controller folder's path).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest
from hub.http import views
from hub.http.auth import caller_of, forget_access, require_level
from hub.http.deps import in_session
from hub.http.params import INT32, SEGMENT, field, int_field, int_param, json_body, path_field, text_field
from hub.http.routes import API
from hub.storage import permissions, resources, users
from hub.storage.models import Level, Permission

routes = web.RouteTableDef()
PATH = API + "/permissions/{path:.+}"
LEVELS = {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}


def _view(s: Session, p: Permission, path: str) -> dict[str, Any]:
    org = users.get_organization_by_id(s, p.organization_id) if p.organization_id is not None else None
    ctl = resources.by_id(s, p.controller_id) if p.controller_id is not None else None
    return views.permission(p, path=path, organization=org.name if org else None,
                            controller=ctl.path if ctl else None)


async def _admin_path(request: web.Request) -> str:
    caller = await caller_of(request)
    path = paths.normalize(request.match_info["path"])
    await require_level(request, caller, path, Level.ADMIN)
    return path


@routes.get(PATH)
async def list_permissions(request: web.Request) -> web.Response:
    path = await _admin_path(request)
    out = await in_session(request, lambda s: [_view(s, p, path) for p in permissions.on(s, path)])
    return web.json_response({"permissions": out})


@routes.post(PATH)
async def grant(request: web.Request) -> web.Response:
    path = await _admin_path(request)
    body = await json_body(request, "NewPermission")
    level = LEVELS.get(field(body, "level", str, required=True))
    if level is None:
        raise BadRequest("level must be read, write or admin")
    user_id = int_field(body, "user_id", 1, INT32)
    org_name = text_field(body, "organization", max_length=100, pattern=SEGMENT)
    controller = path_field(body, "controller")

    def work(s: Session) -> dict[str, Any]:
        org_id = users.get_organization(s, org_name).id if org_name is not None else None
        p = permissions.grant(s, path, level, user_id=user_id, organization_id=org_id,
                              controller_path=controller)
        return _view(s, p, path)

    out = await in_session(request, work)
    forget_access(request)
    return web.json_response(out, status=201)


@routes.delete(PATH)
async def revoke(request: web.Request) -> web.Response:
    path = await _admin_path(request)
    permission_id = int_param(request, "id", None, 1, INT32)
    if permission_id is None:
        raise BadRequest("send ?id=<permission id> (from GET on this path)")
    await in_session(request, permissions.revoke, permission_id, path=path)
    forget_access(request)
    return web.Response(status=204)
