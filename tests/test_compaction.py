"""Compacted history: old values move from rows into compressed blocks and every
read gives the same answer as before, bit for bit; late and redelivered values are
stored once; trimming, faults and damaged blocks leave the rest readable."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from hub.storage import blocks, codec, compaction, resources, revisions, rollups, users
from hub.storage.bulk import open_bulk
from hub.storage.codec import Value
from hub.storage.db import Database
from hub.storage.models import Revision, RevisionBlock, Rollup
from hub.storage.resources import SequenceSpec
from hub.storage.revisions import NewRevision
from hub.storage.store import Store
from hub.storage.values import Encoded, iso
from tests.support.compaction import compact_db
from tests.support.settings import clean_env

ROOT = Path(__file__).resolve().parent.parent
SEC = 1_000_000
HOUR = 3600 * SEC
T0 = 1_700_000_000 * SEC - 1_700_000_000 * SEC % HOUR + 123 * SEC  # a little after an hour edge


def _bits(x: float | None) -> bytes | None:
    return None if x is None else struct.pack("<d", x)


def _key(v: Value) -> tuple:
    return (v.timestamp_us, _bits(v.num), v.text, v.data, v.bulk_key, v.size)


def _walk(seed: int, n: int, *, jitter: bool = True) -> list[tuple[int, float]]:
    rnd, x, out = random.Random(seed), 20.0, []
    for i in range(n):
        x = round(x + rnd.gauss(0, 0.3), 2)
        out.append((T0 + i * SEC + (rnd.randint(-50_000, 50_000) if jitter else 0), x))
    return out


def _sequence(db: Database, name: str = "t", data_type: str = "numeric") -> int:
    with db.session() as s:
        if resources.find(s, "acme") is None:
            users.create_organization(s, "acme")
        return resources.create(s, f"acme/{name}", "sequence", sequence=SequenceSpec(data_type=data_type)).id


def _append(db: Database, rid: int, points: list[tuple[int, float]]) -> None:
    for i in range(0, len(points), 2000):
        with db.session() as s:
            revisions.append(s, [NewRevision(rid, t, num=v, size=8) for t, v in points[i:i + 2000]])


def _everything(db: Database, rid: int) -> list[tuple]:
    with db.session() as s:
        return [_key(v) for v in revisions.history(s, rid, count=10**7, newest_first=False)]


def _reads(db: Database, rid: int) -> dict[str, object]:
    """The answers every reader gives: ranges both ways with limits, downsamples, the time range."""
    with db.session() as s:
        def h(**kw: object) -> list[tuple]:
            return [_key(v) for v in revisions.history(s, rid, **kw)]  # type: ignore[arg-type]

        def d(start: int, end: int, points: int) -> list[tuple]:
            return [(b.start_us, b.count, b.min, b.max, round(b.mean or 0, 9))
                    for b in revisions.downsample(s, rid, start, end, points)]

        return {"all": h(count=10**7, newest_first=False), "desc": h(count=5000),
                "middle": h(start_us=T0 + 4000 * SEC + 17, end_us=T0 + 9000 * SEC, count=3000, newest_first=False),
                "before": h(end_us=T0 + 7777 * SEC, count=1234),
                "down_fine": d(T0 + 1000 * SEC + 5, T0 + 5000 * SEC, 500),  # 8 s buckets: the values
                "down_coarse": d(T0 - 3 * SEC, T0 + 13000 * SEC, 100),  # rollups and partial ends
                "range": revisions.time_range(s, rid)}


def test_codec_round_trip_is_bit_exact() -> None:
    rnd = random.Random(7)
    cases = [
        [Value(T0 + i * SEC, v) for i, (_, v) in enumerate(_walk(1, 5000))],  # decimal: scaled integers
        [Value(T0 + i * 997, rnd.uniform(-1e300, 1e300)) for i in range(3000)],  # XOR'd floats
        [Value(T0 + i, x) for i, x in enumerate([0.0, -0.0, 5e-324, -1.5, 1e308, 0.1 + 0.2, 2.0 ** 60, 3.0])],
        [Value(T0, 42.0)],
        [Value(T0 + i, float(i), size=0) for i in range(10)],  # rows written without a size
        [Value(T0, text="héllo ☃"), Value(T0 + 1, text=""), Value(T0 + 5, data=b"\x00\xff", size=2),
         Value(T0 + 9, bulk_key="rev/1/9-ab", size=123456), Value(T0 + 10, num=1.25),
         Value(T0 + 11, text='{"a":[1,2]}')],
    ]
    for vals in cases:
        assert [_key(v) for v in codec.decode(codec.encode(vals)).values()] == [_key(v) for v in vals]
    blob = codec.encode(cases[0])
    assert len(blob) < 5 * len(cases[0])  # a few bytes a value
    for bad in (blob[:-3], blob[:20] + bytes(len(blob) - 20), b"", b"junk"):
        with pytest.raises(codec.CorruptBlock):
            codec.decode(bad)


def test_compaction_moves_old_values_and_every_read_gives_the_same_answer(db: Database) -> None:
    rid = _sequence(db)
    points = _walk(2, 14_000)
    _append(db, rid, points)
    before = _reads(db, rid)
    rep = compact_db(db, before_us=T0 + 11_000 * SEC)  # hours that ended by then: mixed blocks and rows
    assert rep.values > 9000 and rep.blocks >= 3
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(Revision).where(Revision.resource_id == rid))
        packed = s.scalar(select(func.sum(RevisionBlock.count)).where(RevisionBlock.resource_id == rid))
        latest = revisions.latest(s, resources.get(s, "acme/t"))
    assert rows + packed == len(points) and rows > 1000 and packed == rep.values
    assert latest is not None and latest.timestamp_us == points[-1][0]
    assert _reads(db, rid) == before
    compact_db(db)  # all of it (but the latest value, which stays a row)
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(Revision).where(Revision.resource_id == rid))
    assert rows == 1
    assert _reads(db, rid) == before


def test_late_value_for_a_compacted_hour_is_stored_once_and_read_in_order(db: Database) -> None:
    rid = _sequence(db)
    points = _walk(3, 8000, jitter=False)
    _append(db, rid, points)
    compact_db(db)
    late = T0 + 100 * SEC + 500_000  # between two compacted values
    with db.session() as s:
        assert revisions.append(s, [NewRevision(rid, late, num=-7.25, size=8)]) == 1
    for step in ("as a row", "folded into its block"):
        with db.session() as s:
            got = [(v.timestamp_us, v.num) for v in revisions.history(s, rid, start_us=T0 + 99 * SEC, count=4,
                                                                        newest_first=False)]
        assert got == [points[99], points[100], (late, -7.25), points[101]], step
        assert len(_everything(db, rid)) == len(points) + 1
        rep = compact_db(db)
    assert rep.values == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Revision).where(Revision.resource_id == rid)) == 1
        n = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resource_id == rid, Rollup.width_s == 60))
    assert n == len(points) + 1


def test_redelivered_values_already_compacted_are_not_stored_again(db: Database) -> None:
    rid = _sequence(db)
    points = _walk(4, 6000)
    _append(db, rid, points)
    compact_db(db)
    before = _reads(db, rid)
    with db.session() as s:  # a controller's buffer sent again days later, mixed with one new value
        again = [NewRevision(rid, t, num=v + 1, size=8) for t, v in points[1000:3000]]
        assert revisions.append(s, again + [NewRevision(rid, T0 - 5 * SEC, num=1.0, size=8)]) == 1
        assert revisions.append(s, [NewRevision(rid, points[42][0], num=0.0, size=8)]) == 0  # one at a time too
    after = _reads(db, rid)
    assert after["all"] == sorted(before["all"] + [(T0 - 5 * SEC, _bits(1.0), None, None, None, 8)])  # type: ignore[operator]
    compact_db(db)
    assert _reads(db, rid)["all"] == after["all"]
    with db.session() as s:
        n = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resource_id == rid, Rollup.width_s == 3600))
    assert n == len(points) + 1


def test_text_images_and_bulk_values_compact_and_trim_frees_their_objects(db: Database, tmp_path: Path) -> None:
    store = Store(db, open_bulk(f"file://{tmp_path / 'bulk'}"), bulk_threshold=50)
    rid = _sequence(db, "log", "text")
    rnd = random.Random(5)
    texts = [("x" * rnd.randint(0, 80)) + f" ✓ {i}" for i in range(400)]
    with db.session() as s:
        revisions.append(s, [store.new_revision(rid, T0 + i * 30 * SEC, Encoded(text=t))
                             for i, t in enumerate(texts)])
    keys = _bulk_keys(db, rid)
    assert 50 < len(keys) < 400
    before = _everything(db, rid)
    compact_db(db)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Revision).where(Revision.resource_id == rid)) == 1
        vals = revisions.history(s, rid, count=1000, newest_first=False)
        assert [store.value("text", v) for v in vals] == texts
    assert _everything(db, rid) == before
    with db.session() as s:
        freed = revisions.trim(s, rid, 100)
    for key in freed:
        store.bulk.delete(key)
    with db.session() as s:
        vals = revisions.history(s, rid, count=1000, newest_first=False)
        assert [store.value("text", v) for v in vals] == texts[-100:]
    kept = {v.bulk_key for v in vals if v.bulk_key}
    assert set(freed) == keys - kept and freed
    for key in kept:
        assert store.bulk.get(key)


def _bulk_keys(db: Database, rid: int) -> set[str]:
    with db.session() as s:
        return {v.bulk_key for v in revisions.history(s, rid, count=10**6) if v.bulk_key}


@pytest.mark.parametrize("keep", [1, 2500, 5999, 7000, 9000])
def test_trim_over_compacted_and_recent_values_keeps_exactly_the_newest(db: Database, keep: int) -> None:
    rid = _sequence(db)
    points = _walk(6, 9000)
    _append(db, rid, points)
    compact_db(db, before_us=T0 + 6000 * SEC)
    with db.session() as s:
        revisions.trim(s, rid, keep)
    kept = points[-keep:]
    assert [t for t, *_ in _everything(db, rid)] == [t for t, _ in kept]
    with db.session() as s:
        for width in rollups.WIDTHS_S:
            n, lo, hi = s.execute(select(func.sum(Rollup.count), func.min(Rollup.min), func.max(Rollup.max))
                                  .where(Rollup.resource_id == rid, Rollup.width_s == width)).one()
            assert (n, lo, hi) == (keep, min(v for _, v in kept), max(v for _, v in kept))


def test_rollup_rebuild_counts_compacted_values(db: Database) -> None:
    rid = _sequence(db)
    _append(db, rid, _walk(8, 9000))
    q = select(Rollup.width_s, Rollup.bucket_us, Rollup.count, Rollup.min, Rollup.max, Rollup.sum).order_by(
        Rollup.width_s, Rollup.bucket_us)
    with db.session() as s:
        kept = s.execute(q).all()
    compact_db(db)
    with db.session() as s:
        rollups.rebuild(s, rid)
    with db.session() as s:
        rebuilt = s.execute(q).all()
    assert [r[:5] for r in rebuilt] == [r[:5] for r in kept]
    assert all(math.isclose(a[5], b[5], rel_tol=1e-12, abs_tol=1e-9) for a, b in zip(rebuilt, kept, strict=True))


def test_an_aborted_compaction_leaves_every_value_a_row(db: Database) -> None:
    rid = _sequence(db)
    points = _walk(9, 5000)
    _append(db, rid, points)
    before = _everything(db, rid)
    with pytest.raises(RuntimeError), db.session() as s:
        compaction.begin(s)
        assert compaction.compact_span(s, rid, blocks.span_of(T0)) > 0
        raise RuntimeError("the process dies before the commit")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RevisionBlock)) == 0
    assert _everything(db, rid) == before


def test_compaction_killed_mid_way_leaves_every_value_once(db: Database, database_url: str) -> None:
    rids = [_sequence(db, f"s{i}") for i in range(4)]
    expected = {}
    for i, rid in enumerate(rids):
        points = _walk(10 + i, 30_000, jitter=True)
        _append(db, rid, points)
        expected[rid] = _everything(db, rid)
    code = ("import sys; from hub.storage import compaction; from hub.storage.db import Database; "
            "db = Database(sys.argv[1]); compaction.compact(db.session, 2**62)")
    proc = subprocess.Popen([sys.executable, "-c", code, database_url], cwd=ROOT, env=clean_env(),
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:  # kill it once it has committed some blocks but not all
            with db.session() as s:
                n = s.scalar(select(func.count()).select_from(RevisionBlock))
            if n >= 3 or proc.poll() is not None:
                break
            assert time.monotonic() < deadline, "the compaction committed nothing"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    with db.session() as s:
        total_blocks = s.scalar(select(func.count()).select_from(RevisionBlock))
    assert 3 <= total_blocks < 4 * 9 or proc.returncode == 0
    for rid in rids:
        assert _everything(db, rid) == expected[rid]
    compact_db(db)
    for rid in rids:
        assert _everything(db, rid) == expected[rid]


def test_two_compactors_at_once_store_every_value_once(db: Database) -> None:
    rids = [_sequence(db, f"c{i}") for i in range(3)]
    expected = {}
    for i, rid in enumerate(rids):
        _append(db, rid, _walk(20 + i, 12_000))
        expected[rid] = _everything(db, rid)
    reports: list[compaction.Report] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(compaction.compact(db.session, 2**62))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors and len(reports) == 2
    assert sum(r.values for r in reports) == 3 * (12_000 - 1)
    for rid in rids:
        assert _everything(db, rid) == expected[rid]


def test_redelivery_while_compacting_stores_each_value_once(db: Database) -> None:
    """A controller's buffer is sent again while the compactor moves those very hours:
    whichever commits first, each value is in a row or a block, once, and counted once."""
    rid = _sequence(db, "race")
    points = _walk(30, 7200, jitter=False)  # two hours
    _append(db, rid, points)
    expected = _everything(db, rid)
    errors: list[BaseException] = []

    def redeliver() -> None:
        try:
            for _ in range(3):
                for i in range(0, len(points), 500):
                    with db.session() as s:
                        revisions.append(s, [NewRevision(rid, t, num=v, size=8) for t, v in points[i:i + 500]])
        except BaseException as e:  # surfaced below
            errors.append(e)

    th = threading.Thread(target=redeliver)
    th.start()
    try:
        compact_db(db)
    finally:
        th.join(timeout=600)
    assert not errors
    compact_db(db)
    assert _everything(db, rid) == expected
    with db.session() as s:
        for width in rollups.WIDTHS_S:
            n = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resource_id == rid, Rollup.width_s == width))
            assert n == len(points)


def test_a_corrupt_block_is_reported_and_the_rest_stays_readable(db: Database,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    rid = _sequence(db, "damaged")
    points = _walk(11, 4 * 3600)
    _append(db, rid, points)
    compact_db(db)
    span = blocks.span_of(T0) + HOUR
    with db.session() as s:
        s.execute(update(RevisionBlock).where(RevisionBlock.resource_id == rid, RevisionBlock.span_us == span)
                  .values(data=b"\x28\xb5\x2f\xfd" + bytes(40)))
    with caplog.at_level(logging.ERROR, logger="hub.storage.blocks"), db.session() as s:
        got = [v.timestamp_us for v in revisions.history(s, rid, count=10**6, newest_first=False)]
        buckets = revisions.downsample(s, rid, T0, T0 + 4 * HOUR, 4)
    lost = [t for t, _ in points if span <= t < span + HOUR and t != points[-1][0]]
    assert got == [t for t, _ in points if t not in set(lost)]
    assert sum(b.count for b in buckets) == len(points)  # the rollups still count them
    entry = next(e for e in blocks.corrupt() if e["resource_id"] == rid and e["sequence"] == "acme/damaged")
    assert entry["sequence"] == "acme/damaged" and entry["count"] == len(lost)
    assert entry["first"] == iso(lost[0]) and entry["last"] == iso(lost[-1])
    assert any("acme/damaged" in r.getMessage() and str(entry["first"]) in r.getMessage() for r in caplog.records)
