"""Revisions: batched appends, latest value, history ranges, downsampling.

A sequence's values live as rows (`revisions`) and, once old, in compacted
blocks (`blocks.py`, `compaction.py`); reads here merge both, so callers do not
notice where a value lives. Uploading large values to bulk storage happens in
`store.py` before these functions run, so a row never points at a missing object.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.storage import blocks, rollups
from hub.storage.codec import Value
from hub.storage.models import Resource, Revision, RevisionBlock, utcnow


@dataclass
class NewRevision:
    resource_id: int
    timestamp_us: int
    num: float | None = None
    text: str | None = None
    data: bytes | None = None
    bulk_key: str | None = None
    size: int = 0


@dataclass
class Bucket:
    start_us: int
    count: int
    min: float | None
    max: float | None
    mean: float | None


def _insert(s: Session):
    dialect = s.get_bind().dialect.name
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # the table, not the ORM entity: a Core insert skips the ORM's per-row bookkeeping
    return ins(cast(Table, Revision.__table__)).on_conflict_do_nothing(
        index_elements=["resource_id", "timestamp_us"])


# PostgreSQL: one statement whose parameters are seven arrays. Its text never changes (psycopg
# and the server parse it once), unlike a multi-row VALUES list: about 3x cheaper per row.
_PG_UNNEST = text(
    "INSERT INTO revisions (resource_id, timestamp_us, num, text, data, bulk_key, size) "
    "SELECT * FROM unnest(CAST(:rid AS integer[]), CAST(:ts AS bigint[]), "
    "CAST(:num AS double precision[]), CAST(:txt AS text[]), CAST(:data AS bytea[]), "
    "CAST(:bkey AS varchar[]), CAST(:size AS integer[])) "
    "ON CONFLICT (resource_id, timestamp_us) DO NOTHING "
    "RETURNING resource_id, timestamp_us, num")


def append(s: Session, items: Seq[NewRevision]) -> int:
    """Insert many revisions in one statement; a (resource, timestamp) that is
    already stored is skipped (redelivery). Returns how many were new. Keeps
    each touched resource's latest-revision pointer current."""
    if not items:
        return 0
    if len(items) > 1 and s.get_bind().dialect.name == "postgresql":
        new = s.execute(_PG_UNNEST, {
            "rid": [i.resource_id for i in items], "ts": [i.timestamp_us for i in items],
            "num": [None if i.num is None else float(i.num) for i in items],  # one type per array
            "txt": [i.text for i in items], "data": [i.data for i in items],
            "bkey": [i.bulk_key for i in items], "size": [i.size for i in items]}).all()
    else:
        rows = [i.__dict__ for i in items]
        stmt = _insert(s).returning(Revision.resource_id, Revision.timestamp_us, Revision.num)
        new = s.execute(stmt, rows).all() if len(rows) > 1 else s.execute(stmt, rows[0]).all()
    new = _not_compacted(s, list(new))
    rollups.add(s, ((rid, ts, num) for rid, ts, num in new))
    touch_latest(s, {i.resource_id for i in items})
    return len(new)


def _not_compacted(s: Session, new: list[Any]) -> list[Any]:
    """Inserted rows whose value is already inside a compacted block (a redelivery days
    later) are taken out again: a value is stored once, wherever it lives. Runs after
    the insert, in its transaction: a compaction that committed before it is seen."""
    dup = blocks.compacted(s, ((rid, ts) for rid, ts, _ in new))
    if not dup:
        return new
    for rid, ts in dup:
        s.execute(delete(Revision).where(Revision.resource_id == rid, Revision.timestamp_us == ts))
    return [row for row in new if (row[0], row[1]) not in dup]


def touch_latest(s: Session, resource_ids: Iterable[int]) -> None:
    ids = sorted(set(resource_ids))
    if not ids:
        return
    newest = (select(Revision.id).where(Revision.resource_id == Resource.id)
              .order_by(Revision.timestamp_us.desc()).limit(1).scalar_subquery())
    s.execute(update(Resource).where(Resource.id.in_(ids))
              .values(last_revision_id=newest, modified_at=utcnow()),
              execution_options={"synchronize_session": False})


def latest(s: Session, r: Resource) -> Revision | None:
    return s.get(Revision, r.last_revision_id) if r.last_revision_id else None


def get_at(s: Session, resource_id: int, revision_id: int) -> Revision | None:
    rev = s.get(Revision, revision_id)
    return rev if rev is not None and rev.resource_id == resource_id else None


_COLUMNS = (Revision.timestamp_us, Revision.num, Revision.text, Revision.data, Revision.bulk_key, Revision.size,
            Revision.id)


def history(s: Session, resource_id: int, *, start_us: int | None = None, end_us: int | None = None,
            count: int = 1000, newest_first: bool = True) -> list[Value]:
    """Up to `count` values in [start, end), newest (or oldest) first, rows and
    compacted blocks merged."""
    q = select(*_COLUMNS).where(Revision.resource_id == resource_id)
    if start_us is not None:
        q = q.where(Revision.timestamp_us >= start_us)
    if end_us is not None:
        q = q.where(Revision.timestamp_us < end_us)
    order = Revision.timestamp_us.desc() if newest_first else Revision.timestamp_us.asc()
    out = [Value(*row) for row in s.execute(q.order_by(order).limit(count))]
    packed = blocks.take(s, resource_id, start_us, end_us, newest_first, count)
    if not out:
        return packed
    if packed:
        out = sorted(out + packed, key=_time, reverse=newest_first)[:count]
    return out


