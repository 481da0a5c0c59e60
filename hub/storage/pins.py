"""Provisioning PINs: how a controller gets its key without anyone typing a secret on it.

1. The controller asks for a PIN (`create`): it gets a short PIN to show its owner
   and a long pin code it keeps to itself. Only SHA-256 of the pin code is stored.
2. Its owner, logged in, attaches the PIN to a controller folder (`attach`).
3. The controller polls with PIN + pin code (`claim`); once attached it gets the
   folder's path and a new controller key, exactly once.

A PIN lives `ttl` seconds (PIN_TTL_SECONDS), is used once, and dies after
PIN_MAX_ATTEMPTS wrong pin codes. `claim` reports wrong codes as a result, not an
exception, so the count of attempts commits with the caller's transaction.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Conflict, NotFound
from hub.storage import keys, resources
from hub.storage.models import Pin, ResourceType, utcnow

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a screen, typed by a person
DIGITS = "23456789"  # PINs for rhizo controllers, which show a PIN as an integer
PIN_LENGTH = 6
KEEP_AFTER_EXPIRY = timedelta(days=1)  # expired rows are deleted after this (audit window)


class Outcome(str, enum.Enum):
    WAITING = "waiting"  # not attached yet: poll again
    READY = "ready"  # here is the key (this once)
    WRONG_CODE = "wrong_code"
    DEAD = "dead"  # too many wrong codes
    USED = "used"  # the key was already handed out
    UNKNOWN = "unknown"  # no such PIN, or expired


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    controller: str | None = None
    key: str | None = None
    attempts_left: int = 0


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize(pin: str) -> str:
    """The canonical PIN: upper case, no spaces or dashes; BadRequest if it cannot be one."""
    p = "".join(ch for ch in str(pin) if ch not in " -").upper()
    if len(p) != PIN_LENGTH or any(ch not in ALPHABET for ch in p):
        raise BadRequest(f"a PIN is {PIN_LENGTH} characters of {ALPHABET}")
    return p


def create(s: Session, *, ttl_s: int, now: datetime | None = None, alphabet: str = ALPHABET) -> tuple[Pin, str]:
    """A new PIN and its pin code (returned once, stored hashed); `alphabet` is a subset
    of ALPHABET (DIGITS for rhizo controllers)."""
    now = now or utcnow()
    s.execute(delete(Pin).where(Pin.expires_at < now - KEEP_AFTER_EXPIRY))
    code = secrets.token_urlsafe(32)
    for _ in range(10):
        pin = "".join(secrets.choice(alphabet) for _ in range(PIN_LENGTH))
        if s.scalar(select(Pin.id).where(Pin.pin == pin)) is not None:
            continue  # taken (live, or kept for the audit window): draw again
        row = Pin(pin=pin, code_hash=_hash(code), created_at=now, expires_at=now + timedelta(seconds=ttl_s),
                  attempts=0)
        s.add(row)
        s.flush()
        return row, code
    raise Conflict("could not find a free PIN: try again in a minute")


def live(s: Session, pin: str, now: datetime | None = None) -> Pin:
    now = now or utcnow()
    row = s.scalar(select(Pin).where(Pin.pin == normalize(pin)))
    if row is None or row.expires_at <= now:
        raise NotFound(f"no PIN {normalize(pin)}, or it expired: ask the controller for a new one")
    return row


def attach(s: Session, pin: str, controller_path: str, *, user_id: int,
           now: datetime | None = None) -> Pin:
    """Attach a live PIN to a controller folder, created if missing (its parent must
    exist). The caller has checked the user's write access."""
    now = now or utcnow()
    row = live(s, pin, now)
    if row.controller_id is not None:
        raise Conflict(f"PIN {row.pin} is already attached: ask the controller for a new one")
    path = paths.normalize(controller_path)
    controller = resources.find(s, path)
    if controller is None:
        controller = resources.create(s, path, ResourceType.CONTROLLER.value)
    elif controller.type != ResourceType.CONTROLLER.value:
        raise Conflict(f"{path} is a {controller.type}, not a controller folder")
    row.controller_id, row.attached_by, row.attached_at = controller.id, user_id, now
    return row


def claim(s: Session, pin: str, code: str, *, max_attempts: int, now: datetime | None = None) -> Claim:
    """What a polling controller gets for PIN + pin code (see `Outcome`)."""
    now = now or utcnow()
    try:
        row = live(s, pin, now)
    except (NotFound, BadRequest):
        return Claim(Outcome.UNKNOWN)
    if row.attempts >= max_attempts:
        return Claim(Outcome.DEAD)
    if not hmac.compare_digest(_hash(code or ""), row.code_hash):
        row.attempts += 1
        if row.attempts >= max_attempts:
            return Claim(Outcome.DEAD)
        return Claim(Outcome.WRONG_CODE, attempts_left=max_attempts - row.attempts)
    if row.claimed_at is not None:
        return Claim(Outcome.USED)
    if row.controller_id is None:
        return Claim(Outcome.WAITING)
    controller = resources.by_id(s, row.controller_id)
    if controller is None or controller.deleted:
        return Claim(Outcome.UNKNOWN)
    key_row, secret = keys.create(s, controller_path=controller.path, created_by=row.attached_by,
                                  name=f"provisioned with PIN {row.pin}")
    row.claimed_at, row.key_prefix = now, key_row.prefix
    return Claim(Outcome.READY, controller=controller.path, key=secret)
