"""The change log the broker plugin and the HTTP workers poll to refresh what they cache."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.storage.models import Change

KINDS = ("key", "user", "permission", "membership", "resource", "organization", "session", "rhizo_key")


def record(s: Session, kind: str, subject: str = "") -> None:
    assert kind in KINDS, kind
    s.add(Change(kind=kind, subject=subject[:100]))


def latest(s: Session) -> int:
    return int(s.scalar(select(func.coalesce(func.max(Change.id), 0))) or 0)


def since(s: Session, change_id: int, limit: int) -> Sequence[tuple[int, str, str]]:
    """(id, kind, subject) of the changes after `change_id`, oldest first, at most `limit`."""
    rows = s.execute(select(Change.id, Change.kind, Change.subject).where(Change.id > change_id)
                     .order_by(Change.id).limit(limit))
    return [(int(i), k, subj) for i, k, subj in rows]
