"""/api/v1/organizations and their memberships.

A system admin creates organizations and manages every membership; an
organization admin manages the memberships of their organization; members
may read their organization and its member list.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import NotFound
from hub.http import views
from hub.http.auth import Caller, caller_of, forget_access, require_admin
from hub.http.deps import in_session
from hub.http.params import SEGMENT, field, json_body, text_field, user_id_param
from hub.http.routes import API
from hub.storage import users
from hub.storage.models import Organization, Role

routes = web.RouteTableDef()
ORG = API + "/organizations/{name}"


def _visible(s: Session, caller: Caller) -> list[dict[str, Any]]:
    if caller.user_id is None:
        return []
    u = users.get_user(s, caller.user_id)
    out = []
    for o in users.list_organizations(s, u):
        d = views.organization(o)
        d["role"] = caller.subject.memberships.get(o.id)
        out.append(d)
    return out


async def visible_organizations(request: web.Request, caller: Caller) -> list[dict[str, Any]]:
    return await in_session(request, _visible, caller)


def org_for(s: Session, caller: Caller, name: str, *, manage: bool) -> Organization:
    """The organization if the caller may see it (member) or manage it (its
    admin); an outsider gets 404 either way."""
    org = users.get_organization(s, name)
    role = caller.subject.memberships.get(org.id)
    if caller.is_admin or role == Role.ADMIN.value or (role is not None and not manage):
        return org
    if role is not None:
        from hub.errors import Forbidden

        raise Forbidden(f"only an admin of {name} may change its members")
    raise NotFound(f"no organization {name}")


@routes.get(API + "/organizations")
async def list_organizations(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    return web.json_response({"organizations": await visible_organizations(request, caller)})


@routes.post(API + "/organizations")
async def create_organization(request: web.Request) -> web.Response:
    """System admins only; also creates the top-level folder of the same name."""
    caller = await caller_of(request)
    require_admin(caller)
    body = await json_body(request, "NewOrganization")
    name = text_field(body, "name", max_length=100, required=True, pattern=SEGMENT)
    full_name = text_field(body, "full_name", max_length=200, default="")
    org = await in_session(request, lambda s: views.organization(users.create_organization(s, name, full_name)))
    forget_access(request)
    return web.json_response(org, status=201, headers={"Location": f"{API}/organizations/{name}"})


@routes.get(ORG)
async def get_organization(request: web.Request) -> web.Response:
    caller = await caller_of(request)

    def work(s: Session) -> dict[str, Any]:
        org = org_for(s, caller, request.match_info["name"], manage=False)
        d = views.organization(org)
        d["role"] = caller.subject.memberships.get(org.id)
        return d

    return web.json_response(await in_session(request, work))


@routes.get(ORG + "/members")
async def list_members(request: web.Request) -> web.Response:
    caller = await caller_of(request)

    def work(s: Session) -> list[dict[str, Any]]:
        org = org_for(s, caller, request.match_info["name"], manage=False)
        return [{"user": views.user(u), "role": role} for u, role in users.members(s, org)]

    return web.json_response({"members": await in_session(request, work)})


@routes.put(ORG + "/members/{user_id}")
async def set_member(request: web.Request) -> web.Response:
    """Add a user to the organization or change their role: `{role: member|admin}`."""
    caller = await caller_of(request)
    body = await json_body(request, "MembershipRole", required=False)
    role = field(body, "role", str, default=Role.MEMBER.value)
    user_id = user_id_param(request)

    def work(s: Session) -> dict[str, Any]:
        org = org_for(s, caller, request.match_info["name"], manage=True)
        m = users.set_membership(s, org, users.get_user(s, user_id), role)
        return {"organization": org.name, "user_id": user_id, "role": m.role}

    out = await in_session(request, work)
    forget_access(request)
    return web.json_response(out)


@routes.delete(ORG + "/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    user_id = user_id_param(request)

    def work(s: Session) -> None:
        org = org_for(s, caller, request.match_info["name"], manage=True)
        users.remove_membership(s, org, users.get_user(s, user_id))

    await in_session(request, work)
    forget_access(request)
    return web.Response(status=204)
