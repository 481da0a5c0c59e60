"""Who is calling, and may they do this.

A request is authenticated by `Authorization: Bearer <API key>` (scripts,
controllers; `Basic` with the key as the password works too, for rhizo
controllers) or by the session cookie (browsers). Cookie-authenticated writes
must also pass the CSRF check (`sessions.py`) and, when the browser sends an
Origin, come from this site or one of ALLOWED_ORIGINS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.access import Subject
from hub.errors import Forbidden, NotFound, Unauthenticated
from hub.http import sessions
from hub.http.deps import in_session
from hub.http.typedefs import AUTH_CACHE, SETTINGS
from hub.settings import Settings
from hub.storage import keys, permissions, users
from hub.storage import sessions as ended_sessions
from hub.storage.models import Level, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    subject: Subject
    via: str  # "session" or "key"
    email: str | None = None
    full_name: str = ""
    session: sessions.SessionData | None = None

    @property
    def who(self) -> str:
        """A cache key for the subject (its level depends on nothing else)."""
        if self.subject.controller_id is not None:
            return f"c:{self.subject.controller_id}"
        return f"u:{self.subject.user_id}"

    @property
    def user_id(self) -> int | None:
        return self.subject.user_id

    @property
    def is_admin(self) -> bool:
        return self.subject.is_admin


_CALLER: web.RequestKey[Caller | None] = web.RequestKey("caller")


def _user_caller(s: Session, u: User, via: str, key_prefix: str | None = None,
                 session: sessions.SessionData | None = None) -> Caller:
    return Caller(users.subject_for_user(s, u, key_prefix=key_prefix), via, u.email, u.full_name, session)


def _by_key(s: Session, key: str, rhizo_salt: str = "", address: str | None = None) -> Caller:
    # a worker thread: a rhizo bcrypt check may run here
    row = keys.verify(s, key, rhizo_salt=rhizo_salt, address=address)
    subject = keys.subject_for_key(s, row)
    if subject.user_id is not None:
        u = users.get_user(s, subject.user_id)
        return Caller(subject, "key", u.email, u.full_name)
    return Caller(subject, "key")


def _by_session(s: Session, settings: Settings, data: sessions.SessionData) -> Caller:
    u = s.get(User, data.user_id)
    if u is None or u.deleted or \
            sessions.password_fingerprint(settings.SECRET_KEY, u.password_hash) != data.fingerprint:
        raise Unauthenticated("your session has ended: log in again")
    if data.nonce and ended_sessions.ended(s, data.nonce):
        raise Unauthenticated("you logged out of this session: log in again")
    return _user_caller(s, u, "session", session=data)


def _bearer(request: web.Request) -> str | None:
    """The API key of `Authorization: Bearer <key>`, or of `Basic` with the key as the
    password (rhizo controllers; the user name is ignored)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        _, sep, key = decoded.partition(":")
        if not sep or not key:
            raise Unauthenticated("Authorization: Basic needs base64 of 'user:<API key>' (the key as the password)")
        return key
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("Authorization must be 'Bearer <API key>' (or Basic with the key as the password)")
    return value.strip()


async def optional_caller(request: web.Request) -> Caller | None:
    """The authenticated caller, None when the request carries no credential;
    a bad credential raises Unauthenticated."""
    if _CALLER in request:
        return request[_CALLER]
    settings = request.app[SETTINGS]
    cache = request.app[AUTH_CACHE]
    caller: Caller | None = None
    key = _bearer(request)
    if key is not None:
        token_key = "k:" + hashlib.sha256(key.encode()).hexdigest()
        caller = cache.get_caller(token_key)
        if caller is None:
            from hub.http.routes.auth import client_address

            caller = await in_session(request, _by_key, key, settings.RHIZO_SALT, client_address(request))
            cache.put_caller(token_key, caller)
    else:
        cookie = request.cookies.get(sessions.SESSION_COOKIE)
        if cookie:
            data = sessions.verify(settings.SECRET_KEY, cookie)
            if data is None:
                raise Unauthenticated("your session has expired or is invalid: log in again")
            token_key = "s:" + hashlib.sha256(cookie.encode()).hexdigest()
            caller = cache.get_caller(token_key)
            if caller is None:
                caller = await in_session(request, _by_session, settings, data)
                cache.put_caller(token_key, caller)
            if request.method not in SAFE_METHODS:
                check_csrf(request, settings, data)
    request[_CALLER] = caller
    return caller


async def caller_of(request: web.Request) -> Caller:
    caller = await optional_caller(request)
    if caller is None:
        raise Unauthenticated("log in (POST /api/v1/login) or send 'Authorization: Bearer <API key>'")
    return caller


def same_origin(request: web.Request, settings: Settings) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or a same-origin request from an older one
        return True
    allowed = {f"{request.scheme}://{request.host}", *settings.ALLOWED_ORIGINS}
    forwarded = request.headers.get("X-Forwarded-Proto")
    if forwarded:
        allowed.add(f"{forwarded}://{request.host}")
    return origin in allowed


def check_csrf(request: web.Request, settings: Settings, data: sessions.SessionData) -> None:
    if not same_origin(request, settings):
        raise Forbidden(f"cross-origin request from {request.headers.get('Origin')!r} refused: "
                        "add the origin to ALLOWED_ORIGINS if it is yours")
    if not sessions.csrf_ok(settings.SECRET_KEY, data, request.headers.get(sessions.CSRF_HEADER)):
        raise Forbidden(f"missing or wrong {sessions.CSRF_HEADER} header: send the csrf_token "
                        "from the login or /me response")


async def level_of(request: web.Request, caller: Caller, path: str) -> Level:
    path = paths.normalize(path)
    cache = request.app[AUTH_CACHE]
    have = cache.get_level(caller.who, path)
    if have is None:
        have = await in_session(request, permissions.level, caller.subject, path)
        cache.put_level(caller.who, path, have)
    return have


async def require_level(request: web.Request, caller: Caller, path: str, needed: Level) -> Level:
    """Raise unless the caller has `needed` on `path`. Below read access the
    answer is 404, so the tree's shape is not revealed to outsiders."""
    have = await level_of(request, caller, path)
    if have >= needed:
        return have
    if have < Level.READ:
        raise NotFound(f"no resource at {paths.normalize(path)}")
    raise Forbidden(f"{needed.name.lower()} access to {paths.normalize(path)} is needed")


def require_user(caller: Caller) -> int:
    """A route for people only (controller keys are refused)."""
    if caller.user_id is None:
        raise Forbidden("this route is for users; a controller key cannot use it")
    return caller.user_id


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Forbidden("only a system admin may do this")


def forget_access(request: web.Request) -> None:
    """Call after a write that changes who may do what (this process sees it
    at once; others within a poll interval)."""
    request.app[AUTH_CACHE].clear()
