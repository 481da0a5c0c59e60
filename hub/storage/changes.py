"""The change log the broker plugin and the HTTP workers poll to refresh what they cache."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.storage.models import Change

KINDS = ("key", "user", "permission", "membership", "resource", "organization", "session")
HTTP_ONLY = ("session",)  # kinds that change nothing the broker plugin holds


def record(s: Session, kind: str, subject: str = "") -> None:
    assert kind in KINDS, kind
    s.add(Change(kind=kind, subject=subject[:100]))


def latest(s: Session) -> int:
    return int(s.scalar(select(func.coalesce(func.max(Change.id), 0))) or 0)


def any_since(s: Session, since: int, exclude: Sequence[str] = ()) -> bool:
    """Whether a change after `since` is of a kind not in `exclude`."""
    q = select(Change.id).where(Change.id > since)
    if exclude:
        q = q.where(Change.kind.not_in(exclude))
    return s.scalar(q.limit(1)) is not None
