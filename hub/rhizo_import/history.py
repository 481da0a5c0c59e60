"""The whole revision history of rhizo-server's files and sequences, into the hub.

rhizo kept a value in its `resource_revisions.data` column, or, when it was large (1000
bytes and more) and bulk storage was on, in S3 under
`<org id>/<id[-9:-6]>/<id[-6:-3]>/<id[-3:]>/<resource id>_<revision id>` (the resource id
zero-padded to 9 digits) with `data` NULL. Values are streamed from the source, each
resource's in time order, encoded for the hub's sequence, and appended in batches with
`revisions.append` (one statement per batch; large values to the hub's bulk storage first,
through `Store.new_revision`). A value the hub already has (same resource and instant) is
not written again, so a second run adds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from hub.errors import BadValue, NotFound
from hub.progress import Progress
from hub.rhizo_import import mapping, source
from hub.rhizo_import.writer import Summary, Target
from hub.storage import revisions, values
from hub.storage.bulk import Bulk
from hub.storage.models import ResourceType
from hub.storage.revisions import NewRevision
from hub.storage.store import Store

BATCH = 2000


def storage_path(org_id: int, resource_id: int, revision_id: int) -> str:
    """Where rhizo-server kept a large value in its bulk storage."""
    id_str = f"{resource_id:09d}"
    return f"{org_id}/{id_str[-9:-6]}/{id_str[-6:-3]}/{id_str[-3:]}/{resource_id}_{revision_id}"


class History:
    def __init__(self, store: Store, s: Session, summary: Summary, targets: dict[int, Target],
                 org_of: dict[int, int], bulk: Bulk | None) -> None:
        self.store, self.s, self.summary, self.bulk = store, s, summary, bulk
        self.targets = {rid: t for rid, t in targets.items()
                        if t.type in (ResourceType.FILE.value, ResourceType.SEQUENCE.value)}
        self.org_of = org_of  # rhizo resource id -> the organization id rhizo filed its bulk values under
        self.batch: list[NewRevision] = []

    def copy(self, conn: Connection, total: int, progress: IO[str] | None) -> None:
        bar = Progress("import rhizo-server history", total, progress)
        current: int | None = None
        target: Target | None = None
        have: set[int] = set()
        previous: int | None = None
        for rid, rev_id, ts, data in source.revisions(conn, sorted(self.targets)):
            if rid != current:
                current, target, previous = rid, self.targets[rid], None
                have = self._stored(target)
            assert target is not None
            previous = mapping.timestamps_us(previous, ts)
            bar.advance()
            if previous in have:
                self.summary.existing["revisions"] += 1
                continue
            self._add(target, rid, rev_id, previous, data)
        self._flush()
        bar.done()

    def _stored(self, target: Target) -> set[int]:
        """The instants the hub already has for a resource it had before this run."""
        if not target.preexisting:
            return set()
        return revisions.timestamps(self.s, target.id)  # rows and compacted blocks

    def _add(self, target: Target, rid: int, rev_id: int, ts_us: int, data: bytes | None) -> None:
        if data is None:
            data = self._bulk_value(rid, rev_id)
            if data is None:
                return
        if target.sequence is None:  # a file: its bytes as they are
            enc = values.Encoded(data=data)
        else:
            value = mapping.sequence_value(target.sequence.data_type, data)
            try:
                if value is None:
                    raise BadValue("not a number")
                enc = values.encode(target.sequence, value)
            except BadValue:
                self.summary.skipped[f"values a {target.sequence.data_type} sequence cannot hold"] += 1
                self.summary.note(f"/{target.path} at {_iso(ts_us)}: {data[:40]!r} left out")
                return
        self.batch.append(self.store.new_revision(target.id, ts_us, enc))
        if len(self.batch) >= BATCH:
            self._flush()

    def _bulk_value(self, rid: int, rev_id: int) -> bytes | None:
        key = storage_path(self.org_of[rid], rid, rev_id)
        if self.bulk is None:  # checked up front; kept for type narrowing
            raise NotFound(f"rhizo bulk value {key}: no --bulk storage given")
        try:
            blob = self.bulk.get(key)
        except NotFound:
            self.summary.skipped["values missing from rhizo's bulk storage"] += 1
            self.summary.note(f"bulk object {key} is missing")
            return None
        self.summary.created["values read from rhizo's bulk storage"] += 1
        return blob

    def _flush(self) -> None:
        if self.batch:
            self.summary.created["revisions"] += revisions.append(self.s, self.batch)
            self.batch = []


def _iso(us: int) -> str:
    return values.iso(us) if us >= 0 else datetime.min.isoformat()
