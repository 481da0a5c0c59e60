"""Storage layer throughput and read latency, on SQLite and PostgreSQL.

    .venv/bin/python bench/storage.py [--rows 1000000] [--compact-values 1000000] [--skip-pg]

For each database: revisions appended per second through `revisions.append`
(one transaction per batch of 1, 100 and 1000), then a sequence of `--rows`
revisions is loaded and we time "latest value" (the pointer look-up) and a
1000-point downsample over the whole range, and a 1000-row history page.

Compacted history, in a database of its own: `--compact-values` values of 10
sequences at 1 Hz (timestamps jittered by up to 50 ms, values a random walk
rounded to 2 decimals, as sensors report them) are stored through
`revisions.append`; we measure bytes per value (table, indexes and TOAST, from
the database's own size functions: pg_total_relation_size, SQLite's dbstat),
then compact everything and measure again (after VACUUM FULL, so freed row space
is not counted), the compaction rate, and the same reads before and after: 10,000
raw values from the middle of one sequence and a 1,000-point downsample over its
whole range.

PostgreSQL runs in a throw-away cluster with fsync and synchronous_commit ON
(durable, as in production). The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # not bench/: its http.py would shadow http

from sqlalchemy import insert, text  # noqa: E402

from hub.storage import compaction, resources, revisions, rollups, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Revision  # noqa: E402
from hub.storage.resources import SequenceSpec  # noqa: E402
from hub.storage.revisions import NewRevision  # noqa: E402

T0 = 1_700_000_000_000_000  # microseconds


def timed_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `fn` in milliseconds."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def append_rate(db: Database, rid: int, batch: int, total: int, start_us: int) -> float:
    t = time.perf_counter()
    ts = start_us
    for _ in range(total // batch):
        items = [NewRevision(rid, ts + i, num=float(i % 100)) for i in range(batch)]
        ts += batch
        with db.session() as s:
            revisions.append(s, items)
    return (total // batch) * batch / (time.perf_counter() - t)


def bulk_load(db: Database, rid: int, rows: int) -> None:
    """Load `rows` revisions fast (multi-row inserts), one per second of simulated time."""
    chunk = 20_000
    t = time.perf_counter()
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        with db.session() as s:
            s.execute(insert(Revision), [
                {"resource_id": rid, "timestamp_us": T0 + (start + i) * 1_000_000, "num": float((start + i) % 1000),
                 "size": 8} for i in range(n)])
        print(f"\r  loading {start + n:,}/{rows:,} rows", end="", file=sys.stderr, flush=True)
    with db.session() as s:
        revisions.touch_latest(s, [rid])
        rollups.rebuild(s, rid)
    print(f"\r  loaded {rows:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def run(label: str, url: str, rows: int, append_scale: float = 1.0) -> dict[str, float]:
    migrate(url)
    db = Database(url)
    out: dict[str, float] = {}
    try:
        with db.session() as s:
            users.create_organization(s, "bench")
            r_app = resources.create(s, "bench/append", "sequence", sequence=SequenceSpec())
            r_big = resources.create(s, "bench/big", "sequence", sequence=SequenceSpec())
            app_id, big_id = r_app.id, r_big.id
        for batch, total in ((1, 2_000), (100, 50_000), (1000, 200_000)):
            total = max(batch, int(total * append_scale))
            rate = append_rate(db, app_id, batch, total, T0 + batch * 10**9)
            out[f"{label}_batch{batch}_per_s"] = rate
            print(f"{label}: append batch {batch:>4}: {rate:>10,.0f} revisions/s")
        bulk_load(db, big_id, rows)
        if label == "pg":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE revisions")

        def latest() -> None:
            with db.session() as s:
                rev = revisions.latest(s, resources.get(s, "bench/big"))
                assert rev is not None and rev.timestamp_us == T0 + (rows - 1) * 1_000_000

        def downsample() -> None:
            with db.session() as s:
                buckets = revisions.downsample(s, big_id, T0, T0 + rows * 1_000_000, 1000)
                assert 990 <= len(buckets) <= 1000, len(buckets)

        def page() -> None:
            with db.session() as s:
                assert len(revisions.history(s, big_id, start_us=T0 + rows // 2 * 1_000_000, count=1000)) == 1000

        out[f"{label}_latest_ms"] = timed_ms(latest, 200)
        out[f"{label}_downsample_ms"] = timed_ms(downsample, 15)
        out[f"{label}_page1000_ms"] = timed_ms(page, 30)
        print(f"{label}: latest value (path + pointer): {out[f'{label}_latest_ms']:.3f} ms median")
        print(f"{label}: 1000 points out of {rows:,}:      {out[f'{label}_downsample_ms']:.1f} ms median")
        print(f"{label}: 1000-row history page:            {out[f'{label}_page1000_ms']:.1f} ms median")
    finally:
        db.dispose()
    return out


SEQUENCES = 10
_TABLES = ("revisions", "revision_blocks")


def history_bytes(db: Database) -> int:
    """Bytes of the history tables with their indexes (and TOAST), as the database counts them."""
    with db.session() as s:
        if db.engine.dialect.name == "postgresql":
            return sum(int(s.scalar(text(f"SELECT pg_total_relation_size('{t}')"))) for t in _TABLES)
        names = [n for (n,) in s.execute(text(
            "SELECT name FROM sqlite_master WHERE tbl_name IN ('revisions', 'revision_blocks')"))]
        return sum(int(s.scalar(text("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :n"), {"n": n}))
                   for n in names)


def vacuum(db: Database) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        if db.engine.dialect.name == "postgresql":
            for t in _TABLES:
                c.exec_driver_sql(f"VACUUM FULL ANALYZE {t}")
        else:
            c.exec_driver_sql("VACUUM")


def load_sensors(db: Database, total: int) -> list[int]:
    """`total` values over SEQUENCES sequences at 1 Hz, jittered, random walks of 2 decimals."""
    rnd = random.Random(42)
    with db.session() as s:
        users.create_organization(s, "site")
        rids = [resources.create(s, f"site/s{i}", "sequence", sequence=SequenceSpec(decimal_places=2)).id
                for i in range(SEQUENCES)]
    per = total // SEQUENCES
    walk = [20.0] * SEQUENCES
    t = time.perf_counter()
    for start in range(0, per, 1000):
        items = []
        for k, rid in enumerate(rids):
            for i in range(start, min(per, start + 1000)):
                walk[k] = round(walk[k] + rnd.choice((-0.01, 0.0, 0.01)) * rnd.randint(0, 5), 2)
                items.append(NewRevision(rid, T0 + i * 1_000_000 + rnd.randint(-50_000, 50_000),
                                         num=walk[k], size=8))
        with db.session() as s:
            revisions.append(s, items)
        print(f"\r  loading {(start + 1000) * SEQUENCES:,}/{total:,} values", end="", file=sys.stderr, flush=True)
    print(f"\r  loaded {per * SEQUENCES:,} values in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return rids


def compacted_run(label: str, url: str, total: int) -> dict[str, float]:
    migrate(url)
    db = Database(url)
    out: dict[str, float] = {}
    per = total // SEQUENCES
    try:
        rids = load_sensors(db, total)
        vacuum(db)
        rid, mid = rids[3], T0 + per // 2 * 1_000_000 - 500_000  # between two values

        def reads(tag: str) -> None:
            def raw() -> None:
                with db.session() as s:
                    got = revisions.history(s, rid, start_us=mid, count=10_000, newest_first=False)
                    assert len(got) == min(10_000, per - per // 2), len(got)

            def down() -> None:
                with db.session() as s:
                    buckets = revisions.downsample(s, rid, T0 - 1_000_000, T0 + per * 1_000_000, 1000)
                    assert sum(b.count for b in buckets) == per

            out[f"{label}_{tag}range_10k_ms"] = timed_ms(raw, 15)
            out[f"{label}_{tag}downsample_ms"] = timed_ms(down, 15)

        out[f"{label}_bytes_per_value"] = history_bytes(db) / total
        reads("")
        t = time.perf_counter()
        rep = compaction.compact(db.session, T0 + (per + 7200) * 1_000_000)
        seconds = time.perf_counter() - t
        assert rep.values == total - SEQUENCES and not rep.skipped, rep  # all but each latest value
        out[f"{label}_compact_per_s"] = rep.values / seconds
        vacuum(db)
        out[f"{label}_bytes_per_value_compacted"] = history_bytes(db) / total
        reads("compacted_")
        out[f"{label}_size_cut"] = out[f"{label}_bytes_per_value"] / out[f"{label}_bytes_per_value_compacted"]
        print(f"{label}: {total:,} values: {out[f'{label}_bytes_per_value']:.1f} bytes/value as rows, "
              f"{out[f'{label}_bytes_per_value_compacted']:.2f} compacted ({out[f'{label}_size_cut']:.0f}x less); "
              f"{rep.blocks} blocks in {seconds:.1f} s ({out[f'{label}_compact_per_s']:,.0f} values/s)")
        for tag, name in (("range_10k_ms", "10,000 raw values"), ("downsample_ms", "1000-point downsample")):
            print(f"{label}: {name}: {out[f'{label}_{tag}']:.1f} ms as rows, "
                  f"{out[f'{label}_compacted_{tag}']:.1f} ms compacted (median)")
    finally:
        db.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="revisions in the history-read sequence")
    ap.add_argument("--skip-pg", action="store_true", help="SQLite only")
    ap.add_argument("--compact-values", type=int, default=1_000_000,
                    help="values of the compacted-history data set (10 sequences at 1 Hz)")
    ap.add_argument("--append-scale", type=float, default=1.0,
                    help="scale the appended revisions (2,000 / 50,000 / 200,000 for batches of 1/100/1000)")
    args = ap.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        figures.update(run("sqlite", f"sqlite:///{tmp}/bench.db", args.rows, args.append_scale))
        figures.update(compacted_run("sqlite", f"sqlite:///{tmp}/compact.db", args.compact_values))
    if not args.skip_pg:
        from tests.support.pg import PgCluster, find_pg_bindir
        from tests.support.ports import free_port

        bindir = find_pg_bindir()
        if bindir is None:
            print("PostgreSQL binaries not found: skipping PostgreSQL", file=sys.stderr)
        else:
            cluster = PgCluster(bindir, free_port())
            try:
                cluster.init()
                with open(cluster.datadir / "postgresql.conf", "a") as f:
                    f.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nshared_buffers = 256MB\n")
                cluster.start()
                figures.update(run("pg", cluster.create_database("bench"), args.rows, args.append_scale))
                figures.update(compacted_run("pg", cluster.create_database("compact"), args.compact_values))
            finally:
                cluster.destroy()
    if "pg_batch1000_per_s" in figures:
        figures["pg_batch1000_vs_batch1"] = figures["pg_batch1000_per_s"] / figures["pg_batch1_per_s"]
    figures["sqlite_batch1000_vs_batch1"] = figures["sqlite_batch1000_per_s"] / figures["sqlite_batch1_per_s"]
    for db in ("sqlite", "pg"):  # against this run's own baselines, whatever the machine's load
        if f"{db}_compact_per_s" in figures:
            figures[f"{db}_compact_vs_batch1000"] = figures[f"{db}_compact_per_s"] / figures[f"{db}_batch1000_per_s"]
            for read in ("range_10k_ms", "downsample_ms"):
                figures[f"{db}_compacted_vs_rows_{read[:-3]}"] = \
                    figures[f"{db}_compacted_{read}"] / figures[f"{db}_{read}"]
    if "pg_bytes_per_value" in figures:  # the headline figures, PostgreSQL's
        figures["compact_per_s"] = figures["pg_compact_per_s"]
        figures["compacted_range_10k_ms"] = figures["pg_compacted_range_10k_ms"]
        figures["compacted_downsample_ms"] = figures["pg_compacted_downsample_ms"]
    print(" ".join(f"{k}={v:.3f}" if v < 100 else f"{k}={v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
