"""The change log the broker plugin polls to refresh its snapshot."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.storage.models import Change

KINDS = ("key", "user", "permission", "membership", "resource", "organization")


def record(s: Session, kind: str, subject: str = "") -> None:
    assert kind in KINDS, kind
    s.add(Change(kind=kind, subject=subject[:100]))


def latest(s: Session) -> int:
    return int(s.scalar(select(func.coalesce(func.max(Change.id), 0))) or 0)
