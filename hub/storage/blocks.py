"""Reading compacted values (table `revision_blocks`, bytes by `hub.storage.codec`).

A block holds every compacted value of one sequence in one aligned span of
SPAN_US; blocks of a sequence never overlap, so they are read in span order.
Values of a span that arrive after it was compacted stay rows until the next
compaction folds them into the block (`hub.storage.compaction`); readers merge
rows and blocks (`revisions.history`).

A block that does not decode is logged (sequence and span) and remembered for
/health (`corrupt`), and readers go on without it.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from hub.storage import codec
from hub.storage.codec import Value
from hub.storage.models import Resource, RevisionBlock
from hub.storage.values import iso

log = logging.getLogger("hub.storage.blocks")

SPAN_US = 3600 * 1_000_000  # one hour: 3,600 values per block at 1 Hz
_PAGE = 8  # blocks fetched per query while reading in order

_lock = threading.Lock()
_corrupt: dict[tuple[str, int, int], dict[str, object]] = {}  # (database, sequence, span) ->


def span_of(ts_us: int) -> int:
    return ts_us - ts_us % SPAN_US


@dataclass
class Meta:
    span_us: int
    first_us: int
    last_us: int
    count: int
    min: float | None
    max: float | None
    sum: float | None


def corrupt(database: str | None = None) -> list[dict[str, object]]:
    """Blocks this process found damaged (in `database`, a URL as `Database.safe_url`
    renders it): sequence, span, error (for /health)."""
    with _lock:
        return [dict(v) for k, v in sorted(_corrupt.items()) if database is None or k[0] == database]


def _report(s: Session, rid: int, b: RevisionBlock, error: str) -> None:
    r = s.get(Resource, rid)
    entry: dict[str, object] = {"sequence": r.path if r is not None else f"#{rid}", "resource_id": rid,
                                "first": iso(b.first_us), "last": iso(b.last_us), "count": b.count,
                                "error": error[:200]}
    key = (s.connection().engine.url.render_as_string(hide_password=True), rid, b.span_us)
    with _lock:
        known = key in _corrupt
        _corrupt[key] = entry
    if not known:
        log.error("compacted block of sequence %s (id %d) from %s to %s (%d values) is corrupt: %s; "
                  "reading the rest of its history without it", entry["sequence"], rid, entry["first"],
                  entry["last"], b.count, error)


def unpack(s: Session, rid: int, b: RevisionBlock) -> codec.Decoded | None:
    """The block's values in time order (as columns), or None (reported) when it is damaged."""
    try:
        return codec.decode(b.data)
    except codec.CorruptBlock as e:
        _report(s, rid, b, str(e))
        return None


def _overlapping(rid: int, start_us: int | None, end_us: int | None):
    q = select(RevisionBlock).where(RevisionBlock.resource_id == rid)
    if start_us is not None:
        q = q.where(RevisionBlock.span_us > start_us - SPAN_US, RevisionBlock.last_us >= start_us)
    if end_us is not None:
        q = q.where(RevisionBlock.span_us < end_us, RevisionBlock.first_us < end_us)
    return q


def metas(s: Session, rid: int, start_us: int | None = None, end_us: int | None = None) -> list[Meta]:
    """What the blocks overlapping [start, end) hold, without their bytes."""
    b = RevisionBlock
    q = _overlapping(rid, start_us, end_us).with_only_columns(
        b.span_us, b.first_us, b.last_us, b.count, b.min, b.max, b.sum).order_by(b.span_us)
    return [Meta(*row) for row in s.execute(q)]


def _blocks_in_order(s: Session, rid: int, start_us: int | None, end_us: int | None,
                     newest_first: bool) -> Iterator[codec.Decoded]:
    """The decoded blocks overlapping [start, end), oldest (or newest) first, a few per query."""
    edge: int | None = None
    size = 2  # most reads want the newest block or two; then a few more per query
    while True:
        q = _overlapping(rid, start_us, end_us)
        if edge is not None:
            q = q.where(RevisionBlock.span_us < edge if newest_first else RevisionBlock.span_us > edge)
        q = q.order_by(RevisionBlock.span_us.desc() if newest_first else RevisionBlock.span_us).limit(size)
        page = list(s.scalars(q))
        for b in page:
            dec = unpack(s, rid, b)
            if dec is not None:
                yield dec
        if len(page) < size:
            return
        edge, size = page[-1].span_us, _PAGE


def _bounds(times: list[int], start_us: int | None, end_us: int | None) -> tuple[int, int]:
    lo = 0 if start_us is None else bisect_left(times, start_us)
    hi = len(times) if end_us is None else bisect_left(times, end_us)
    return lo, hi


