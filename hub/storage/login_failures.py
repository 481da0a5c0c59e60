"""Failed log-ins, in the database, so that every HTTP worker applies one limit.

Keys are hashes ("account:" + email, "address:" + client IP): what someone typed
into the email field is not kept. Rows older than the window go as new ones come.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.storage.models import LoginFailure


def key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def recent(s: Session, keys: Sequence[str], since: datetime) -> dict[str, tuple[int, datetime]]:
    """key -> (failures since `since`, the oldest of them), for the keys that have any."""
    rows = s.execute(select(LoginFailure.key, func.count(), func.min(LoginFailure.at))
                     .where(LoginFailure.key.in_(keys), LoginFailure.at > since)
                     .group_by(LoginFailure.key))
    return {k: (int(n), oldest) for k, n, oldest in rows}


def record(s: Session, keys: Sequence[str], at: datetime, forget_before: datetime) -> None:
    s.execute(delete(LoginFailure).where(LoginFailure.at < forget_before))
    s.add_all([LoginFailure(key=k, at=at) for k in keys])


def clear(s: Session, k: str) -> None:
    s.execute(delete(LoginFailure).where(LoginFailure.key == k))


def window_start(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)
