"""Browser sessions ended on the server (log-out).

A session is a signed cookie the HTTP server checks without the database
(`hub.http.sessions`); ending one records its nonce here until the cookie would
have expired, so a copied cookie stops working at log-out, in every HTTP worker
(the change log tells their caches within a second).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.storage import changes
from hub.storage.models import EndedSession, User, utcnow


def end(s: Session, nonce: str, user_id: int, expires: int) -> None:
    """End the session `nonce` of `user_id` whose cookie expires at unix time `expires`."""
    s.execute(delete(EndedSession).where(EndedSession.expires_at < utcnow()))
    if s.get(User, user_id) is not None and s.get(EndedSession, nonce) is None:
        until = datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
        s.add(EndedSession(nonce=nonce, user_id=user_id, expires_at=until))
        changes.record(s, "session", str(user_id))


def ended(s: Session, nonce: str) -> bool:
    return s.scalar(select(EndedSession.nonce).where(EndedSession.nonce == nonce)) is not None


def ended_nonces(s: Session) -> frozenset[str]:
    """The sessions ended whose cookies have not expired yet (the broker plugin ends their
    MQTT tokens' connections)."""
    return frozenset(s.scalars(select(EndedSession.nonce).where(EndedSession.expires_at > utcnow())))