def in_order(s: Session, rid: int, start_us: int | None, end_us: int | None,
             newest_first: bool) -> Iterator[list[Value]]:
    """Values in [start, end) block by block, oldest (or newest) block first; each list
    in time order. Fetches blocks as the caller asks for more."""
    for dec in _blocks_in_order(s, rid, start_us, end_us, newest_first):
        lo, hi = _bounds(dec.times, start_us, end_us)
        if hi > lo:
            yield dec.values(lo, hi)


def take(s: Session, rid: int, start_us: int | None, end_us: int | None, newest_first: bool,
         count: int) -> list[Value]:
    """The first `count` compacted values of [start, end) in the order asked for."""
    out: list[Value] = []
    for dec in _blocks_in_order(s, rid, start_us, end_us, newest_first):
        lo, hi = _bounds(dec.times, start_us, end_us)
        need = count - len(out)
        if newest_first:
            vals = dec.values(max(lo, hi - need), hi)
            vals.reverse()
        else:
            vals = dec.values(lo, min(hi, lo + need))
        out.extend(vals)
        if len(out) >= count:
            break
    return out


def values_in(s: Session, rid: int, start_us: int | None, end_us: int | None) -> Iterator[Value]:
    for vals in in_order(s, rid, start_us, end_us, newest_first=False):
        yield from vals


def numbers_in(s: Session, rid: int, start_us: int | None,
               end_us: int | None) -> Iterator[tuple[list[int], list[float | None]]]:
    """(times, numbers) of the compacted values in [start, end), block by block (None: not a number)."""
    for dec in _blocks_in_order(s, rid, start_us, end_us, newest_first=False):
        lo, hi = _bounds(dec.times, start_us, end_us)
        if hi <= lo:
            continue
        if dec.nums is not None:
            yield dec.times[lo:hi], list(dec.nums[lo:hi])
        else:
            yield dec.times[lo:hi], [v.num for v in dec.values(lo, hi)]


def compacted(s: Session, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of these (resource id, timestamp) are already inside a block."""
    by_span: dict[tuple[int, int], set[int]] = {}
    for rid, ts in pairs:
        by_span.setdefault((rid, span_of(ts)), set()).add(ts)
    if not by_span:
        return set()
    found = list(s.scalars(select(RevisionBlock).where(
        tuple_(RevisionBlock.resource_id, RevisionBlock.span_us).in_(sorted(by_span)))))
    out: set[tuple[int, int]] = set()
    for b in found:
        wanted = by_span.get((b.resource_id, b.span_us))
        if not wanted or not any(b.first_us <= t <= b.last_us for t in wanted):
            continue
        dec = unpack(s, b.resource_id, b)
        out.update((b.resource_id, ts) for ts in (dec.times if dec is not None else []) if ts in wanted)
    return out


def aggregates(vals: list[Value]) -> tuple[float | None, float | None, float | None]:
    """min, max, sum when every value is a number (the rollups may then use them), else None."""
    nums = [v.num for v in vals]
    if not nums or any(n is None for n in nums):
        return None, None, None
    fs = [float(n) for n in nums if n is not None]
    return min(fs), max(fs), sum(fs)


def drop_through(s: Session, rid: int, cutoff_us: int) -> list[str]:
    """Remove compacted values at or before `cutoff_us` (trimming); returns the bulk keys
    they held. A damaged block wholly before the cutoff goes (its bulk objects, if any,
    stay orphaned); one straddling it is kept whole."""
    keys: list[str] = []
    for b in list(s.scalars(select(RevisionBlock).where(RevisionBlock.resource_id == rid,
                                                        RevisionBlock.first_us <= cutoff_us))):
        whole = b.last_us <= cutoff_us
        # a block of numbers holds no bulk keys: one wholly before the cutoff goes undecoded
        dec = None if whole and b.sum is not None else unpack(s, rid, b)
        vals = dec.values() if dec is not None else []
        keys.extend(v.bulk_key for v in vals if v.bulk_key and v.timestamp_us <= cutoff_us)
        if whole:
            s.execute(delete(RevisionBlock).where(RevisionBlock.resource_id == rid,
                                                  RevisionBlock.span_us == b.span_us))
        elif dec is not None:
            write(s, rid, b.span_us, [v for v in vals if v.timestamp_us > cutoff_us], existing=b)
    return keys


def write(s: Session, rid: int, span_us: int, vals: list[Value], *, existing: RevisionBlock | None) -> None:
    """Store `vals` (time order, non-empty) as the block of (rid, span), replacing `existing`."""
    lo, hi, total = aggregates(vals)
    fields = {"first_us": vals[0].timestamp_us, "last_us": vals[-1].timestamp_us, "count": len(vals),
              "min": lo, "max": hi, "sum": total, "data": codec.encode(vals)}
    if existing is None:
        s.add(RevisionBlock(resource_id=rid, span_us=span_us, **fields))
    else:
        for k, v in fields.items():
            setattr(existing, k, v)
    s.flush()
