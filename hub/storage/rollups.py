"""Per-minute and per-hour aggregates of numeric revisions (table `revision_rollups`).

`revisions.append` calls `add` with the rows it actually inserted (a redelivered
duplicate is not counted twice), in the same transaction. Compaction moves values
into blocks without touching the rollups: they count values wherever they live. `downsample` reads
the coarsest level whose width fits the requested bucket width and reads raw
revisions only for the partial levels at the two ends of the range, so a
1000-point chart over a million revisions reads ~17k rollup rows.

Bucket edges inside the range are aligned to the rollup width: a rollup bucket
counts wholly toward the chart bucket holding its start. Counts, min, max and
mean over the whole range are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.storage import blocks
from hub.storage.models import Revision, Rollup

WIDTHS_S = (3600, 60)  # coarsest first


@dataclass
class Agg:
    count: int
    min: float
    max: float
    sum: float

    def merge(self, other: Agg) -> None:
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sum += other.sum


def _bucket(ts_us: int, width_s: int) -> int:
    w = width_s * 1_000_000
    return ts_us - ts_us % w


def add(s: Session, rows: Iterable[tuple[int, int, float | None]]) -> None:
    """Fold newly inserted (resource_id, timestamp_us, num) rows into the rollups."""
    aggs: dict[tuple[int, int, int], Agg] = {}
    for rid, ts, num in rows:
        if num is None:
            continue
        for width in WIDTHS_S:
            key = (rid, width, _bucket(ts, width))
            a = aggs.get(key)
            if a is None:
                aggs[key] = Agg(1, num, num, num)
            else:
                a.merge(Agg(1, num, num, num))
    if not aggs:
        return
    is_pg = s.get_bind().dialect.name == "postgresql"
    ins = (postgresql.insert if is_pg else sqlite.insert)(Rollup)
    lo, hi = (func.least, func.greatest) if is_pg else (func.min, func.max)
    stmt = ins.on_conflict_do_update(
        index_elements=["resource_id", "width_s", "bucket_us"],
        set_={"count": Rollup.count + ins.excluded.count, "min": lo(Rollup.min, ins.excluded.min),
              "max": hi(Rollup.max, ins.excluded.max), "sum": Rollup.sum + ins.excluded.sum})
    # sorted keys: concurrent persisters lock rollup rows in the same order (no deadlock)
    s.execute(stmt, [{"resource_id": k[0], "width_s": k[1], "bucket_us": k[2], "count": a.count,
                      "min": a.min, "max": a.max, "sum": a.sum} for k, a in sorted(aggs.items())])


def _agg(n: Any, lo: Any, hi: Any, total: Any) -> Agg:
    return Agg(int(n), float(lo), float(hi), float(total))


def _raw(s: Session, rid: int, start_us: int, end_us: int, origin: int, width: int) -> dict[int, Agg]:
    """Aggregates of the values themselves (rows and compacted blocks) in [start, end)."""
    bucket = ((Revision.timestamp_us - origin) // width).label("b")
    q = (select(bucket, func.count(Revision.num), func.min(Revision.num), func.max(Revision.num),
                func.sum(Revision.num))
         .where(and_(Revision.resource_id == rid, Revision.timestamp_us >= start_us,
                     Revision.timestamp_us < end_us, Revision.num.is_not(None)))
         .group_by(bucket))
    out = {int(b): _agg(n, lo, hi, total) for b, n, lo, hi, total in s.execute(q) if n}
    for b, agg in _packed(s, rid, start_us, end_us, origin, width):
        if b in out:
            out[b].merge(agg)
        else:
            out[b] = agg
    return out


def _packed(s: Session, rid: int, start_us: int, end_us: int, origin: int,
            width: int) -> Iterator[tuple[int, Agg]]:
    """Per-bucket aggregates of compacted values: a block wholly inside one bucket
    counts by its own min/max/sum, others are decoded."""
    metas = blocks.metas(s, rid, start_us, end_us)
    opened = []
    for m in metas:
        b = (m.first_us - origin) // width
        if m.sum is not None and m.first_us >= start_us and m.last_us < end_us and \
                (m.last_us - origin) // width == b and m.min is not None and m.max is not None:
            yield b, Agg(m.count, m.min, m.max, m.sum)
        else:
            opened.append(m)
    for m in opened:
        for times, nums in blocks.numbers_in(s, rid, max(start_us, m.span_us),
                                             min(end_us, m.span_us + blocks.SPAN_US)):
            yield from _runs(times, nums, origin, width)


def _runs(times: list[int], nums: list[float | None], origin: int, width: int) -> Iterator[tuple[int, Agg]]:
    """Per-bucket aggregates of time-ordered values: each bucket is one run."""
    cur, agg = None, None
    for t, x in zip(times, nums, strict=True):
        if x is None:
            continue
        b = (t - origin) // width
        if b != cur:
            if agg is not None:
                yield cur, agg  # type: ignore[misc]
            cur, agg = b, Agg(1, x, x, x)
        else:
            assert agg is not None
            agg.count += 1
            agg.sum += x
            if x < agg.min:
                agg.min = x
            elif x > agg.max:
                agg.max = x
    if agg is not None:
        yield cur, agg  # type: ignore[misc]


def _rolled(s: Session, rid: int, level: int, start_us: int, end_us: int, origin: int,
            width: int) -> dict[int, Agg]:
    bucket = ((Rollup.bucket_us - origin) // width).label("b")
    q = (select(bucket, func.sum(Rollup.count), func.min(Rollup.min), func.max(Rollup.max), func.sum(Rollup.sum))
         .where(Rollup.resource_id == rid, Rollup.width_s == level,
                Rollup.bucket_us >= start_us, Rollup.bucket_us < end_us)
         .group_by(bucket))
    return {int(b): _agg(n, lo, hi, total) for b, n, lo, hi, total in s.execute(q)}


def downsample(s: Session, rid: int, start_us: int, end_us: int, width: int) -> dict[int, Agg]:
    """Bucket index -> aggregate, buckets of `width` µs from `start_us`."""
    level = next((w for w in WIDTHS_S if w * 1_000_000 <= width), None)
    if level is None:
        return _raw(s, rid, start_us, end_us, start_us, width)
    lw = level * 1_000_000
    a = -(-start_us // lw) * lw  # first aligned bucket at or after start
    b = end_us - end_us % lw  # last aligned edge at or before end
    if a >= b:
        return _raw(s, rid, start_us, end_us, start_us, width)
    out = _rolled(s, rid, level, a, b, start_us, width)
    for part in (_raw(s, rid, start_us, a, start_us, width), _raw(s, rid, b, end_us, start_us, width)):
        for i, agg in part.items():
            if i in out:
                out[i].merge(agg)
            else:
                out[i] = agg
    return out


def after_trim(s: Session, rid: int, cutoff_us: int) -> None:
    """Revisions at or before `cutoff_us` were deleted: drop rollups wholly before
    it and recompute the bucket it falls in from what is left."""
    for width in WIDTHS_S:
        edge = _bucket(cutoff_us, width)
        s.execute(delete(Rollup).where(Rollup.resource_id == rid, Rollup.width_s == width,
                                       Rollup.bucket_us <= edge))
        w = width * 1_000_000
        left = _raw(s, rid, edge, edge + w, edge, w).get(0)
        if left is not None:
            s.add(Rollup(resource_id=rid, width_s=width, bucket_us=edge, count=left.count,
                         min=left.min, max=left.max, sum=left.sum))


def rebuild(s: Session, rid: int) -> None:
    """Recompute a sequence's rollups from its values, rows and compacted (after
    loading rows without `revisions.append`, e.g. a bulk COPY)."""
    s.execute(delete(Rollup).where(Rollup.resource_id == rid))
    for width in WIDTHS_S:
        us = width * 1_000_000
        bucket = (Revision.timestamp_us - Revision.timestamp_us % us).label("bucket")
        q = (select(bucket, func.count(Revision.num), func.min(Revision.num), func.max(Revision.num),
                    func.sum(Revision.num))
             .where(Revision.resource_id == rid, Revision.num.is_not(None)).group_by(bucket))
        aggs = {int(b): _agg(n, lo, hi, total) for b, n, lo, hi, total in s.execute(q)}
        for b, agg in _packed(s, rid, 0, 2**62, 0, us):
            if b * us in aggs:
                aggs[b * us].merge(agg)
            else:
                aggs[b * us] = agg
        rows = [{"resource_id": rid, "width_s": width, "bucket_us": b, "count": a.count, "min": a.min,
                 "max": a.max, "sum": a.sum} for b, a in sorted(aggs.items())]
        if rows:
            s.execute(insert(Rollup), rows)
