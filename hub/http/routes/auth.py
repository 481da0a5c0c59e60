"""/api/v1/login, /logout, /me: browser sessions.

Login takes `email`: the user's email or user name (as rhizo-server's sign-in did),
checks the password with bcrypt off the event loop, is rate-limited per
account and per address (429 + Retry-After), and sets two cookies:
`hub_session` (HttpOnly, SameSite=Lax, Secure behind TLS) and `hub_csrf`
(readable by the page; send it back as `X-CSRF-Token` on writes).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub.errors import Forbidden, Unauthenticated
from hub.http import sessions, views
from hub.http.auth import Caller, caller_of, forget_access, same_origin
from hub.http.deps import in_hash_thread, in_session, run_in_session, store_of
from hub.http.params import field, json_body
from hub.http.routes import API
from hub.http.typedefs import LOGIN_LIMITER, SETTINGS
from hub.storage import resources, users
from hub.storage import sessions as ended_sessions
from hub.storage.models import User

routes = web.RouteTableDef()


def behind_tls(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def client_address(request: web.BaseRequest) -> str:
    """The peer; behind a local reverse proxy, the address it forwarded."""
    remote = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and remote in ("127.0.0.1", "::1"):
        return forwarded.split(",")[-1].strip() or remote
    return remote


@routes.post(API + "/login")
async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not same_origin(request, settings):
        raise Forbidden("login from another site refused: add its origin to ALLOWED_ORIGINS if it is yours")
    body = await json_body(request, "Login")
    email = field(body, "email", str, required=True)
    password = field(body, "password", str, required=True)
    account, address = email.strip().lower()[:254], client_address(request)
    limiter = request.app[LOGIN_LIMITER]
    await in_session(request, limiter.check, account, address)
    store = store_of(request)

    def authenticate(s: Session) -> User:
        u = users.authenticate(s, email, password, rhizo_salt=settings.RHIZO_SALT,
                               rounds=settings.PASSWORD_HASH_ROUNDS)
        limiter.success(s, account)  # in the same transaction
        return u

    try:
        u: User = await in_hash_thread(request, run_in_session, store, authenticate)
    except Unauthenticated:
        await in_session(request, limiter.failure, account, address)
        raise
    secret = settings.SECRET_KEY
    cookie = sessions.issue(secret, u.id, u.password_hash)
    data = sessions.verify(secret, cookie)
    assert data is not None
    csrf = sessions.csrf_token(secret, data)
    resp = web.json_response({"user": views.user(u), "csrf_token": csrf})
    secure = behind_tls(request)
    resp.set_cookie(sessions.SESSION_COOKIE, cookie, httponly=True, samesite="Lax", secure=secure,
                    max_age=sessions.SESSION_TTL, path="/")
    resp.set_cookie(sessions.CSRF_COOKIE, csrf, httponly=False, samesite="Lax", secure=secure,
                    max_age=sessions.SESSION_TTL, path="/")
    return resp


@routes.post(API + "/logout")
async def logout(request: web.Request) -> web.Response:
    """Ends the session on the server (a copy of the cookie stops working in every
    worker within a second) and clears the cookies; works without a valid session."""
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    data = sessions.verify(request.app[SETTINGS].SECRET_KEY, cookie) if cookie else None
    if data is not None and data.nonce:
        await in_session(request, ended_sessions.end, data.nonce, data.user_id, data.expires)
        forget_access(request)
    resp = web.Response(status=204)
    resp.del_cookie(sessions.SESSION_COOKIE, path="/")
    resp.del_cookie(sessions.CSRF_COOKIE, path="/")
    return resp


def _me(s: Session, caller: Caller) -> dict[str, Any]:
    subject = caller.subject
    out: dict[str, Any] = {"via": caller.via, "user": None, "controller": None, "memberships": []}
    if subject.user_id is not None:
        u = users.get_user(s, subject.user_id)
        out["user"] = views.user(u)
        out["memberships"] = [{"organization": o.name, "role": subject.memberships.get(o.id, "member")}
                              for o in users.list_organizations(s, u)
                              if o.id in subject.memberships]
    else:
        r = resources.find(s, subject.controller_path or "")
        out["controller"] = r.path if r else subject.controller_path
    return out


@routes.get(API + "/me")
async def me(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    out = await in_session(request, _me, caller)
    if caller.session is not None:
        out["csrf_token"] = sessions.csrf_token(request.app[SETTINGS].SECRET_KEY, caller.session)
    return web.json_response(out)
