"""Export an organization's resources with their full history to a file, and
import such a file into another database (`run.py --export ORG PATH`,
`run.py --import PATH`).

The file is JSON lines (gzip-compressed when PATH ends in `.gz`; `-` is
stdout/stdin), one record per line, streamed both ways:

    {"kind": "header", "format": "hub-export", "version": 1, "organization": {...}, "counts": {...}}
    {"kind": "resource", "id": OLD_ID, "parent": OLD_ID|null, "path": ..., "sequence": {...}|null, ...}
    {"kind": "permission", "resource": OLD_ID, "subject": "organization"|"controller", ...}
    {"kind": "revision", "resource": OLD_ID, "t": MICROSECONDS, "num"|"text"|"data"|"bulk": ...}
    {"kind": "end", "counts": {...}}

Resources come parents first; `id`s are the source database's and are only
used to link records inside the file. Revisions come per resource, oldest
first, whether rows or compacted blocks hold them. Values kept in bulk storage are inlined
(`bulk`, base64) and uploaded again on import, so the file alone carries
everything. Deleted resources travel too (their history is history).

Not exported: users, memberships, permissions naming a user or another
organization, and API keys (secrets never leave the database; create new keys
for the controllers after an import). The import runs in one transaction: a
truncated or bad file changes nothing in the database (bulk objects uploaded
before the failure may remain, unreferenced).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import secrets
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Conflict
from hub.progress import Progress
from hub.storage import changes, revisions, users
from hub.storage.codec import Value
from hub.storage.models import (
    Organization,
    Permission,
    Resource,
    ResourceType,
    Revision,
    RevisionBlock,
    Sequence,
    utcnow,
)
from hub.storage.revisions import NewRevision
from hub.storage.store import Store

FORMAT, VERSION = "hub-export", 1
BATCH = 1000
_RESOURCE_COLUMNS = ("name", "path", "type", "deleted", "deleted_at", "created_at", "modified_at", "attributes")
_SEQUENCE_COLUMNS = ("data_type", "units", "min_value", "max_value", "decimal_places", "max_history")
_TYPES = {t.value for t in ResourceType}


def _dt(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def _parse_dt(v: Any) -> datetime | None:
    return datetime.fromisoformat(v) if v is not None else None


# --- export -----------------------------------------------------------------

def export_org(store: Store, org_name: str, path: str, *, progress: IO[str] | None = None) -> dict[str, int]:
    """Write organization `org_name` to `path` (atomically); return the counts."""
    if path == "-":
        return _export(store, org_name, sys.stdout, progress)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with _open_write(tmp, gz=target.name.endswith(".gz")) as out:
            counts = _export(store, org_name, out, progress)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def _open_write(path: Path, *, gz: bool) -> IO[str]:
    raw = cast(IO[bytes], gzip.open(path, "wb", compresslevel=6) if gz else open(path, "wb"))  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")


def _export(store: Store, org_name: str, out: IO[str], progress: IO[str] | None) -> dict[str, int]:
    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")

    with store.db.snapshot() as s:  # the header's counts and the records agree, live writers or not
        org = users.get_organization(s, org_name)
        rows = list(s.scalars(select(Resource).where(Resource.organization_id == org.id).order_by(Resource.id)))
        ids = [r.id for r in rows]
        specs = {q.resource_id: q for q in s.scalars(select(Sequence).where(Sequence.resource_id.in_(ids)))}
        perms = _own_permissions(s, org, ids)
        org_ids = select(Resource.id).where(Resource.organization_id == org.id)
        total = int(s.scalar(select(func.count()).select_from(Revision)
                             .where(Revision.resource_id.in_(org_ids))) or 0) + \
            int(s.scalar(select(func.coalesce(func.sum(RevisionBlock.count), 0))
                         .where(RevisionBlock.resource_id.in_(org_ids))) or 0)
        counts = {"resources": len(rows), "permissions": len(perms), "revisions": total}
        emit({"kind": "header", "format": FORMAT, "version": VERSION, "counts": counts,
              "organization": {"name": org.name, "full_name": org.full_name, "created_at": _dt(org.created_at)}})
        for r in _parents_first(rows):
            spec = specs.get(r.id)
            emit({"kind": "resource", "id": r.id, "parent": r.parent_id,
                  **{c: _dt(v) if isinstance(v := getattr(r, c), datetime) else v for c in _RESOURCE_COLUMNS},
                  "sequence": {c: getattr(spec, c) for c in _SEQUENCE_COLUMNS} if spec else None})
        for p in perms:
            emit({"kind": "permission", "resource": p.resource_id, "level": p.level,
                  "subject": "organization" if p.organization_id is not None else "controller",
                  "controller": p.controller_id})
        bar = Progress(f"export {org.name}", total, progress)
        for rid in sorted(ids):
            for rev in _values_of(s, rid):
                emit(_revision_record(store, rid, rev))
                bar.advance()
        bar.done()
        emit({"kind": "end", "counts": counts})
    return counts


def _own_permissions(s: Session, org: Organization, ids: list[int]) -> list[Permission]:
    """Permissions on the org's folders whose subject is the org itself or one of its controllers."""
    own = set(ids)
    return [p for p in s.scalars(select(Permission).where(Permission.resource_id.in_(ids)).order_by(Permission.id))
            if p.organization_id == org.id or (p.controller_id is not None and p.controller_id in own)]


