"""Import throughput of `run.py --import-rhizo`, against the hub's own `--import` of the same data.

    .venv/bin/python bench/rhizo_import.py [--revisions 100000] [--skip-pg]

Builds a rhizo-server-shaped PostgreSQL database (tests/support/rhizo_db.py: two
organizations, users, controllers, keys, permissions, and `--revisions` values, nearly all
in one numeric sequence) on a throw-away cluster, imports it into an empty SQLite hub
and (unless --skip-pg) an empty PostgreSQL hub on the same cluster; then the same data
built as a SQLite file (rhizo-server's default database) into another empty SQLite hub
(`sqlite_source_import_per_s`). The baseline, measured
in the same run: the organization exported with `run.py --export` and imported into an
empty SQLite hub with `run.py --import` (hub/transfer.py: the hub's own bulk path). Prints
revisions imported per second and the ratio; the last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # not bench/: its http.py would shadow http

from hub import transfer  # noqa: E402
from hub.rhizo_import import importer  # noqa: E402
from hub.storage.bulk import open_bulk  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.store import Store  # noqa: E402
from tests.support.pg import PgCluster, find_pg_bindir  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.rhizo_db import build  # noqa: E402


def store_at(url: str, folder: Path, name: str) -> Store:
    migrate(url)
    return Store(Database(url), open_bulk(f"file://{folder / (name + '-bulk')}"), bulk_threshold=16384)


def timed_import(store: Store, source_url: str) -> tuple[int, float]:
    t = time.perf_counter()
    summary = importer.run(store, source_url)
    return summary.created["revisions"], time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--revisions", type=int, default=100_000)
    p.add_argument("--skip-pg", action="store_true", help="import into SQLite only")
    args = p.parse_args()
    bindir = find_pg_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found: the rhizo-server source needs PostgreSQL", file=sys.stderr)
        return 1
    figures: dict[str, float] = {}
    cluster = PgCluster(bindir, free_port())
    with tempfile.TemporaryDirectory(prefix="hub-bench-rhizo-") as tmp:
        folder = Path(tmp)
        try:
            cluster.init()
            cluster.start()
            source_url = cluster.create_database("rhizo")
            t = time.perf_counter()
            build(source_url, revisions=args.revisions)
            print(f"rhizo-server database with {args.revisions:,} revisions built in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)

            lite = store_at(f"sqlite:///{folder / 'hub.db'}", folder, "hub")
            n, secs = timed_import(lite, source_url)
            figures["rhizo_import_per_s"] = n / secs
            print(f"--import-rhizo into SQLite:     {n:,} revisions in {secs:6.2f} s = {n / secs:10,.0f} rev/s",
                  flush=True)
            if not args.skip_pg:
                pg = store_at(cluster.create_database("hub"), folder, "hub-pg")
                n_pg, secs = timed_import(pg, source_url)
                figures["pg_rhizo_import_per_s"] = n_pg / secs
                print(f"--import-rhizo into PostgreSQL: {n_pg:,} revisions in {secs:6.2f} s = "
                      f"{n_pg / secs:10,.0f} rev/s", flush=True)
                pg.close()

            lite_source = f"sqlite:///{folder / 'rhizo.db'}"
            build(lite_source, revisions=args.revisions)
            from_lite = store_at(f"sqlite:///{folder / 'hub-from-sqlite.db'}", folder, "hub-from-sqlite")
            n_lite, secs = timed_import(from_lite, lite_source)
            from_lite.close()
            figures["sqlite_source_import_per_s"] = n_lite / secs
            print(f"--import-rhizo from SQLite into SQLite: {n_lite:,} revisions in {secs:6.2f} s = "
                  f"{n_lite / secs:10,.0f} rev/s", flush=True)

            export = folder / "lab1.jsonl"
            transfer.export_org(lite, "lab1", str(export))
            lite.close()
            base = store_at(f"sqlite:///{folder / 'baseline.db'}", folder, "baseline")
            t = time.perf_counter()
            counts = transfer.import_org(base, str(export))
            secs = time.perf_counter() - t
            base.close()
            figures["transfer_import_per_s"] = counts["revisions"] / secs
            print(f"baseline --import (hub export) into SQLite: {counts['revisions']:,} revisions in "
                  f"{secs:6.2f} s = {counts['revisions'] / secs:10,.0f} rev/s", flush=True)
        finally:
            cluster.destroy()
    figures["rhizo_vs_transfer_import"] = figures["rhizo_import_per_s"] / figures["transfer_import_per_s"]
    last = {"rhizo_import_per_s": figures.pop("rhizo_import_per_s"), "revisions": float(n), **figures}
    print(" ".join(f"{k}={v:.3f}" if v < 100 else f"{k}={v:.0f}" for k, v in last.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
