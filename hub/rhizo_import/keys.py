"""rhizo-server's stored keys and passwords, checked the way rhizo-server checked them.

rhizo-server (its `main/users/auth.py`) hashes with a site-wide secret, its `SALT` setting
(the hub's `RHIZO_SALT`). For a text T its "inner hash" is base64(SHA-512(T + SALT)).

- A key is kept as `key_part` (its first and last three characters; a look-up that several
  keys may share) and `key_hash`: the inner hash, or bcrypt(inner hash) for a key rhizo has
  not seen used since it moved to the inner hash (it re-hashed each key on first use).
- A password is kept as bcrypt(inner hash of the password).

The import keeps both (`rhizo_keys` rows; `users.password_hash` = `rhizo$<bcrypt>`). A key is
checked by `key_part` + one SHA-512 + a constant-time compare: fast, so the broker plugin
does it on its thread from its snapshot. A key still stored as bcrypt is never checked
there (a bcrypt check would stall every client): the HTTP API checks it in its worker
thread and stores the inner hash in its place, as rhizo did, and from then on the broker
accepts it too. A password is checked once against its rhizo hash at log-in and replaced
by the hub's own bcrypt of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time

import bcrypt
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import credentials
from hub.storage import changes
from hub.storage.models import ApiKey, RhizoKey

PREFIX_TAG = "rz"  # api_keys.prefix of an imported rhizo key: rz + 8 base32 characters
PLACEHOLDER_HASH = "!rhizo-key"  # its api_keys.secret_hash: never equal to a SHA-256, so only this module checks it
PASSWORD_TAG = "rhizo$"  # users.password_hash of an imported user whose rhizo hash can be checked
UNUSABLE_PASSWORD = "!rhizo-unsupported-hash"  # any other rhizo hash: nothing matches; reset the password
_BCRYPT = ("$2a$", "$2b$", "$2y$")
BCRYPT_MAX = 72


def key_part(key: str) -> str:
    return key[:3] + key[-3:]


def inner_hash(text: str, salt: str) -> str:
    return base64.standard_b64encode(hashlib.sha512((text + salt).encode()).digest()).decode()


def is_imported_key_text(key: str) -> bool:
    """True if `key` has the form of a rhizo key (the hub's `credentials.is_imported_key`)."""
    return credentials.is_imported_key(key)


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(_BCRYPT)


def prefix_for(source_id: int) -> str:
    """The hub prefix of rhizo key `source_id` (stable, so a second import finds it)."""
    digest = hashlib.sha256(f"rhizo-key:{source_id}".encode()).digest()
    return PREFIX_TAG + base64.b32encode(digest).decode().lower()[:credentials.PREFIX_LEN - len(PREFIX_TAG)]


def fast_match(key: str, salt: str, stored: str) -> bool:
    """True if `stored` is the inner hash of `key` (never a bcrypt check: safe anywhere)."""
    if not salt or is_bcrypt(stored):
        return False
    return hmac.compare_digest(inner_hash(key, salt).encode(), stored.encode())


def slow_match(key: str, salt: str, stored: str) -> bool:
    """True if `stored` is bcrypt of the inner hash of `key`. Slow: off the event loop and
    off the broker thread only."""
    if not salt or not is_bcrypt(stored):
        return False
    try:  # bcrypt reads 72 bytes; the bcrypt rhizo used cut the 88-byte inner hash there silently
        return bcrypt.checkpw(inner_hash(key, salt).encode()[:BCRYPT_MAX], stored.encode())
    except ValueError:  # a damaged hash
        return False


class Budget:
    """At most `per_minute` slow checks a minute (thread-safe): a key with a known
    `key_part` and a wrong secret must not buy a bcrypt check per request."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.left, self.window = per_minute, per_minute, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self.window >= 60:
                self.left, self.window = self.per_minute, now
            if self.left <= 0:
                return False
            self.left -= 1
            return True


SLOW_CHECKS = Budget(60)  # per process, for `verify` (the HTTP API)


def verify(s: Session, key: str, salt: str, budget: Budget = SLOW_CHECKS) -> ApiKey | None:
    """The `api_keys` row of the imported rhizo key `key` (revoked or not: the caller
    decides), else None. A match against a bcrypt hash stores the inner hash instead, so
    the broker can check the key from then on. Slow when it meets a bcrypt hash (at most
    `budget` such checks a minute; past it such a key is refused until the next minute)."""
    if not salt or not credentials.is_imported_key(key):
        return None
    rows = s.execute(select(RhizoKey, ApiKey).join(ApiKey, ApiKey.prefix == RhizoKey.prefix)
                     .where(RhizoKey.key_part == key_part(key))).all()
    for stored, row in rows:
        if fast_match(key, salt, stored.key_hash):
            return row
    slow = [(stored, row) for stored, row in rows if row.revoked_at is None and is_bcrypt(stored.key_hash)]
    if not slow or not budget.take():
        return None
    for stored, row in slow:
        if slow_match(key, salt, stored.key_hash):
            stored.key_hash = inner_hash(key, salt)
            changes.record(s, "rhizo_key", stored.prefix)  # the broker reloads and learns it
            return row
    return None


# --- passwords -------------------------------------------------------------------

def stored_password(rhizo_hash: str) -> str:
    """What the hub keeps for a user whose rhizo password hash is `rhizo_hash`."""
    return PASSWORD_TAG + rhizo_hash if is_bcrypt(rhizo_hash) and len(rhizo_hash) <= 64 else UNUSABLE_PASSWORD


def password_matches(password: str, salt: str, stored: str) -> bool:
    """True if `password` is the one behind a `stored_password` (slow: bcrypt)."""
    if not salt or not stored.startswith(PASSWORD_TAG):
        return False
    return slow_match(password, salt, stored[len(PASSWORD_TAG):])
