"""Storage layer throughput and read latency, on SQLite and PostgreSQL.

    .venv/bin/python bench/storage.py [--rows 1000000] [--skip-pg]

For each database: revisions appended per second through `revisions.append`
(one transaction per batch of 1, 100 and 1000), then a sequence of `--rows`
revisions is loaded and we time "latest value" (the pointer look-up) and a
1000-point downsample over the whole range, and a 1000-row history page.
PostgreSQL runs in a throw-away cluster with fsync and synchronous_commit ON
(durable, as in production). The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # not bench/: its http.py would shadow http

from sqlalchemy import insert  # noqa: E402

from hub.storage import resources, revisions, rollups, users  # noqa: E402
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="revisions in the history-read sequence")
    ap.add_argument("--skip-pg", action="store_true", help="SQLite only")
    ap.add_argument("--append-scale", type=float, default=1.0,
                    help="scale the appended revisions (2,000 / 50,000 / 200,000 for batches of 1/100/1000)")
    args = ap.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        figures.update(run("sqlite", f"sqlite:///{tmp}/bench.db", args.rows, args.append_scale))
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
            finally:
                cluster.destroy()
    if "pg_batch1000_per_s" in figures:
        figures["pg_batch1000_vs_batch1"] = figures["pg_batch1000_per_s"] / figures["pg_batch1_per_s"]
    figures["sqlite_batch1000_vs_batch1"] = figures["sqlite_batch1000_per_s"] / figures["sqlite_batch1_per_s"]
    print(" ".join(f"{k}={v:.3f}" if v < 100 else f"{k}={v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
