"""Compaction: sequence values older than COMPACT_AFTER_SECONDS move from rows
(`revisions`) into compressed blocks (`revision_blocks`), one hour of one
sequence per block.

Each (sequence, hour) is one short transaction: delete the hour's rows
(DELETE ... RETURNING), merge what that returned with the hour's block if there
is one (late values), write the block. Killed anywhere, a value is either still a row
or already in its committed block, never both and never neither. The row a
sequence's latest-value pointer names is never compacted, so the latest value
stays a primary-key look-up. Rollups are untouched: they count values wherever
they live.

PostgreSQL: the block row is locked (SELECT ... FOR UPDATE) first, so two
compactors serialize on an hour that has a block, and the primary key refuses a
second new block (that compactor's transaction rolls back and it moves on). A late
value committed meanwhile is either deleted into the block or stays a row, and
`revisions.append` checks new rows against the blocks, so a redelivered value is
never stored twice. SQLite: the transaction takes the write lock first (BEGIN
IMMEDIATE), so nothing writes in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import starmap
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.storage import blocks
from hub.storage.codec import Value
from hub.storage.models import Resource, Revision, RevisionBlock, Sequence

log = logging.getLogger("hub.storage.compaction")

Sessions = Callable[[], AbstractContextManager[Session]]


@dataclass
class Report:
    values: int = 0
    blocks: int = 0
    seconds: float = 0.0
    skipped: list[tuple[int, int]] = field(default_factory=list)  # (sequence, span) left as rows


def compact(sessions: Sessions, before_us: int, *, time_budget_s: float | None = None,
            resource_ids: list[int] | None = None) -> Report:
    """Pack every whole hour ending at or before `before_us`, sequence by sequence.
    Stops early (what is done stays done) once `time_budget_s` is spent."""
    t0 = time.monotonic()
    rep = Report()
    if resource_ids is None:
        with sessions() as s:
            resource_ids = list(s.scalars(select(Sequence.resource_id).order_by(Sequence.resource_id)))
    for rid in resource_ids:
        after = -1
        while True:
            if time_budget_s is not None and time.monotonic() - t0 > time_budget_s:
                rep.seconds = time.monotonic() - t0
                return rep
            span: int | None = None
            try:
                with sessions() as s:
                    begin(s)
                    span = _next_span(s, rid, after, before_us)
                    n = 0 if span is None else compact_span(s, rid, span)
            except IntegrityError as e:  # another compactor made this hour's block first
                log.info("sequence %d: another compactor was first (%s); moving on", rid, e.orig)
                if span is None:
                    raise
                n = 0
            if span is None:
                break
            if n < 0:
                rep.skipped.append((rid, span))
            else:
                rep.values += n
                rep.blocks += n > 0
            after = span + blocks.SPAN_US - 1
    rep.seconds = time.monotonic() - t0
    return rep


def _next_span(s: Session, rid: int, after: int, before_us: int) -> int | None:
    latest = select(Resource.last_revision_id).where(Resource.id == rid).scalar_subquery()
    first = s.scalar(select(func.min(Revision.timestamp_us)).where(
        Revision.resource_id == rid, Revision.timestamp_us > after, Revision.timestamp_us < before_us,
        Revision.id != func.coalesce(latest, -1)))
    if first is None:
        return None
    span = blocks.span_of(int(first))
    return span if span + blocks.SPAN_US <= before_us else None


def begin(s: Session) -> None:
    """SQLite: take the write lock now, so no other writer commits between our reads and writes."""
    if s.get_bind().dialect.name == "sqlite":
        s.connection().exec_driver_sql("BEGIN IMMEDIATE")


_DELETE = ("DELETE FROM revisions WHERE resource_id = {p} AND timestamp_us >= {p} AND timestamp_us < {p} "
           "AND id != {p} RETURNING timestamp_us, num, text, data, bulk_key, size")


def _delete_rows(s: Session, rid: int, span: int, keep_id: int) -> list[tuple[Any, ...]]:
    """Delete the hour's rows but `keep_id`; return them (time, num, text, data, bulk key, size).
    Straight through the driver's cursor, on the session's connection and transaction: an hour
    is thousands of rows, and result rows here cost more than all the rest of compaction."""
    conn = s.connection()
    cur = conn.connection.cursor()
    try:
        sql = _DELETE.format(p="%s" if conn.dialect.name == "postgresql" else "?")
        cur.execute(sql, (rid, span, span + blocks.SPAN_US, keep_id))
        return list(cur.fetchall())
    finally:
        cur.close()


def compact_span(s: Session, rid: int, span: int) -> int:
    """Move the rows of (rid, span) into its block, in the caller's transaction (on
    SQLite begun with `begin`). The rows are deleted first (DELETE ... RETURNING), so
    the block gets exactly the rows removed, whatever commits meanwhile. Returns how
    many values moved, or -1 when the hour's block is damaged (its rows stay rows)."""
    q = select(RevisionBlock).where(RevisionBlock.resource_id == rid, RevisionBlock.span_us == span)
    existing = s.scalar(q.with_for_update() if s.get_bind().dialect.name == "postgresql" else q)
    old = None
    if existing is not None:
        old = blocks.unpack(s, rid, existing)
        if old is None:
            return -1
    latest = s.scalar(select(Resource.last_revision_id).where(Resource.id == rid))
    rows = _delete_rows(s, rid, span, latest if latest is not None else -1)
    if not rows:
        return 0
    rows.sort()  # by time: timestamps are distinct within a sequence
    merged = list(starmap(Value, rows))
    if old is not None:
        have = set(old.times)
        merged = sorted(old.values() + [v for v in merged if v.timestamp_us not in have],
                        key=lambda v: v.timestamp_us)
    blocks.write(s, rid, span, merged, existing=existing)
    return len(rows)
