"""Machine credentials: API keys, browser MQTT tokens, service passwords.

Shared by the HTTP server (issues them), the broker plugin and the storage
layer (check them). Everything here is fast (SHA-256 / HMAC) and constant-time
where it compares secrets: bcrypt is for human passwords only.

API key: `hk_<prefix>_<secret>`; prefix is 10 lowercase base32 characters,
public and unique (the O(1) look-up); the secret is 32 random bytes,
urlsafe-base64. Only SHA-256 of the whole key is stored.

Imported keys (rhizo-server's text format: a site prefix and 50 random characters, 40-100
of `[A-Za-z0-9_-]`, not starting with `hk_`) are taken as they are: their prefix is derived
from the key itself (`imported_prefix`), so the same O(1) look-up and SHA-256 check apply.
`run.py --import-key` stores one for an existing controller or user.

Browser token: `hbt1.<payload>.<mac>`, payload = base64url(JSON {"u": user_id,
"exp": unix_seconds}), mac = base64url(HMAC-SHA256(SECRET_KEY, "mqtt-token:" +
payload)). It holds nothing secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import NamedTuple

KEY_TAG = "hk"
PREFIX_LEN = 10
TOKEN_TAG = "hbt1"
_B32 = "abcdefghijklmnopqrstuvwxyz234567"

# MQTT usernames of the hub's own processes; their passwords derive from SECRET_KEY.
PERSISTER_USERNAME = "hub-persister"
SERVICE_USERNAME = "hub-service"


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    prefix: str
    secret_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> NewKey:
    prefix = "".join(secrets.choice(_B32) for _ in range(PREFIX_LEN))
    key = f"{KEY_TAG}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, secret_hash=hash_key(key))


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key (native or imported), else None (no exception)."""
    if not isinstance(key, str) or len(key) > 200:
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_TAG or len(parts[1]) != PREFIX_LEN or len(parts[2]) < 20:
        return imported_prefix(key) if is_imported_key(key) else None
    return parts[1]


_IMPORTED = re.compile(r"[A-Za-z0-9_\-]{40,100}")


def is_imported_key(key: str) -> bool:
    """True for a key in rhizo-server's text format (see the module doc)."""
    return isinstance(key, str) and not key.startswith(KEY_TAG + "_") and bool(_IMPORTED.fullmatch(key))


def imported_prefix(key: str) -> str:
    """The look-up prefix of an imported key: 10 base32 characters of its SHA-256."""
    digest = hashlib.sha256(b"imported-key:" + key.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:PREFIX_LEN]


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str, purpose: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest())


def sign(secret_key: str, tag: str, purpose: str, data: dict[str, object]) -> str:
    """`<tag>.<base64url JSON>.<HMAC(SECRET_KEY, purpose:payload)>`: the one signed-token
    format (browser MQTT tokens, session cookies). `data` is readable by anyone: put
    nothing secret in it."""
    payload = _b64(json.dumps(data, separators=(",", ":")).encode())
    return f"{tag}.{payload}.{_mac(secret_key, purpose, payload)}"


def unsign(secret_key: str, tag: str, purpose: str, token: str, *, max_len: int = 600,
           now: float | None = None) -> tuple[dict[str, object], str] | None:
    """(data, payload) of a well-signed token whose integer `exp` is in the future, else
    None (never an exception): the MAC is compared in constant time before any parsing."""
    if not isinstance(token, str) or len(token) > max_len:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != tag:
        return None
    if not hmac.compare_digest(_mac(secret_key, purpose, parts[1]), parts[2]):
        return None
    try:
        data = json.loads(_unb64(parts[1]))
        exp = int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or exp <= (time.time() if now is None else now):
        return None
    return data, parts[1]


class TokenData(NamedTuple):
    user_id: int
    expires: int  # unix seconds
    session: str  # nonce of the browser session it was issued to ("": none); it ends with it


def issue_token(secret_key: str, user_id: int, ttl: float, now: float | None = None, session: str = "") -> str:
    exp = int((time.time() if now is None else now) + ttl)
    data: dict[str, object] = {"u": user_id, "exp": exp}
    if session:
        data["s"] = session
    return sign(secret_key, TOKEN_TAG, "mqtt-token", data)


def verify_token(secret_key: str, token: str, now: float | None = None) -> TokenData | None:
    """(user_id, expiry, session) of a valid unexpired token, else None."""
    found = unsign(secret_key, TOKEN_TAG, "mqtt-token", token, max_len=500, now=now)
    if found is None:
        return None
    try:
        data = found[0]
        return TokenData(int(data["u"]), int(data["exp"]), str(data.get("s", "")))  # type: ignore[call-overload]
    except (ValueError, KeyError, TypeError):
        return None


def service_password(secret_key: str, username: str) -> str:
    """Password of one of the hub's own MQTT clients (persister, HTTP service)."""
    return hmac.new(secret_key.encode(), f"service:{username}".encode(), hashlib.sha256).hexdigest()
