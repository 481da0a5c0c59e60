"""Accounts people open themselves: invitations, password resets, account requests.

A link's code is `secrets.token_urlsafe(32)` (256 bits); only its SHA-256 is stored, looked
up by that hash and compared in constant time, like the API keys (`hub.credentials`). A
code works once, until it expires; a used, expired or unknown code changes nothing.

- An invitation names an email, an organization and a role. Accepting it creates the user
  with the password chosen (or, for an address that already has an account, adds that user,
  signed in) and the membership, in one transaction. A new invitation to the same address
  and organization replaces the pending one (the older link stops working).
- A password reset is for an existing user; only the newest link works. Using it sets the
  password (through `hub.storage.users`) and ends every session of the user: sessions are
  tied to the password's fingerprint (`hub.http.sessions`), a `user` change tells the
  workers' caches, and the sessions that were given MQTT tokens (`note_token_session`) are
  ended as at log-out, so the broker closes their connections. Keys are not revoked.
- An account request is pending until an admin approves it (an invitation) or refuses it.
  A second request for a pending address is folded into it (its name and message updated).

The emails go to the outbox (`queue_email`) that the notifier sends (`hub.notify.outbox`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.errors import BadRequest, Conflict, Forbidden, HubError, NotFound, Unauthenticated, Unprocessable
from hub.storage import changes, sessions, users
from hub.storage.models import (
    AccountCode,
    AccountEmail,
    AccountRequest,
    Membership,
    Organization,
    Role,
    TokenSession,
    User,
    utcnow,
)

INVITE, RESET = "invite", "reset"
PENDING, APPROVED, REFUSED = "pending", "approved", "refused"
CODE_PATTERN = r"^[A-Za-z0-9_-]{20,100}$"
_CODE = re.compile(CODE_PATTERN)


class CodeGone(HubError):
    """A code that was used, replaced or has expired."""

    status = 410
    code = "code_gone"


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _new(s: Session, kind: str, email: str, ttl: float, now: datetime, **kw: object) -> str:
    code = secrets.token_urlsafe(32)
    s.add(AccountCode(kind=kind, code_hash=hash_code(code), email=email, created_at=now,
                      expires_at=now + timedelta(seconds=ttl), **kw))
    s.flush()
    return code


def _find(s: Session, kind: str, code: str, now: datetime | None = None) -> AccountCode:
    """The live code of `kind`, else NotFound (unknown, forged) or CodeGone (used, expired)."""
    what = "invitation" if kind == INVITE else "password-reset link"
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise NotFound(f"this {what} is not valid: check that the whole link was opened", code="bad_code")
    digest = hash_code(code)
    row = s.scalar(select(AccountCode).where(AccountCode.code_hash == digest, AccountCode.kind == kind))
    if row is None or not hmac.compare_digest(row.code_hash, digest):
        raise NotFound(f"this {what} is not valid: check that the whole link was opened", code="bad_code")
    if row.used_at is not None:
        raise CodeGone(f"this {what} was already used or replaced by a newer one", code="code_used")
    if row.expires_at <= (now or utcnow()):
        raise CodeGone(f"this {what} has expired: ask for a new one", code="code_expired")
    return row


def _retire(s: Session, *conditions: object, now: datetime) -> None:
    s.execute(update(AccountCode).where(AccountCode.used_at.is_(None), *conditions).values(used_at=now))  # type: ignore[arg-type]


# --- invitations -------------------------------------------------------------------

@dataclass(frozen=True)
class Invitation:
    id: int
    email: str
    organization: str
    role: str
    expires_at: datetime
    created_at: datetime
    existing_user: bool


def _view(s: Session, row: AccountCode) -> Invitation:
    org = s.get(Organization, row.organization_id)
    return Invitation(row.id, row.email, org.name if org else "", row.role, row.expires_at, row.created_at,
                      users.find_user_by_email(s, row.email) is not None)


def invite(s: Session, org: Organization, email: str, role: str, *, by_user_id: int | None, ttl: float,
           now: datetime | None = None) -> tuple[Invitation, str]:
    """A new invitation and its code (to email, never stored)."""
    now = now or utcnow()
    e = users.normalize_email(email)
    if role not in {r.value for r in Role}:
        raise BadRequest(f"role must be one of {', '.join(r.value for r in Role)}")
    u = users.find_user_by_email(s, e)
    if u is not None and s.scalar(select(Membership.id).where(
            Membership.organization_id == org.id, Membership.user_id == u.id)) is not None:
        raise Conflict(f"{e} is already a member of {org.name}")
    _retire(s, AccountCode.kind == INVITE, AccountCode.email == e, AccountCode.organization_id == org.id, now=now)
    code = _new(s, INVITE, e, ttl, now, organization_id=org.id, role=role, created_by=by_user_id)
    row = s.scalar(select(AccountCode).where(AccountCode.code_hash == hash_code(code)))
    assert row is not None
    return _view(s, row), code


def pending_invitations(s: Session, org: Organization, now: datetime | None = None) -> list[Invitation]:
    rows = s.scalars(select(AccountCode).where(
        AccountCode.kind == INVITE, AccountCode.organization_id == org.id, AccountCode.used_at.is_(None),
        AccountCode.expires_at > (now or utcnow())).order_by(AccountCode.created_at))
    return [_view(s, r) for r in rows]


def cancel_invitation(s: Session, org: Organization, invitation_id: int, now: datetime | None = None) -> None:
    row = s.get(AccountCode, invitation_id)
    if row is None or row.kind != INVITE or row.organization_id != org.id or row.used_at is not None:
        raise NotFound(f"no pending invitation {invitation_id} in {org.name}")
    row.used_at = now or utcnow()


def invitation(s: Session, code: str) -> Invitation:
    """What a live invitation code is for (NotFound / CodeGone otherwise)."""
    return _view(s, _find(s, INVITE, code))


def accept(s: Session, code: str, *, password: str | None, signed_in_user_id: int | None, rounds: int,
           min_length: int, full_name: str = "") -> tuple[User, Organization, bool]:
    """(user, organization, created) once the invitation is accepted: a new user with
    `password`, or the existing user of that address, who must be the one signed in."""
    row = _find(s, INVITE, code)
    org = s.get(Organization, row.organization_id)
    if org is None:
        raise CodeGone("the organization of this invitation no longer exists", code="code_gone")
    u = users.find_user_by_email(s, row.email)
    created = u is None
    if u is None:
        if password is None:
            raise Unprocessable("send `password`: the password of your new account")
        u = users.create_user(s, row.email, password, rounds=rounds, min_length=min_length, full_name=full_name)
        s.execute(update(AccountRequest).where(AccountRequest.email == row.email, AccountRequest.status == PENDING)
                  .values(status=APPROVED, decided_by=row.created_by, decided_at=utcnow()))
    elif signed_in_user_id != u.id:
        raise Unauthenticated(f"{row.email} already has an account: sign in as {row.email}, then open the link again")
    elif password is not None:
        raise Unprocessable("you already have an account: accept without `password`")
    users.set_membership(s, org, u, row.role)
    row.used_at = utcnow()
    return u, org, created


# --- password resets -----------------------------------------------------------------

def request_reset(s: Session, email: str, *, ttl: float, now: datetime | None = None) -> tuple[User, str] | None:
    """A reset code for the user of `email` (older ones retired), None if there is none."""
    now = now or utcnow()
    u = users.find_user_by_email(s, email)
    if u is None:
        return None
    _retire(s, AccountCode.kind == RESET, AccountCode.user_id == u.id, now=now)
    return u, _new(s, RESET, u.email, ttl, now, user_id=u.id)


def note_token_session(s: Session, nonce: str, user_id: int, expires: int) -> None:
    """The session `nonce` (cookie expiring at unix time `expires`) was given an MQTT token."""
    now = utcnow()
    s.execute(delete(TokenSession).where(TokenSession.expires_at < now))
    if s.get(TokenSession, nonce) is None:
        s.add(TokenSession(nonce=nonce, user_id=user_id,
                           expires_at=datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)))


def end_sessions(s: Session, u: User, keep: str = "") -> None:
    """End `u`'s sessions (but `keep`): their cookies no longer match the password (see
    `hub.http.sessions`), a `user` change tells every worker's cache, and those given MQTT
    tokens are ended like a log-out, so the broker closes their connections."""
    now = utcnow()
    for nonce, expires_at in s.execute(select(TokenSession.nonce, TokenSession.expires_at).where(
            TokenSession.user_id == u.id, TokenSession.expires_at > now, TokenSession.nonce != keep)).all():
        sessions.end(s, nonce, u.id, int(expires_at.replace(tzinfo=UTC).timestamp()))
    changes.record(s, "user", str(u.id))
    changes.record(s, "session", str(u.id))


def complete_reset(s: Session, code: str, password: str, *, rounds: int, min_length: int) -> User:
    row = _find(s, RESET, code)
    u = s.get(User, row.user_id) if row.user_id is not None else None
    if u is None or u.deleted:
        raise CodeGone("the account of this link no longer exists", code="code_gone")
    users.set_password(s, u, password, rounds=rounds, min_length=min_length)
    row.used_at = utcnow()
    end_sessions(s, u)
    return u


def change_password(s: Session, u: User, current: str, password: str, *, rhizo_salt: str, rounds: int,
                    min_length: int, keep_session: str = "") -> None:
    if not users.password_ok(u.password_hash, current, rhizo_salt=rhizo_salt):
        raise Forbidden("your current password is not right", code="wrong_password")
    users.set_password(s, u, password, rounds=rounds, min_length=min_length)
    end_sessions(s, u, keep=keep_session)


# --- account requests ------------------------------------------------------------------

def ask(s: Session, email: str, *, full_name: str, organization: str, message: str,
        now: datetime | None = None) -> AccountRequest | None:
    """Record (or fold into the pending one) a request; None for an address that has an
    account (the caller answers the same either way)."""
    e = users.normalize_email(email)
    if users.find_user_by_email(s, e) is not None:
        return None
    row = s.scalar(select(AccountRequest).where(AccountRequest.email == e, AccountRequest.status == PENDING))
    if row is None:
        row = AccountRequest(email=e, created_at=now or utcnow(), status=PENDING)
        s.add(row)
    row.full_name, row.organization, row.message = full_name, organization, message
    s.flush()
    return row


def pending_requests(s: Session, organizations: list[str] | None = None) -> list[AccountRequest]:
    """Pending requests, oldest first; with `organizations`, those naming one of them."""
    q = select(AccountRequest).where(AccountRequest.status == PENDING).order_by(AccountRequest.created_at)
    if organizations is not None:
        q = q.where(AccountRequest.organization.in_(organizations))
    return list(s.scalars(q))


def get_request(s: Session, request_id: int) -> AccountRequest:
    row = s.get(AccountRequest, request_id)
    if row is None:
        raise NotFound(f"no account request {request_id}")
    if row.status != PENDING:
        raise Conflict(f"account request {request_id} was already {row.status}")
    return row


def decide(s: Session, row: AccountRequest, status: str, by_user_id: int | None) -> None:
    row.status, row.decided_by, row.decided_at = status, by_user_id, utcnow()


# --- the outbox ---------------------------------------------------------------------

def queue_email(s: Session, to: str, subject: str, body: str) -> None:
    s.add(AccountEmail(recipient=to, subject=subject[:200], body=body, status="queued"))
