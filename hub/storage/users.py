"""Users, organizations and memberships.

Passwords of any length (up to MAX_PASSWORD_LENGTH, a bound on the work a request may
ask for): bcrypt reads at most 72 bytes, so a new hash is bcrypt of
base64(SHA-256(password)) (44 bytes, no NUL), stored as `PREHASHED` + the bcrypt hash.
A hash of the older form (bcrypt of the password itself, at most 72 bytes by the rules
then) is still checked as it was; rhizo-server's form is checked by
`hub.rhizo_import.keys` and replaced by the current form at the first log-in.
"""

from __future__ import annotations

import base64
import hashlib
import re

import bcrypt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub import paths
from hub.access import Subject
from hub.errors import BadRequest, Conflict, NotFound, Unauthenticated, Unprocessable
from hub.rhizo_import import keys as rhizo_keys
from hub.storage import changes
from hub.storage.models import ApiKey, Membership, Organization, Resource, ResourceType, Role, User, utcnow

# also in the OpenAPI document: no `\s` (regular expression engines disagree on what it is)
EMAIL_PATTERN = r"^[^@\x00-\x20\x7f]{1,64}@[^@\x00-\x20\x7f]{1,185}\.[A-Za-z0-9-]{2,63}$"
EMAIL = re.compile(EMAIL_PATTERN)
MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 1024  # characters, and bytes in UTF-8: SHA-256 first, so bcrypt's 72 bytes do not limit it
PREHASHED = "$sha256$"  # password_hash = PREHASHED + bcrypt(base64(SHA-256(password)))
BCRYPT_INPUT_MAX = 72  # bytes bcrypt reads
# a user name (optional; log-in by it or by email): no `@`, so it is never an email
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$"
USER_NAME = re.compile(USER_NAME_PATTERN)
# A valid bcrypt hash of a random password: checking an unknown email costs
# the same as a known one, so timing does not reveal which emails exist.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(4))


def normalize_email(email: str) -> str:
    e = (email or "").strip()
    if len(e) > MAX_EMAIL_LENGTH or not EMAIL.fullmatch(e):
        raise BadRequest(f"{email!r} is not an email address")
    return e.lower()


def check_password_strength(password: str, min_length: int) -> None:
    if not isinstance(password, str) or len(password) < min_length:
        raise BadRequest(f"password too short: use at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    # rules the API document cannot state: 422
    if len(password.encode()) > MAX_PASSWORD_LENGTH:
        raise Unprocessable(f"password too long: at most {MAX_PASSWORD_LENGTH} bytes in UTF-8")
    if len(set(password)) < 4:
        raise Unprocessable("password too weak: use more different characters")


def normalize_user_name(name: str) -> str:
    n = (name or "").strip()
    if not USER_NAME.fullmatch(n):
        raise BadRequest(f"{name!r:.60} is not a user name: 1-50 of letters, digits, `_`, `.` and `-`, "
                         "starting with a letter or digit")
    return n.lower()


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password(password: str, rounds: int) -> str:
    """The hash kept for a new password (any length)."""
    return PREHASHED + bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()


def create_user(s: Session, email: str, password: str, *, rounds: int, min_length: int = 10,
                is_admin: bool = False, full_name: str = "", user_name: str | None = None) -> User:
    e = normalize_email(email)
    check_password_strength(password, min_length)
    if s.scalar(select(User.id).where(User.email == e)) is not None:
        raise Conflict(f"a user with email {e} already exists")
    name = None if user_name is None else _free_user_name(s, user_name)
    u = User(email=e, password_hash=hash_password(password, rounds), is_admin=is_admin, full_name=full_name,
             user_name=name)
    s.add(u)
    s.flush()
    changes.record(s, "user", str(u.id))
    return u


def get_user(s: Session, user_id: int) -> User:
    u = s.get(User, user_id)
    if u is None or u.deleted:
        raise NotFound(f"no user {user_id}")
    return u


def _free_user_name(s: Session, name: str, *, user_id: int | None = None) -> str:
    n = normalize_user_name(name)
    taken = s.scalar(select(User.id).where(User.user_name == n))
    if taken is not None and taken != user_id:
        raise Conflict(f"user name {n} is taken")
    return n


def set_user_name(s: Session, u: User, name: str | None) -> None:
    """Give `u` the user name `name` (None: none)."""
    u.user_name = None if name is None else _free_user_name(s, name, user_id=u.id)
    changes.record(s, "user", str(u.id))


def find_user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == email.strip().lower(), ~User.deleted))


def find_user_for_login(s: Session, login: str) -> User | None:
    """The live user whose email, or else whose user name, is `login` (as rhizo-server
    allowed: a user name never contains `@`, so the two never meet)."""
    text = (login or "").strip().lower()
    column = User.email if "@" in text else User.user_name
    return s.scalar(select(User).where(column == text, ~User.deleted)) if text else None


def authenticate(s: Session, login: str, password: str, *, rhizo_salt: str = "", rounds: int = 12) -> User:
    """The user with this email or user name and password, else Unauthenticated (same
    message and about the same time either way). A password hash brought over from
    rhizo-server (`run.py --import-rhizo`) is checked with `rhizo_salt` and, when it
    matches, replaced by the hub's own (bcrypt with `rounds`)."""
    u = find_user_for_login(s, login or "")
    ok = password_ok(u.password_hash if u else "", password, rhizo_salt=rhizo_salt)
    if u is None or not ok:
        raise Unauthenticated("wrong email or password")  # a user name counts as the email here
    if u.password_hash.startswith(rhizo_keys.PASSWORD_TAG):
        u.password_hash = hash_password(password, rounds)
    return u


