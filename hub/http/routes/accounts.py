"""Accounts people open themselves (`hub.storage.accounts`): invitations, password resets,
password changes and account requests.

- No enumeration: asking for a reset or an account answers 202 with the same body for any
  address, known or not; the work that differs (a code, an email in the outbox) is a few
  rows in the same transaction as the rate-limit count both do.
- Rate limits in the database (shared by every worker): ACCOUNT_EMAILS_PER_HOUR per typed
  address, ten times that per client address, for resets and requests alike.
- Public forms (reset, request, accepting an invitation) refuse other sites' origins, like
  /login; links are built from PUBLIC_URL only (never from the request's Host).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import Conflict, Forbidden, NotFound, Unprocessable
from hub.http import sessions, views
from hub.http.auth import Caller, caller_of, forget_access, optional_caller, require_user, same_origin
from hub.http.deps import in_hash_thread, in_session, run_in_session, store_of
from hub.http.params import SEGMENT, field, json_body, text_field
from hub.http.ratelimit import take
from hub.http.routes import API
from hub.http.routes.auth import behind_tls, client_address
from hub.http.typedefs import SETTINGS
from hub.settings import Settings
from hub.storage import accounts, users
from hub.storage.models import AccountRequest, Organization, Role, User
from hub.storage.users import MAX_EMAIL_LENGTH

routes = web.RouteTableDef()
HOUR = 3600.0
ACCEPTED = {"message": "if the address can be used, an email is on its way"}
_CODE = re.compile(accounts.CODE_PATTERN)


class EmailOff(Conflict):
    code = "email_off"


_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def _link_base(settings: Settings) -> str:
    """PUBLIC_URL; without it, the address the HTTP server binds (fine on one machine),
    never what a request says its Host is."""
    if not settings.SMTP_HOST:
        raise EmailOff("email is off: set SMTP_HOST (and SMTP_FROM) to send invitations and reset links")
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL.rstrip("/")
    host = "127.0.0.1" if settings.HTTP_HOST in _WILDCARD_HOSTS else settings.HTTP_HOST
    return f"http://{host}:{settings.HTTP_PORT}"


def _check_origin(request: web.Request) -> None:
    if not same_origin(request, request.app[SETTINGS]):
        raise Forbidden("request from another site refused: add its origin to ALLOWED_ORIGINS if it is yours")


def _limit(s: Session, settings: Settings, kind: str, email: str, address: str) -> None:
    per_hour = settings.ACCOUNT_EMAILS_PER_HOUR
    take(s, f"{kind}-address", address, per_hour * 10, HOUR, "requests from your address")
    take(s, f"{kind}-account", email.strip().lower()[:MAX_EMAIL_LENGTH], per_hour, HOUR,
         "requests for this address")


def _admin_org(s: Session, caller: Caller, name: str) -> Organization:
    org = users.get_organization(s, name)
    if not caller.is_admin and caller.subject.memberships.get(org.id) != Role.ADMIN.value:
        raise Forbidden(f"only an admin of {name} may invite people to it or see its invitations")
    return org


def _invitation(i: accounts.Invitation) -> dict[str, Any]:
    return {"id": i.id, "email": i.email, "organization": i.organization, "role": i.role,
            "expires_at": views.ts(i.expires_at), "created_at": views.ts(i.created_at),
            "existing_user": i.existing_user}


def _invite_email(s: Session, settings: Settings, org: Organization, email: str, role: str, code: str,
                  by: str) -> None:
    link = f"{_link_base(settings)}/#/accept/{code}"
    days = max(1, settings.INVITATION_TTL_SECONDS // 86400)
    what = "an admin of" if role == Role.ADMIN.value else "a member of"
    accounts.queue_email(s, email, f"You are invited to {org.full_name or org.name}", (
        f"{by} invites you to join {org.full_name or org.name} on the hub as {what} it.\n\n"
        f"Open this link to accept (it works once, for {days} day{'s' if days > 1 else ''}):\n{link}\n\n"
        "If you did not expect this, ignore this email.\n"))


def new_session(request: web.Request, u: User) -> tuple[str, Callable[[web.StreamResponse], None]]:
    """A fresh session for `u`, as /login opens one: (its CSRF token, what sets its cookies)."""
    secret = request.app[SETTINGS].SECRET_KEY
    cookie = sessions.issue(secret, u.id, u.password_hash)
    data = sessions.verify(secret, cookie)
    assert data is not None
    csrf = sessions.csrf_token(secret, data)
    secure = behind_tls(request)

    def apply(resp: web.StreamResponse) -> None:
        resp.set_cookie(sessions.SESSION_COOKIE, cookie, httponly=True, samesite="Lax", secure=secure,
                        max_age=sessions.SESSION_TTL, path="/")
        resp.set_cookie(sessions.CSRF_COOKIE, csrf, httponly=False, samesite="Lax", secure=secure,
                        max_age=sessions.SESSION_TTL, path="/")

    return csrf, apply


def _code(body: dict[str, Any]) -> str:
    return str(text_field(body, "code", max_length=100, required=True, pattern=_CODE))


# --- invitations -------------------------------------------------------------------

@routes.post(API + "/organizations/{name}/invitations")
async def create_invitation(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    name = request.match_info["name"]
    body = await json_body(request, "InvitationNew")
    email = text_field(body, "email", max_length=MAX_EMAIL_LENGTH, required=True)
    role = field(body, "role", str, default=Role.MEMBER.value)
    settings = request.app[SETTINGS]

    def work(s: Session) -> dict[str, Any]:
        org = _admin_org(s, caller, name)
        _link_base(settings)
        inv, code = accounts.invite(s, org, email, role, by_user_id=caller.user_id,
                                    ttl=settings.INVITATION_TTL_SECONDS)
        _invite_email(s, settings, org, inv.email, inv.role, code, caller.full_name or caller.email or "An admin")
        return _invitation(inv)

    out = await in_session(request, work)
    return web.json_response(out, status=201)


@routes.get(API + "/organizations/{name}/invitations")
async def list_invitations(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    name = request.match_info["name"]

    def work(s: Session) -> list[dict[str, Any]]:
        return [_invitation(i) for i in accounts.pending_invitations(s, _admin_org(s, caller, name))]

    return web.json_response({"invitations": await in_session(request, work)})


@routes.delete(API + "/organizations/{name}/invitations/{id}")
async def cancel_invitation(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    require_user(caller)
    name, raw = request.match_info["name"], request.match_info["id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise NotFound(f"no pending invitation {raw} in {name}")
    await in_session(request, lambda s: accounts.cancel_invitation(s, _admin_org(s, caller, name), int(raw)))
    return web.Response(status=204)


@routes.post(API + "/invitations/check")
async def check_invitation(request: web.Request) -> web.Response:
    """What a code invites to (the console shows it before a password is chosen)."""
    code = _code(await json_body(request, "CodeOnly"))
    return web.json_response(_invitation(await in_session(request, accounts.invitation, code)))


@routes.post(API + "/invitations/accept")
async def accept_invitation(request: web.Request) -> web.Response:
    _check_origin(request)
    caller = await optional_caller(request)
    body = await json_body(request, "InvitationAccept")
    code = _code(body)
    password = field(body, "password", str)
    full_name = text_field(body, "full_name", max_length=200, default="")
    settings = request.app[SETTINGS]

    def work(s: Session) -> tuple[User, Organization, bool]:
        return accounts.accept(s, code, password=password, signed_in_user_id=caller.user_id if caller else None,
                               rounds=settings.PASSWORD_HASH_ROUNDS, min_length=settings.MIN_PASSWORD_LENGTH,
                               full_name=full_name)

    u, org, created = await in_hash_thread(request, run_in_session, store_of(request), work)
    forget_access(request)
    out: dict[str, Any] = {"user": views.user(u), "organization": org.name, "created": created}
    if not created:
        return web.json_response(out)
    out["csrf_token"], set_cookies = new_session(request, u)
    resp = web.json_response(out)
    set_cookies(resp)
    return resp


# --- password resets and changes ---------------------------------------------------------

@routes.post(API + "/password-reset")
async def request_reset(request: web.Request) -> web.Response:
    _check_origin(request)
    body = await json_body(request, "ResetAsk")
    email = text_field(body, "email", max_length=MAX_EMAIL_LENGTH, required=True)
    users.normalize_email(email)  # 400 for what is no address, before anything is counted
    settings = request.app[SETTINGS]
    base = _link_base(settings)
    address = client_address(request)

    def work(s: Session) -> None:
        _limit(s, settings, "reset", email, address)
        found = accounts.request_reset(s, email, ttl=settings.PASSWORD_RESET_TTL_SECONDS)
        if found is not None:
            u, code = found
            minutes = max(1, settings.PASSWORD_RESET_TTL_SECONDS // 60)
            accounts.queue_email(s, u.email, "Reset your hub password", (
                "Someone (you, we hope) asked to reset the password of your hub account.\n\n"
                f"Open this link to choose a new one (it works once, for {minutes} minutes):\n"
                f"{base}/#/reset/{code}\n\n"
                "Setting a new password signs you out everywhere. If you did not ask, ignore this email: "
                "your password stays as it is.\n"))

    await in_session(request, work)
    return web.json_response(ACCEPTED, status=202)


@routes.post(API + "/password-reset/complete")
async def complete_reset(request: web.Request) -> web.Response:
    _check_origin(request)
    body = await json_body(request, "ResetComplete")
    code = _code(body)
    password = field(body, "password", str, required=True)
    settings = request.app[SETTINGS]

    def work(s: Session) -> None:
        accounts.complete_reset(s, code, password, rounds=settings.PASSWORD_HASH_ROUNDS,
                                       min_length=settings.MIN_PASSWORD_LENGTH)

    await in_hash_thread(request, run_in_session, store_of(request), work)
    forget_access(request)
    resp = web.Response(status=204)
    resp.del_cookie(sessions.SESSION_COOKIE, path="/")
    resp.del_cookie(sessions.CSRF_COOKIE, path="/")
    return resp


@routes.post(API + "/me/password")
async def change_password(request: web.Request) -> web.Response:
    """The current password is needed; every other session ends, this one gets a new cookie."""
    caller = await caller_of(request)
    me = require_user(caller)
    body = await json_body(request, "PasswordChange")
    current = field(body, "current_password", str, required=True)
    password = field(body, "password", str, required=True)
    settings = request.app[SETTINGS]

    def work(s: Session) -> User:
        u = users.get_user(s, me)
        accounts.change_password(s, u, current, password, rhizo_salt=settings.RHIZO_SALT,
                                 rounds=settings.PASSWORD_HASH_ROUNDS, min_length=settings.MIN_PASSWORD_LENGTH,
                                 keep_session=caller.session.nonce if caller.session else "")
        return u

    u = await in_hash_thread(request, run_in_session, store_of(request), work)
    forget_access(request)
    out: dict[str, Any] = {"user": views.user(u)}
    if caller.session is None:
        return web.json_response(out)
    out["csrf_token"], set_cookies = new_session(request, u)
    resp = web.json_response(out)
    set_cookies(resp)
    return resp


# --- account requests ------------------------------------------------------------------

def _requests_on(request: web.Request) -> Settings:
    settings = request.app[SETTINGS]
    if not settings.ACCOUNT_REQUESTS:
        raise NotFound("account requests are off on this hub: ask an admin for an invitation", code="requests_off")
    return settings


def _request(r: AccountRequest) -> dict[str, Any]:
    return {"id": r.id, "email": r.email, "full_name": r.full_name, "organization": r.organization or None,
            "message": r.message, "created_at": views.ts(r.created_at), "status": r.status}


@routes.post(API + "/account-requests")
async def ask_for_account(request: web.Request) -> web.Response:
    settings = _requests_on(request)
    _check_origin(request)
    body = await json_body(request, "AccountRequestNew")
    email = text_field(body, "email", max_length=MAX_EMAIL_LENGTH, required=True)
    full_name = text_field(body, "full_name", max_length=200, default="")
    organization = text_field(body, "organization", max_length=100, pattern=SEGMENT, default="")
    message = text_field(body, "message", max_length=1000, default="")
    address = client_address(request)
    users.normalize_email(email)  # 400 for what is no address, before anything is counted

    def work(s: Session) -> None:
        _limit(s, settings, "request", email, address)
        accounts.ask(s, email, full_name=full_name, organization=organization, message=message)

    await in_session(request, work)
    return web.json_response(ACCEPTED, status=202)


def _decidable(s: Session, caller: Caller, request_id: int) -> AccountRequest:
    row = accounts.get_request(s, request_id)
    if caller.is_admin:
        return row
    org = users.get_organization(s, row.organization) if row.organization else None
    if org is None or caller.subject.memberships.get(org.id) != Role.ADMIN.value:
        raise NotFound(f"no account request {request_id}")
    return row


@routes.get(API + "/account-requests")
async def list_requests(request: web.Request) -> web.Response:
    _requests_on(request)
    caller = await caller_of(request)
    require_user(caller)

    def work(s: Session) -> list[dict[str, Any]]:
        if caller.is_admin:
            return [_request(r) for r in accounts.pending_requests(s)]
        admin_of = [o.name for o in users.list_organizations(s)
                    if caller.subject.memberships.get(o.id) == Role.ADMIN.value]
        if not admin_of:
            raise Forbidden("only system admins and organization admins see account requests")
        return [_request(r) for r in accounts.pending_requests(s, admin_of)]

    return web.json_response({"requests": await in_session(request, work)})


def _request_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise NotFound(f"no account request {raw}")
    return int(raw)


@routes.post(API + "/account-requests/{id}/approve")
async def approve_request(request: web.Request) -> web.Response:
    """Sends the person an invitation to the organization (the one they named, or
    `organization`) with `role`."""
    settings = _requests_on(request)
    caller = await caller_of(request)
    require_user(caller)
    request_id = _request_id(request)
    body = await json_body(request, "AccountRequestApprove", required=False)
    org_name = text_field(body, "organization", max_length=100, pattern=SEGMENT)
    role = field(body, "role", str, default=Role.MEMBER.value)

    def work(s: Session) -> dict[str, Any]:
        row = _decidable(s, caller, request_id)
        name = org_name or row.organization
        if not name:
            raise Unprocessable("the request names no organization: send `organization`", code="no_organization")
        org = _admin_org(s, caller, name)
        _link_base(settings)
        inv, code = accounts.invite(s, org, row.email, role, by_user_id=caller.user_id,
                                    ttl=settings.INVITATION_TTL_SECONDS)
        _invite_email(s, settings, org, inv.email, inv.role, code, caller.full_name or caller.email or "An admin")
        accounts.decide(s, row, accounts.APPROVED, caller.user_id)
        return {**_request(row), "invitation": _invitation(inv)}

    return web.json_response(await in_session(request, work))


@routes.post(API + "/account-requests/{id}/refuse")
async def refuse_request(request: web.Request) -> web.Response:
    _requests_on(request)
    caller = await caller_of(request)
    require_user(caller)
    request_id = _request_id(request)

    def work(s: Session) -> dict[str, Any]:
        row = _decidable(s, caller, request_id)
        accounts.decide(s, row, accounts.REFUSED, caller.user_id)
        return _request(row)

    return web.json_response(await in_session(request, work))
