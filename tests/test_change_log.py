"""The change log's followers miss no change that commits after a newer one (PostgreSQL
hands out ids from a sequence; transactions commit in any order)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hub.storage import changes
from hub.storage.db import Database, migrate
from hub.storage.models import Change


@pytest.fixture
def pgdb(pg_database_url: str) -> Iterator[Database]:
    migrate(pg_database_url)
    database = Database(pg_database_url)
    yield database
    database.dispose()


def _poll(db: Database, cursor: changes.ChangeCursor) -> list[tuple[int, str, str]]:
    with db.session() as s:
        rows = cursor.read(s, 100)
    cursor.consume(rows)
    return rows


@pytest.mark.pg
def test_a_change_committed_after_a_newer_one_is_still_followed(pgdb: Database) -> None:
    with pgdb.session() as s:
        cursor = changes.ChangeCursor(changes.latest(s))
    late = pgdb.session()
    s_late = late.__enter__()
    changes.record(s_late, "key", "late")
    s_late.flush()  # takes id N, not committed
    late_id = s_late.scalar(select(Change.id).where(Change.subject == "late"))
    with pgdb.session() as s:  # takes N+1, commits first
        changes.record(s, "key", "early")
    first = _poll(pgdb, cursor)
    assert [(k, subj) for _, k, subj in first] == [("key", "early")]
    assert cursor.position > late_id
    assert _poll(pgdb, cursor) == []
    late.__exit__(None, None, None)  # N commits now
    assert _poll(pgdb, cursor) == [(late_id, "key", "late")]
    assert _poll(pgdb, cursor) == []  # once


@pytest.mark.pg
def test_a_change_rolled_back_is_given_up_after_a_while(pgdb: Database) -> None:
    now = [0.0]
    with pgdb.session() as s:
        cursor = changes.ChangeCursor(changes.latest(s), gap_seconds=5, clock=lambda: now[0])
    with pytest.raises(RuntimeError), pgdb.session() as s:
        changes.record(s, "key", "gone")
        s.flush()
        raise RuntimeError
    with pgdb.session() as s:
        changes.record(s, "key", "kept")
    assert [subj for _, _, subj in _poll(pgdb, cursor)] == ["kept"]
    assert cursor.gaps
    now[0] = 6.0
    assert _poll(pgdb, cursor) == []
    assert not cursor.gaps
