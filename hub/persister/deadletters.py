"""Dead letters: the last bad messages the persister dropped, with the reason,
where an operator can see them (`recent`, and the HTTP /health counters)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from hub.storage.models import DeadLetter

MAX_PAYLOAD_KEPT = 4096  # bytes of a bad payload kept for inspection
MAX_REASON = 500


def record(s: Session, items: Iterable[tuple[str, str, bytes]]) -> int:
    """Insert `(topic, reason, payload)` rows; payloads are truncated."""
    rows = [{"topic": topic[:500], "reason": reason[:MAX_REASON], "payload": bytes(payload[:MAX_PAYLOAD_KEPT])}
            for topic, reason, payload in items]
    if rows:
        s.execute(insert(DeadLetter), rows)
    return len(rows)


def recent(s: Session, limit: int = 100) -> list[DeadLetter]:
    """Newest first."""
    return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)))


def trim(s: Session, keep: int) -> int:
    """Delete all but the newest `keep`; returns how many went."""
    cutoff = s.scalar(select(DeadLetter.id).order_by(DeadLetter.id.desc()).offset(keep).limit(1))
    if cutoff is None:
        return 0
    res = s.execute(delete(DeadLetter).where(DeadLetter.id <= cutoff))
    return int(getattr(res, "rowcount", 0) or 0)
