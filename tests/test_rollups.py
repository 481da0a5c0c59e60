"""Rollups: downsampling long ranges from per-minute/hour aggregates gives the
same answer as the raw revisions, duplicates are not counted twice, trimming
keeps them true. Every test runs over rows and over compacted values."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from hub.storage import resources, revisions, rollups, users
from hub.storage.db import Database
from hub.storage.models import Rollup
from hub.storage.resources import SequenceSpec
from hub.storage.revisions import NewRevision
from tests.support.compaction import compact_db

T0 = 1_700_000_000_000_000 - 1_700_000_000_000_000 % 3_600_000_000  # an hour edge
SEC = 1_000_000


def _setup(db: Database) -> int:
    with db.session() as s:
        users.create_organization(s, "acme")
        return resources.create(s, "acme/t", "sequence", sequence=SequenceSpec()).id


@pytest.fixture(params=[False, True], ids=["rows", "compacted"])
def packed(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _load(db: Database, rid: int, n: int, step_us: int, packed: bool, seed: int = 1) -> list[tuple[int, float]]:
    rnd = random.Random(seed)
    points = [(T0 + 17 * SEC + i * step_us, round(rnd.uniform(-50, 50), 3)) for i in range(n)]
    for i in range(0, n, 700):  # several batches, buckets split across them
        with db.session() as s:
            revisions.append(s, [NewRevision(rid, ts, num=v) for ts, v in points[i:i + 700]])
    if packed:
        assert compact_db(db).values == n - 1  # all but the latest value
    return points


def _exact(points: list[tuple[int, float]], start: int, end: int, width: int) -> dict[int, tuple[int, float, float]]:
    out: dict[int, list[float]] = {}
    for ts, v in points:
        if start <= ts < end:
            out.setdefault((ts - start) // width, []).append(v)
    return {i: (len(vs), min(vs), max(vs)) for i, vs in out.items()}


def test_rollup_downsample_matches_raw_on_aligned_buckets(db: Database, packed: bool) -> None:
    rid = _setup(db)
    points = _load(db, rid, 6000, 7 * SEC, packed)  # ~11.7 hours, 7 s apart
    start, end = T0 + 3 * 3600 * SEC + 5 * SEC, T0 + 10 * 3600 * SEC + 123 * SEC  # unaligned ends
    with db.session() as s:
        got = revisions.downsample(s, rid, start, end, 60)
    width = -(-(end - start) // 60)
    assert width >= 60 * SEC
    exact = _exact(points, start, end, width)
    assert sum(b.count for b in got) == sum(c for c, _, _ in exact.values())
    assert min(b.min for b in got if b.min is not None) == min(lo for _, lo, _ in exact.values())
    assert max(b.max for b in got if b.max is not None) == max(hi for _, _, hi in exact.values())
    # 60 buckets of 7 min from a minute edge: the per-minute rollups answer, every bucket exact
    start, end = T0 + 3 * 3600 * SEC, T0 + 10 * 3600 * SEC
    with db.session() as s:
        got = revisions.downsample(s, rid, start, end, 60)
    width = (end - start) // 60
    exact = _exact(points, start, end, width)
    assert {(b.start_us - start) // width: (b.count, b.min, b.max) for b in got} == exact


def test_short_ranges_read_raw_revisions_exactly(db: Database, packed: bool) -> None:
    rid = _setup(db)
    points = _load(db, rid, 500, 1 * SEC, packed)
    start, end = T0 + 30 * SEC, T0 + 400 * SEC
    with db.session() as s:
        got = revisions.downsample(s, rid, start, end, 100)  # 3.7 s buckets: below any rollup
    width = -(-(end - start) // 100)
    assert {(b.start_us - start) // width: (b.count, b.min, b.max) for b in got} == _exact(points, start, end, width)


def test_redelivered_revisions_are_not_counted_twice(db: Database, packed: bool) -> None:
    rid = _setup(db)
    points = _load(db, rid, 300, 10 * SEC, packed)
    with db.session() as s:
        assert revisions.append(s, [NewRevision(rid, ts, num=v) for ts, v in points[:150]]) == 0
        total = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resource_id == rid, Rollup.width_s == 60))
    assert total == 300


def test_trim_keeps_rollups_true(db: Database, packed: bool) -> None:
    rid = _setup(db)
    points = _load(db, rid, 2000, 5 * SEC, packed)
    with db.session() as s:
        revisions.trim(s, rid, keep=777)
    kept = points[-777:]
    with db.session() as s:
        for width in rollups.WIDTHS_S:
            n, lo, hi = s.execute(select(func.sum(Rollup.count), func.min(Rollup.min), func.max(Rollup.max))
                                  .where(Rollup.resource_id == rid, Rollup.width_s == width)).one()
            assert (n, lo, hi) == (777, min(v for _, v in kept), max(v for _, v in kept))


def test_rebuild_gives_what_append_kept(db: Database, packed: bool) -> None:
    rid = _setup(db)
    _load(db, rid, 1500, 3 * SEC, packed)
    q = select(Rollup.width_s, Rollup.bucket_us, Rollup.count, Rollup.min, Rollup.max, Rollup.sum).order_by(
        Rollup.width_s, Rollup.bucket_us)
    with db.session() as s:
        kept = s.execute(q).all()
        rollups.rebuild(s, rid)
    with db.session() as s:
        rebuilt = s.execute(q).all()
    assert len(kept) > 20
    assert [r[:5] for r in rebuilt] == [r[:5] for r in kept]
    assert all(abs(a[5] - b[5]) < 1e-6 for a, b in zip(rebuilt, kept, strict=True))