def password_ok(stored: str, password: str, *, rhizo_salt: str = "") -> bool:
    """True if `password` matches the stored hash: the hub's bcrypt, or one brought over
    from rhizo-server (checked with `rhizo_salt`). Any other hash (an unknown one, none)
    matches nothing, in about the same time."""
    if stored.startswith(rhizo_keys.PASSWORD_TAG):
        return rhizo_keys.password_matches(password or "", rhizo_salt, stored)
    if stored.startswith(PREHASHED):
        return _checkpw(_prehash(password or ""), stored[len(PREHASHED):])
    # the older form: bcrypt of the password itself (passwords were at most 72 bytes then)
    raw = (password or "").encode()
    if stored.startswith("$2") and len(raw) <= BCRYPT_INPUT_MAX:
        return _checkpw(raw, stored)
    bcrypt.checkpw(b"not a password", _DUMMY_HASH)  # an unknown hash or none: the same time, no match
    return False


def _checkpw(secret: bytes, stored: str) -> bool:
    """bcrypt's check; a damaged or missing hash matches nothing, in about the same time."""
    try:
        return bcrypt.checkpw(secret, stored.encode())
    except ValueError:
        bcrypt.checkpw(b"not a password", _DUMMY_HASH)
        return False


def set_password(s: Session, u: User, password: str, *, rounds: int, min_length: int) -> None:
    check_password_strength(password, min_length)
    u.password_hash = hash_password(password, rounds)


def delete_user(s: Session, user_id: int, *, by_user_id: int | None = None) -> None:
    """Soft-delete a user and revoke every key they own (their MQTT
    connections are kicked by the broker plugin)."""
    u = get_user(s, user_id)
    u.deleted = True
    u.email = f"deleted-{u.id}-{u.email}"[:254]
    u.user_name = None  # free for someone else, as the email is
    s.execute(update(ApiKey).where(ApiKey.user_id == u.id, ApiKey.revoked_at.is_(None))
              .values(revoked_at=utcnow(), revoked_by=by_user_id))
    changes.record(s, "user", str(u.id))


def subject_for_user(s: Session, u: User, *, key_prefix: str | None = None) -> Subject:
    roles = dict(s.execute(select(Membership.organization_id, Membership.role)
                           .where(Membership.user_id == u.id)).all())
    return Subject(user_id=u.id, is_admin=u.is_admin, memberships=roles, key_prefix=key_prefix)


# --- organizations -------------------------------------------------------------

def create_organization(s: Session, name: str, full_name: str = "") -> Organization:
    """An organization and its top-level folder of the same name."""
    paths.check_folder_name(name, bool(s.info.get("dotless_folders")))
    if s.scalar(select(Organization.id).where(Organization.name == name)) is not None or \
            s.scalar(select(Resource.id).where(Resource.path == name, ~Resource.deleted)):
        raise Conflict(f"organization {name} already exists")
    org = Organization(name=name, full_name=full_name or name)
    s.add(org)
    s.flush()
    s.add(Resource(name=name, path=name, type=ResourceType.ORGANIZATION.value, organization_id=org.id))
    s.flush()
    changes.record(s, "organization", name)
    return org


def get_organization(s: Session, name: str) -> Organization:
    org = s.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise NotFound(f"no organization {name}")
    return org


def list_organizations(s: Session, user: User | None = None) -> list[Organization]:
    q = select(Organization).order_by(Organization.name)
    if user is not None and not user.is_admin:
        q = q.join(Membership, Membership.organization_id == Organization.id).where(
            Membership.user_id == user.id)
    return list(s.scalars(q))


def set_membership(s: Session, org: Organization, user: User, role: str = Role.MEMBER.value) -> Membership:
    if role not in {r.value for r in Role}:
        raise BadRequest(f"role must be one of {', '.join(r.value for r in Role)}")
    m = s.scalar(select(Membership).where(Membership.organization_id == org.id, Membership.user_id == user.id))
    if m is None:
        m = Membership(organization_id=org.id, user_id=user.id, role=role)
        s.add(m)
    m.role = role
    s.flush()
    changes.record(s, "membership", f"{org.name}:{user.id}")
    return m


def remove_membership(s: Session, org: Organization, user: User) -> None:
    m = s.scalar(select(Membership).where(Membership.organization_id == org.id, Membership.user_id == user.id))
    if m is None:
        raise NotFound(f"user {user.id} is not a member of {org.name}")
    s.delete(m)
    changes.record(s, "membership", f"{org.name}:{user.id}")


def members(s: Session, org: Organization) -> list[tuple[User, str]]:
    return [(u, role) for u, role in s.execute(
        select(User, Membership.role).join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == org.id, ~User.deleted).order_by(User.email))]


def list_users(s: Session, *, organization_ids: list[int] | None = None) -> list[User]:
    """Live users by email; with `organization_ids`, only members of those."""
    q = select(User).where(~User.deleted).order_by(User.email)
    if organization_ids is not None:
        q = q.where(User.id.in_(select(Membership.user_id).where(
            Membership.organization_id.in_(organization_ids))))
    return list(s.scalars(q))


def get_organization_by_id(s: Session, organization_id: int) -> Organization | None:
    return s.get(Organization, organization_id)