def _parents_first(rows: list[Resource]) -> Iterator[Resource]:
    by_parent: dict[int | None, list[Resource]] = {}
    ids = {r.id for r in rows}
    for r in rows:
        by_parent.setdefault(r.parent_id if r.parent_id in ids else None, []).append(r)
    stack = list(reversed(by_parent.get(None, [])))
    while stack:
        r = stack.pop()
        yield r
        stack.extend(reversed(by_parent.get(r.id, [])))


def _values_of(s: Session, rid: int) -> Iterator[Value]:
    """Every value of a resource, oldest first, rows and compacted blocks alike."""
    start: int | None = None
    while True:
        page = revisions.history(s, rid, start_us=start, count=BATCH * 5, newest_first=False)
        yield from page
        if len(page) < BATCH * 5:
            return
        start = page[-1].timestamp_us + 1


def _revision_record(store: Store, rid: int, rev: Value) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": "revision", "resource": rid, "t": rev.timestamp_us, "size": rev.size}
    if rev.bulk_key is not None:
        rec["bulk"] = base64.b64encode(store.bulk.get(rev.bulk_key)).decode()
    elif rev.num is not None:
        rec["num"] = rev.num
    elif rev.text is not None:
        rec["text"] = rev.text
    elif rev.data is not None:
        rec["data"] = base64.b64encode(rev.data).decode()
    return rec


# --- import -----------------------------------------------------------------

def import_org(store: Store, path: str, *, progress: IO[str] | None = None) -> dict[str, Any]:
    """Create the organization in `path` with its resources and history."""
    if path == "-":
        return _import(store, sys.stdin, progress)
    p = Path(path)
    if not p.is_file():
        raise BadRequest(f"no export file at {path}")
    raw = cast(IO[bytes], gzip.open(p, "rb") if p.name.endswith(".gz") else open(p, "rb"))  # noqa: SIM115
    with io.TextIOWrapper(raw, encoding="utf-8") as f:
        return _import(store, f, progress)


