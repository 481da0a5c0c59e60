"""Browser sessions: a signed cookie, and the CSRF token derived from it.

Stateless: `hs1.<payload>.<mac>`, payload = base64url(JSON {"u": user id,
"exp": unix seconds, "p": password fingerprint, "n": nonce}), mac =
HMAC-SHA256(SECRET_KEY, "session:" + payload). The password fingerprint ties
a session to the password it was opened with: changing the password ends
every other session. Logging out clears the cookie.

CSRF: cookie-authenticated writes must send `X-CSRF-Token`, equal to
HMAC(SECRET_KEY, "csrf:" + payload). A hostile page can make the browser
send the cookie, but cannot read the token (it is in the login and /me
responses, and in the `hub_csrf` cookie, readable by same-origin scripts only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from hub.credentials import _b64, _unb64

SESSION_COOKIE = "hub_session"
CSRF_COOKIE = "hub_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 7 * 24 * 3600
TAG = "hs1"


@dataclass(frozen=True)
class SessionData:
    user_id: int
    expires: int
    fingerprint: str
    payload: str


def _mac(secret_key: str, purpose: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest())


def password_fingerprint(secret_key: str, password_hash: str) -> str:
    return _mac(secret_key, "pw", password_hash)[:16]


def issue(secret_key: str, user_id: int, password_hash: str, ttl: int = SESSION_TTL) -> str:
    data = {"u": user_id, "exp": int(time.time()) + ttl,
            "p": password_fingerprint(secret_key, password_hash), "n": secrets.token_hex(8)}
    payload = _b64(json.dumps(data, separators=(",", ":")).encode())
    return f"{TAG}.{payload}.{_mac(secret_key, 'session', payload)}"


def verify(secret_key: str, cookie: str) -> SessionData | None:
    """The session in a cookie with a good signature and not expired, else None."""
    if not isinstance(cookie, str) or len(cookie) > 600:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or parts[0] != TAG:
        return None
    if not hmac.compare_digest(_mac(secret_key, "session", parts[1]), parts[2]):
        return None
    try:
        data = json.loads(_unb64(parts[1]))
        user_id, exp, fp = int(data["u"]), int(data["exp"]), str(data["p"])
    except (ValueError, KeyError, TypeError):
        return None
    if exp <= time.time():
        return None
    return SessionData(user_id, exp, fp, parts[1])


def csrf_token(secret_key: str, session: SessionData) -> str:
    return _mac(secret_key, "csrf", session.payload)


def csrf_ok(secret_key: str, session: SessionData, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(secret_key, session), presented or "")
