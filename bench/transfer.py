"""Export / import throughput (`run.py --export ORG PATH`, `--import PATH`), on SQLite.

    .venv/bin/python bench/transfer.py [--rows 200000] [--bulk 200]

An organization with one numeric sequence of `--rows` revisions and one image sequence
of `--bulk` values of 32 KiB each (kept in a local bulk folder, so they are inlined into
the file) is exported to JSON lines, plain and gzip-compressed, then each file is
imported into an empty database. Prints revisions per second each way, the file size
in MB, and the ratios; the last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # not bench/: its http.py would shadow http

from sqlalchemy import insert  # noqa: E402

from hub import transfer  # noqa: E402
from hub.storage import resources, revisions, rollups, users, values  # noqa: E402
from hub.storage.bulk import open_bulk  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Revision  # noqa: E402
from hub.storage.resources import SequenceSpec  # noqa: E402
from hub.storage.store import Store  # noqa: E402

T0 = 1_700_000_000_000_000
BULK_SIZE = 32 * 1024


def store_at(folder: Path, name: str) -> Store:
    url = f"sqlite:///{folder / (name + '.db')}"
    migrate(url)
    return Store(Database(url), open_bulk(f"file://{folder / (name + '-bulk')}"), bulk_threshold=16384)


def populate(store: Store, rows: int, bulk: int) -> None:
    with store.session() as s:
        users.create_organization(s, "acme")
        temp = resources.create(s, "acme/temp", "sequence")
        cam = resources.create(s, "acme/cam", "sequence", sequence=SequenceSpec(data_type="image"))
        cam_spec = resources.sequence_of(s, cam)
    for start in range(0, rows, 20_000):
        batch = [{"resource_id": temp.id, "timestamp_us": T0 + i * 1_000_000, "num": (i % 1000) / 10,
                  "size": 8} for i in range(start, min(rows, start + 20_000))]
        with store.session() as s:
            s.execute(insert(Revision), batch)
    with store.session() as s:
        rollups.rebuild(s, temp.id)
        revisions.touch_latest(s, [temp.id])
    blob = os.urandom(BULK_SIZE)
    with store.session() as s:
        revisions.append(s, [store.new_revision(cam.id, T0 + i, values.encode(cam_spec, blob))
                             for i in range(bulk)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--bulk", type=int, default=200)
    args = p.parse_args()
    total = args.rows + args.bulk
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-transfer-") as tmp:
        folder = Path(tmp)
        src = store_at(folder, "src")
        populate(src, args.rows, args.bulk)
        for kind, name in (("plain", "acme.jsonl"), ("gz", "acme.jsonl.gz")):
            path = folder / name
            t = time.perf_counter()
            transfer.export_org(src, "acme", str(path))
            export_s = time.perf_counter() - t
            dst = store_at(folder, f"dst-{kind}")
            t = time.perf_counter()
            counts = transfer.import_org(dst, str(path))
            import_s = time.perf_counter() - t
            assert counts["revisions"] == total, counts
            dst.close()
            figures[f"{kind}_export_per_s"] = total / export_s
            figures[f"{kind}_import_per_s"] = total / import_s
            figures[f"{kind}_file_mb"] = path.stat().st_size / 1e6
            print(f"{kind:5}: export {total / export_s:10,.0f} rev/s  import {total / import_s:10,.0f} rev/s  "
                  f"file {path.stat().st_size / 1e6:8.1f} MB", flush=True)
        src.close()
    figures["gz_vs_plain_size"] = figures["gz_file_mb"] / figures["plain_file_mb"]
    figures["gz_vs_plain_export_time"] = figures["plain_export_per_s"] / figures["gz_export_per_s"]
    figures["import_vs_export_plain"] = figures["plain_import_per_s"] / figures["plain_export_per_s"]
    print(f"{args.rows:,} numeric revisions + {args.bulk} bulk values of {BULK_SIZE // 1024} KiB on SQLite")
    print(" ".join(f"{k}={v:.3f}" if v < 100 else f"{k}={v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
