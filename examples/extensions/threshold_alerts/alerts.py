"""The alerts sent lately, from the notifier's record of every email (outgoing_messages)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.storage.models import OutgoingMessage

RECENT = 50


def subject(sequence: str) -> str:
    return f"[hub] {sequence} is out of range"


def recent(s: Session, sequences: list[str], limit: int = RECENT) -> list[dict[str, Any]]:
    """The newest alert emails about `sequences` (sent, refused, throttled or failed)."""
    if not sequences:
        return []
    by_subject = {subject(q): q for q in sequences}
    rows = s.scalars(select(OutgoingMessage).where(OutgoingMessage.subject.in_(list(by_subject)))
                     .order_by(OutgoingMessage.id.desc()).limit(limit))
    return [{"sequence": by_subject[r.subject], "at": r.created_at.isoformat() + "Z", "status": r.status,
             "to": [a.strip() for a in r.recipients.split(",") if a.strip()], "detail": r.detail} for r in rows]