def _records(f: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(f, 1):
        try:
            rec = json.loads(line)
        except (ValueError, EOFError, OSError) as e:
            raise BadRequest(f"line {n} of the export file is not JSON ({e}); is the file complete?") from None
        if not isinstance(rec, dict) or "kind" not in rec:
            raise BadRequest(f"line {n} of the export file is not a record")
        yield n, rec


def _import(store: Store, f: IO[str], progress: IO[str] | None) -> dict[str, Any]:
    records = _records(f)
    first = next(records, None)
    if first is None or first[1].get("kind") != "header" or first[1].get("format") != FORMAT:
        raise BadRequest("not a hub export file (the first line is not a hub-export header)")
    header = first[1]
    if header.get("version") != VERSION:
        raise BadRequest(f"export format version {header.get('version')} is not supported (this hub reads "
                         f"{VERSION}); import with the hub version that wrote it")
    with store.session() as s:
        imp = _Importer(store, s, header, progress)
        ended = False
        for n, rec in records:
            if ended:
                raise BadRequest(f"line {n}: records after the end of the export")
            try:
                ended = imp.add(rec)
            except (KeyError, TypeError, ValueError) as e:
                raise BadRequest(f"line {n} of the export file is malformed ({type(e).__name__}: {e})") from None
        if not ended:
            raise BadRequest("the export file ends early (no end record): it is truncated; nothing was imported")
        return imp.finish()


class _Importer:
    def __init__(self, store: Store, s: Session, header: dict[str, Any], progress: IO[str] | None) -> None:
        self.store, self.s = store, s
        o = header["organization"]
        self.name = paths.check_segment(o["name"])
        if s.scalar(select(Organization.id).where(Organization.name == self.name)) is not None or \
                s.scalar(select(Resource.id).where(Resource.path == self.name, ~Resource.deleted)):
            raise Conflict(f"organization {self.name} already exists here: import into a database without it "
                           "(or rename the existing one first)")
        self.org_id = s.execute(insert(Organization).values(
            name=self.name, full_name=o.get("full_name") or self.name,
            created_at=_parse_dt(o.get("created_at")) or utcnow()).returning(Organization.id)).scalar_one()
        self.ids: dict[int, int] = {}
        self.modified: dict[int, datetime | None] = {}
        self.counts = {"resources": 0, "permissions": 0, "revisions": 0}
        self.expected = header.get("counts", {})
        self.batch: list[dict[str, Any]] = []
        self.bar = Progress(f"import {self.name}", int(self.expected.get("revisions", 0)), progress)

    def add(self, rec: dict[str, Any]) -> bool:
        kind = rec["kind"]
        if kind == "resource":
            self._resource(rec)
        elif kind == "permission":
            self._permission(rec)
        elif kind == "revision":
            self._revision(rec)
        elif kind == "end":
            self._flush()
            self.bar.done()
            if rec.get("counts") != self.counts:
                raise BadRequest(f"the export file says {rec.get('counts')} but holds {self.counts}; "
                                 "it is damaged: nothing was imported")
            return True
        else:
            raise BadRequest(f"unknown record kind {kind!r}")
        return False

    def _resource(self, rec: dict[str, Any]) -> None:
        path = paths.normalize(rec["path"])
        if rec["type"] not in _TYPES or path.split("/")[0] != self.name or path.rsplit("/", 1)[-1] != rec["name"]:
            raise BadRequest(f"resource {rec['path']!r} ({rec['type']!r}) does not belong in organization {self.name}")
        parent = rec["parent"]
        if (parent is None) != (path == self.name) or (parent is not None and parent not in self.ids):
            raise BadRequest(f"resource {path} comes before its parent folder")
        values = {c: rec[c] for c in _RESOURCE_COLUMNS}
        for c in ("deleted_at", "created_at", "modified_at"):
            values[c] = _parse_dt(values[c])
        new_id = self.s.execute(insert(Resource).values(
            **values, parent_id=self.ids.get(parent), organization_id=self.org_id).returning(Resource.id)).scalar_one()
        self.ids[int(rec["id"])] = new_id
        self.modified[new_id] = values["modified_at"]
        if rec.get("sequence") is not None:
            self.s.execute(insert(Sequence).values(resource_id=new_id, **{c: rec["sequence"][c]
                                                                          for c in _SEQUENCE_COLUMNS}))
        self.counts["resources"] += 1

    def _permission(self, rec: dict[str, Any]) -> None:
        subject = {"organization_id": self.org_id} if rec["subject"] == "organization" else \
            {"controller_id": self.ids[rec["controller"]]}
        self.s.execute(insert(Permission).values(resource_id=self.ids[rec["resource"]], level=int(rec["level"]),
                                                 **subject))
        self.counts["permissions"] += 1

    def _revision(self, rec: dict[str, Any]) -> None:
        rid, t = self.ids[rec["resource"]], int(rec["t"])
        row: dict[str, Any] = {"resource_id": rid, "timestamp_us": t, "size": int(rec["size"]),
                               "num": None, "text": None, "data": None, "bulk_key": None}
        if "bulk" in rec:
            row["bulk_key"] = f"rev/{rid}/{t}-{secrets.token_hex(4)}"
            self.store.bulk.put(row["bulk_key"], base64.b64decode(rec["bulk"], validate=True))
        elif "num" in rec:
            row["num"] = float(rec["num"])
        elif "text" in rec:
            row["text"] = str(rec["text"])
        elif "data" in rec:
            row["data"] = base64.b64decode(rec["data"], validate=True)
        self.batch.append(row)
        if len(self.batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            # The storage API's append: it also keeps the latest-value pointer and
            # whatever derived data revisions carry (it sets modified_at: `finish` restores it).
            revisions.append(self.s, [NewRevision(**row) for row in self.batch])
            self.counts["revisions"] += len(self.batch)
            self.bar.advance(len(self.batch))
            self.batch = []

    def finish(self) -> dict[str, Any]:
        if self.modified:
            self.s.execute(update(Resource), [{"id": k, "modified_at": v} for k, v in self.modified.items()])
        changes.record(self.s, "organization", self.name)
        changes.record(self.s, "resource", self.name)
        return {"organization": self.name, **self.counts}
