"""/api/v1/users.

- a system admin sees, creates, changes and deletes any user;
- an organization admin sees the members of their organizations and may
  create a user straight into one of them (`organization` in the body);
- everyone sees and changes themselves (name; password with the current one).
Controller keys cannot use these routes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import Conflict, Forbidden, NotFound, Unauthenticated
from hub.http import views
from hub.http.auth import Caller, caller_of, forget_access, require_user
from hub.http.deps import in_hash_thread, in_session, run_in_session, store_of
from hub.http.params import SEGMENT, field, json_body, text_field, user_id_param
from hub.http.routes import API
from hub.http.typedefs import SETTINGS
from hub.storage import changes, users
from hub.storage.models import Role, User

routes = web.RouteTableDef()
USER = API + "/users/{user_id}"


def _admin_of(caller: Caller) -> list[int]:
    return [org for org, role in caller.subject.memberships.items() if role == Role.ADMIN.value]


def _visible_user(s: Session, caller: Caller, user_id: int) -> User:
    """The user if the caller may see them, else 404."""
    u = users.get_user(s, user_id)
    if caller.is_admin or u.id == caller.user_id:
        return u
    admin_of = _admin_of(caller)
    if admin_of and any(m.id == u.id for m in users.list_users(s, organization_ids=admin_of)):
        return u
    raise NotFound(f"no user {user_id}")


@routes.get(API + "/users")
async def list_users(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    me = require_user(caller)
    email = request.query.get("email")
    if email is not None:
        email = users.normalize_email(email)  # 400 unless an address

    def work(s: Session) -> list[dict[str, Any]]:
        if email is not None and (caller.is_admin or _admin_of(caller)):
            # one exact address, so an organization admin can add someone who already has
            # an account elsewhere on the hub (no listing: they must know the address)
            u = users.find_user_by_email(s, email)
            return [views.user(u)] if u is not None and not u.deleted else []
        if caller.is_admin:
            found = users.list_users(s)
        else:
            found = users.list_users(s, organization_ids=_admin_of(caller)) if _admin_of(caller) else []
            if all(u.id != me for u in found):
                found.append(users.get_user(s, me))
        return [views.user(u) for u in found]

    return web.json_response({"users": await in_session(request, work)})


@routes.post(API + "/users")
async def create_user(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    body = await json_body(request, "NewUser")
    email = field(body, "email", str, required=True)
    password = field(body, "password", str, required=True)
    full_name = text_field(body, "full_name", max_length=200, default="")
    user_name = field(body, "user_name", str)
    is_admin = field(body, "is_admin", bool, default=False)
    org_name = text_field(body, "organization", max_length=100, pattern=SEGMENT)
    role = field(body, "role", str, default=Role.MEMBER.value)
    if not caller.is_admin and (org_name is None or is_admin):
        raise Forbidden("only a system admin may create users outside an organization or make admins; "
                        "an organization admin sends `organization`")
    settings = request.app[SETTINGS]

    def work(s: Session) -> dict[str, Any]:
        org = users.get_organization(s, org_name) if org_name is not None else None
        if org is not None and not caller.is_admin and caller.subject.memberships.get(org.id) != Role.ADMIN.value:
            raise Forbidden(f"only an admin of {org_name} may add users to it")
        u = users.create_user(s, email, password, rounds=settings.PASSWORD_HASH_ROUNDS,
                              min_length=settings.MIN_PASSWORD_LENGTH, is_admin=is_admin, full_name=full_name,
                              user_name=user_name)
        if org is not None:
            users.set_membership(s, org, u, role)
        return views.user(u)

    out = await in_hash_thread(request, run_in_session, store_of(request), work)
    forget_access(request)
    return web.json_response(out, status=201, headers={"Location": f"{API}/users/{out['id']}"})


@routes.get(USER)
async def get_user(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    user_id = user_id_param(request)
    return web.json_response(await in_session(request, lambda s: views.user(_visible_user(s, caller, user_id))))


@routes.patch(USER)
async def patch_user(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    me = require_user(caller)
    user_id = user_id_param(request)
    body = await json_body(request, "UserPatch")
    full_name = text_field(body, "full_name", max_length=200)
    new_name = "user_name" in body
    user_name = field(body, "user_name", str) if new_name and body["user_name"] is not None else None
    password = field(body, "password", str)
    current = field(body, "current_password", str)
    is_admin = field(body, "is_admin", bool)
    settings = request.app[SETTINGS]

    def work(s: Session) -> dict[str, Any]:
        u = _visible_user(s, caller, user_id)
        if not caller.is_admin and u.id != me:
            raise Forbidden("you may change only yourself")
        if is_admin is not None and is_admin != u.is_admin:
            if not caller.is_admin:
                raise Forbidden("only a system admin may grant or remove system admin")
            if u.id == me:
                raise Conflict("you cannot remove your own system admin: ask another system admin")
            u.is_admin = is_admin
            changes.record(s, "user", str(u.id))
        if full_name is not None:
            u.full_name = full_name
        if new_name:
            users.set_user_name(s, u, user_name)  # null: none
        if password is not None:
            if u.id == me and not caller.is_admin and not (
                    current and users.password_ok(u.password_hash, current, rhizo_salt=settings.RHIZO_SALT)):
                raise Unauthenticated("send your current_password to change your password")
            users.set_password(s, u, password, rounds=settings.PASSWORD_HASH_ROUNDS,
                               min_length=settings.MIN_PASSWORD_LENGTH)
            changes.record(s, "user", str(u.id))
        return views.user(u)

    out = await in_hash_thread(request, run_in_session, store_of(request), work)
    forget_access(request)
    return web.json_response(out)


@routes.delete(USER)
async def delete_user(request: web.Request) -> web.Response:
    """System admins only; revokes the user's keys (their MQTT connections close)."""
    caller = await caller_of(request)
    user_id = user_id_param(request)
    if not caller.is_admin:
        raise Forbidden("only a system admin may delete users")
    if user_id == caller.user_id:
        raise Conflict("you cannot delete yourself: ask another system admin")
    await in_session(request, users.delete_user, user_id, by_user_id=caller.user_id)
    forget_access(request)
    return web.Response(status=204)
