"""Browser sessions: a signed cookie, and the CSRF token derived from it.

Stateless: `hs1.<payload>.<mac>`, payload = base64url(JSON {"u": user id,
"exp": unix seconds, "p": password fingerprint, "n": nonce}), mac =
HMAC-SHA256(SECRET_KEY, "session:" + payload). The password fingerprint ties
a session to the password it was opened with: changing the password ends
every other session. Logging out clears the cookie and records the nonce in
`ended_sessions` (`hub.storage.sessions`), so a copy of the cookie stops
working too.

CSRF: cookie-authenticated writes must send `X-CSRF-Token`, equal to
HMAC(SECRET_KEY, "csrf:" + payload). A hostile page can make the browser
send the cookie, but cannot read the token (it is in the login and /me
responses, and in the `hub_csrf` cookie, readable by same-origin scripts only).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from hub.credentials import _mac, sign, unsign

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
    nonce: str = ""


def password_fingerprint(secret_key: str, password_hash: str) -> str:
    return _mac(secret_key, "pw", password_hash)[:16]


def issue(secret_key: str, user_id: int, password_hash: str, ttl: int = SESSION_TTL) -> str:
    return sign(secret_key, TAG, "session", {"u": user_id, "exp": int(time.time()) + ttl,
                                             "p": password_fingerprint(secret_key, password_hash),
                                             "n": secrets.token_hex(8)})


def verify(secret_key: str, cookie: str) -> SessionData | None:
    """The session in a cookie with a good signature and not expired, else None."""
    found = unsign(secret_key, TAG, "session", cookie)
    if found is None:
        return None
    data, payload = found
    try:
        return SessionData(int(data["u"]), int(data["exp"]), str(data["p"]),  # type: ignore[call-overload]
                           payload, str(data.get("n", "")))
    except (ValueError, KeyError, TypeError):
        return None


def csrf_token(secret_key: str, session: SessionData) -> str:
    return _mac(secret_key, "csrf", session.payload)


def csrf_ok(secret_key: str, session: SessionData, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(secret_key, session), presented or "")
