"""Compact a test database as the persister's trimmer would, everything up to now."""

from __future__ import annotations

from hub.storage import compaction
from hub.storage.db import Database
from hub.storage.values import now_us


def compact_db(db: Database, before_us: int | None = None) -> compaction.Report:
    rep = compaction.compact(db.session, now_us() if before_us is None else before_us)
    assert not rep.skipped, rep
    return rep


def compact_url(url: str, before_us: int | None = None) -> compaction.Report:
    db = Database(url)
    try:
        return compact_db(db, before_us)
    finally:
        db.dispose()