def _time(v: Value) -> int:
    return v.timestamp_us


def timestamps(s: Session, resource_id: int) -> set[int]:
    """Every instant a resource has a value at, rows and compacted blocks alike."""
    out = set(s.scalars(select(Revision.timestamp_us).where(Revision.resource_id == resource_id)))
    for vals in blocks.in_order(s, resource_id, None, None, newest_first=False):
        out.update(v.timestamp_us for v in vals)
    return out


def time_range(s: Session, resource_id: int) -> tuple[int, int] | None:
    lo, hi = s.execute(select(func.min(Revision.timestamp_us), func.max(Revision.timestamp_us))
                       .where(Revision.resource_id == resource_id)).one()
    blo, bhi = s.execute(select(func.min(RevisionBlock.first_us), func.max(RevisionBlock.last_us))
                         .where(RevisionBlock.resource_id == resource_id)).one()
    los = [int(x) for x in (lo, blo) if x is not None]
    his = [int(x) for x in (hi, bhi) if x is not None]
    return (min(los), max(his)) if los else None


def downsample(s: Session, resource_id: int, start_us: int, end_us: int, points: int) -> list[Bucket]:
    """About `points` buckets over [start, end): count/min/max/mean of numeric
    values per bucket, from the rollups where they are fine enough (see
    `rollups.py`), else from the (resource, time) index."""
    width = max(1, -(-(end_us - start_us) // max(1, points)))
    aggs = rollups.downsample(s, resource_id, start_us, end_us, width)
    return [Bucket(start_us + i * width, a.count, a.min, a.max, a.sum / a.count)
            for i, a in sorted(aggs.items())]


def trim(s: Session, resource_id: int, keep: int) -> list[str]:
    """Delete all but the newest `keep` values (rows and compacted); returns bulk keys freed."""
    cutoff = _cutoff(s, resource_id, keep)
    if cutoff is None:
        return []
    if s.get_bind().dialect.name == "postgresql":  # blocks before rows, as compaction locks them
        s.execute(select(RevisionBlock.span_us).where(RevisionBlock.resource_id == resource_id,
                                                      RevisionBlock.first_us <= cutoff).with_for_update())
    old = and_(Revision.resource_id == resource_id, Revision.timestamp_us <= cutoff)
    keys = [k for k in s.scalars(select(Revision.bulk_key).where(old, Revision.bulk_key.is_not(None))) if k]
    s.execute(delete(Revision).where(old))
    keys += blocks.drop_through(s, resource_id, cutoff)
    rollups.after_trim(s, resource_id, cutoff)
    return keys


def _cutoff(s: Session, rid: int, keep: int) -> int | None:
    """The time of the (keep+1)-th newest value, or None when there are no more than `keep`."""
    row_cut = s.scalar(select(Revision.timestamp_us).where(Revision.resource_id == rid)
                       .order_by(Revision.timestamp_us.desc()).offset(keep).limit(1))
    newest_block = s.scalar(select(func.max(RevisionBlock.last_us)).where(RevisionBlock.resource_id == rid))
    if newest_block is None or (row_cut is not None and row_cut > newest_block):
        return row_cut  # every compacted value is older than it
    span = Revision.timestamp_us - Revision.timestamp_us % blocks.SPAN_US
    per_span: dict[int, int] = {int(sp): int(n) for sp, n in s.execute(
        select(span, func.count()).where(Revision.resource_id == rid).group_by(span))}
    for m in blocks.metas(s, rid):
        per_span[m.span_us] = per_span.get(m.span_us, 0) + m.count
    left = keep + 1
    for sp in sorted(per_span, reverse=True):
        if per_span[sp] < left:
            left -= per_span[sp]
            continue
        times = sorted([v.timestamp_us for v in blocks.values_in(s, rid, sp, sp + blocks.SPAN_US)] +
                       [int(t) for t in s.scalars(select(Revision.timestamp_us).where(
                           Revision.resource_id == rid, Revision.timestamp_us >= sp,
                           Revision.timestamp_us < sp + blocks.SPAN_US))], reverse=True)
        return times[left - 1] if len(times) >= left else None
    return None


def newest_id(s: Session) -> int:
    """The highest revision id (0 when none): moves whenever any value is
    stored, so readers can cache until it does."""
    return int(s.scalar(select(func.coalesce(func.max(Revision.id), 0))) or 0)


def latest_of(s: Session, resources_: Iterable[Resource]) -> dict[int, Revision]:
    """resource id -> latest revision, for many resources in one query."""
    ids = {r.last_revision_id: r.id for r in resources_ if r.last_revision_id}
    if not ids:
        return {}
    return {ids[rev.id]: rev for rev in s.scalars(select(Revision).where(Revision.id.in_(list(ids))))}
