"""`run.py --import-rhizo DATABASE_URL [--bulk S3_URL]`: a rhizo-server installation's
data into the hub, in one transaction.

The source is read in one read-only snapshot; the hub is written in one transaction, so a
failure anywhere (a bad source, a path conflict, a lost connection, Ctrl-C) leaves the
hub's database as it was, and running the command again starts over. Large values are
put in the hub's bulk storage before the rows that point at them: a failed run may leave
unreferenced objects there, never a row without its value.
"""

from __future__ import annotations

from typing import IO

from sqlalchemy import Connection

from hub.errors import BadRequest, NotFound
from hub.rhizo_import import source
from hub.rhizo_import.history import History, storage_path
from hub.rhizo_import.source import SrcResource
from hub.rhizo_import.writer import Summary, Writer
from hub.storage import changes
from hub.storage.bulk import Bulk, LocalBulk, open_bulk
from hub.storage.store import Store


def run(store: Store, source_url: str, *, bulk_url: str = "", bulk_endpoint_url: str = "", bulk_region: str = "",
        progress: IO[str] | None = None) -> Summary:
    bulk = open_bulk(bulk_url, endpoint_url=bulk_endpoint_url, region=bulk_region) if bulk_url else None
    summary = Summary()
    with source.open_source(source_url) as conn:
        total, in_bulk = source.revision_counts(conn)
        if in_bulk and bulk is None:
            raise BadRequest(f"{in_bulk} of the {total} revisions keep their value in rhizo-server's bulk storage: "
                             "pass --bulk s3://BUCKET (rhizo's S3_STORAGE_BUCKET); nothing was imported")
        if bulk is not None:
            _check_bulk(conn, bulk, bulk_url, _bulk_orgs(source.resources(conn)))
        rows = source.resources(conn)
        _say(progress, f"rhizo-server database: {len(rows)} resources, {total} revisions ({in_bulk} in bulk storage)")
        with store.session() as s, changes.taken_at_the_end(s):  # followers see them at the commit
            w = Writer(s, summary)
            w.write_users(source.users(conn))
            w.write_tree(rows)
            w.finish_controllers()
            w.write_memberships(source.memberships(conn))
            w.write_permissions(rows)
            w.write_keys(source.keys(conn))
            w.write_statuses(source.statuses(conn))
            w.write_watchdogs()
            _say(progress, "structure written; copying the history")
            History(store, s, summary, w.targets, _bulk_orgs(rows), bulk).copy(conn, total, progress)
            w.restore_modified()
    return summary


SAMPLE = 20


def _check_bulk(conn: Connection, bulk: Bulk, url: str, orgs: dict[int, int]) -> None:
    """Refuse (before anything is written) a bulk storage that holds none of a sample of the
    values the database keeps there: the wrong bucket, folder or prefix. A local folder
    must exist (it is read, never created)."""
    if isinstance(bulk, LocalBulk) and not bulk.root.is_dir():
        raise BadRequest(f"--bulk {url}: no such folder; give rhizo-server's bulk storage folder; "
                         "nothing was imported")
    bulk.check()
    sample = source.bulk_keys(conn, SAMPLE)
    found = 0
    for rid, rev_id in sample:
        try:
            bulk.get(storage_path(orgs.get(rid, 0), rid, rev_id))
            found += 1
        except NotFound:
            continue
    if sample and not found:
        rid, rev_id = sample[0]
        raise BadRequest(f"--bulk {url} holds none of {len(sample)} values the database keeps in bulk storage "
                         f"(e.g. {storage_path(orgs.get(rid, 0), rid, rev_id)}): check the bucket, folder or "
                         "prefix (rhizo's S3_STORAGE_BUCKET); nothing was imported")


def _bulk_orgs(rows: list[SrcResource]) -> dict[int, int]:
    """rhizo resource id -> the organization id in its bulk storage paths: its
    `organization_id`, or its root's id when that is empty (as rhizo did)."""
    parent = {r.id: r.parent_id for r in rows}
    out: dict[int, int] = {}
    for r in rows:
        if r.organization_id:
            out[r.id] = r.organization_id
            continue
        root, seen = r.id, 0
        while parent.get(root) is not None and seen < 100:
            root, seen = parent[root], seen + 1  # type: ignore[assignment]
        out[r.id] = root
    return out


def _say(progress: IO[str] | None, line: str) -> None:
    if progress is not None:
        progress.write(line + "\n")
        progress.flush()


def describe(summary: Summary) -> list[str]:
    """The summary's lines, for the command's output."""
    lines = ["created: " + (", ".join(f"{n} {what}" for what, n in sorted(summary.created.items())) or "nothing")]
    if summary.existing:
        lines.append("already in the hub (left as they were): "
                     + ", ".join(f"{n} {what}" for what, n in sorted(summary.existing.items())))
    if summary.skipped:
        lines.append("not imported: " + ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items())))
    if summary.slow_keys:
        lines.append(f"{summary.slow_keys} keys are still kept as bcrypt (rhizo never saw them used since it moved "
                     "to SHA-512): each is checked once at its first use, so a controller's first MQTT connection "
                     "with one is refused and its retry accepted")
    lines.extend(f"  note: {n}" for n in summary.notes)
    return lines
