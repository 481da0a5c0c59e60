"""Rate-limited events (failed log-ins, PIN requests), in the database, so that every
HTTP worker applies one limit.

Keys are hashes of "kind:value" ("account:EMAIL", "address:IP", ...): what someone
typed into an email field is not kept. Rows older than RETENTION go as new ones come;
every limit's window is shorter than that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.storage.models import RateEvent

RETENTION = timedelta(days=1)


def key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def recent(s: Session, keys: Sequence[str], since: datetime) -> dict[str, tuple[int, datetime]]:
    """key -> (events since `since`, the oldest of them), for the keys that have any."""
    rows = s.execute(select(RateEvent.key, func.count(), func.min(RateEvent.at))
                     .where(RateEvent.key.in_(keys), RateEvent.at > since)
                     .group_by(RateEvent.key))
    return {k: (int(n), oldest) for k, n, oldest in rows}


def record(s: Session, keys: Sequence[str], at: datetime) -> None:
    s.execute(delete(RateEvent).where(RateEvent.at < at - RETENTION))
    s.add_all([RateEvent(key=k, at=at) for k in keys])


def clear(s: Session, k: str) -> None:
    s.execute(delete(RateEvent).where(RateEvent.key == k))


def window_start(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)
