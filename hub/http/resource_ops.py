"""The synchronous work behind the resource routes: each function runs in a
thread, inside one `Store.session()` transaction, and calls only
`hub.storage.*`. Values get the same checks as the persister
(`hub.storage.values`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Conflict, NotFound
from hub.http import views
from hub.http.params import whole
from hub.storage import controllers, latest, resources, revisions, values
from hub.storage.latest import ResourceRow, RevisionRow, SequenceRow
from hub.storage.models import Resource, ResourceType, Revision, Sequence
from hub.storage.store import Store

FILE = ResourceType.FILE.value
SEQUENCE = ResourceType.SEQUENCE.value
SPEC_FIELDS = ("data_type", "units", "min_value", "max_value", "decimal_places", "max_history")
MAX_UNITS = 40
MAX_LIMIT = 1e300  # min_value / max_value: any finite number a database column holds
INT32 = 2**31 - 1


@dataclass
class FileContent:
    data: bytes
    content_type: str
    revision_id: int
    timestamp: str


def describe(s: Session, store: Store, path: str, *, limit: int, after: str | None,
             loaded: tuple[Resource, Sequence | None, Revision | None] | None = None) -> dict[str, Any]:
    """Folder: its children (a page); sequence: spec and latest value; file: metadata.
    `loaded`: `resources.get_with_latest(s, path)`, if the caller has it."""
    r, seq, rev = loaded if loaded is not None else resources.get_with_latest(s, path)
    if r.type in resources.FOLDER_TYPES:
        kids = resources.children(s, r, limit=limit + 1, after=after)
        out = views.resource(r)
        out["children"] = _children_with_values(s, kids[:limit])
        out["next"] = kids[limit - 1].name if len(kids) > limit else None
        out["total"] = resources.count_children(s, r)
        return out
    return describe_leaf(store, r, seq, rev)


def describe_leaf(store: Store, r: Resource | ResourceRow, seq: Sequence | SequenceRow | None,
                  rev: Revision | RevisionRow | None) -> dict[str, Any]:
    """`describe` for what is not a folder: a sequence or a file's metadata."""
    if r.type == SEQUENCE:
        if seq is None:
            raise Conflict(f"{r.path} is a sequence without its spec: recreate it")
        out = views.resource(r, seq=seq)
        out["value"] = store.value(seq.data_type, rev) if rev else None
        out["timestamp"] = values.iso(rev.timestamp_us) if rev else None
        out["revision"] = rev.id if rev else None
        return out
    out = views.resource(r)
    out["size"] = rev.size if rev else 0
    out["revision"] = rev.id if rev else None
    out["timestamp"] = values.iso(rev.timestamp_us) if rev else None
    return out


INLINE_VALUE_BYTES = 4096  # larger (or bulk, or image) latest values are fetched one by one


def _children_with_values(s: Session, kids: list[Resource]) -> list[dict[str, Any]]:
    """Children as listed; sequences carry their latest value when it is small,
    so a folder page needs one request, not one per sequence (three queries)."""
    seq_kids = [c for c in kids if c.type == SEQUENCE]
    specs = resources.sequences_of(s, seq_kids)
    latest = revisions.latest_of(s, seq_kids)
    out = []
    for c in kids:
        seq = specs.get(c.id)
        item = views.resource(c, seq=seq)
        rev = latest.get(c.id)
        if seq is not None:
            item["timestamp"] = values.iso(rev.timestamp_us) if rev else None
            if rev is not None and rev.bulk_key is None and rev.size <= INLINE_VALUE_BYTES \
                    and seq.data_type != "image":
                item["value"] = values.decode(seq.data_type, rev.num, rev.text, rev.data)
        out.append(item)
    return out


def read_fresh(store: Store, path: str, *, limit: int, after: str | None,
               meta: bool) -> dict[str, Any] | FileContent:
    """`read` outside a transaction, with a sequence's value (or a file's metadata)
    from the one hot query (`hub.storage.latest`); folders and file content take the
    general path."""
    r, seq, rev = latest.load(store.db, path)
    if r.type not in resources.FOLDER_TYPES and (r.type != FILE or meta):
        return describe_leaf(store, r, seq, rev)
    with store.reading() as s:
        return read(s, store, path, limit=limit, after=after, meta=meta)


def read(s: Session, store: Store, path: str, *, limit: int, after: str | None,
         meta: bool) -> dict[str, Any] | FileContent:
    """What GET shows at `path`: a file's content (unless `meta`), else `describe`."""
    loaded = resources.get_with_latest(s, path)
    if loaded[0].type == FILE and not meta:
        return file_content(s, store, path, None)
    return describe(s, store, path, limit=limit, after=after, loaded=loaded)


def _revision(s: Session, r: Resource, revision_id: int | None) -> Revision:
    rev = revisions.get_at(s, r.id, revision_id) if revision_id is not None else revisions.latest(s, r)
    if rev is None:
        raise NotFound(f"{r.path} has no revision {revision_id}" if revision_id is not None
                       else f"{r.path} has no content yet")
    return rev


def file_content(s: Session, store: Store, path: str, revision_id: int | None) -> FileContent:
    r = resources.get(s, path, type=FILE)
    rev = _revision(s, r, revision_id)
    raw = store.raw(rev)
    data = raw if isinstance(raw, bytes) else str(raw).encode() if raw is not None else b""
    ctype = resources.attributes(r).get("content_type") or "application/octet-stream"
    return FileContent(data, ctype, rev.id, values.iso(rev.timestamp_us))


def sequence_value_at(s: Session, store: Store, path: str, revision_id: int) -> dict[str, Any]:
    r = resources.get(s, path, type=SEQUENCE)
    seq = resources.sequence_of(s, r)
    rev = _revision(s, r, revision_id)
    return {"path": r.path, "revision": rev.id, "timestamp": values.iso(rev.timestamp_us),
            "value": store.value(seq.data_type, rev)}


def resource_type(s: Session, path: str) -> str:
    return resources.get(s, path).type


def spec_from(body: dict[str, Any]) -> resources.SequenceSpec:
    """A sequence's spec from a request body: the fields and limits the OpenAPI document
    states (data_type and units are never null; a null limit means none)."""
    for k in ("data_type", "units"):
        if k in body and not isinstance(body[k], str):
            raise BadRequest(f"field {k!r} must be a string")
    if len(body.get("units", "")) > MAX_UNITS:
        raise BadRequest(f"units: at most {MAX_UNITS} characters")
    fields = {k: whole(body[k]) if k in ("decimal_places", "max_history") else body[k]
              for k in SPEC_FIELDS if body.get(k) is not None}
    for k in ("min_value", "max_value"):
        if k in fields and (isinstance(fields[k], bool) or not isinstance(fields[k], (int, float))
                            or not abs(fields[k]) <= MAX_LIMIT):
            raise BadRequest(f"field {k!r} must be a number from -{MAX_LIMIT:g} to {MAX_LIMIT:g}")
    for k, hi in (("decimal_places", 15), ("max_history", INT32)):
        if k in fields and (isinstance(fields[k], bool) or not isinstance(fields[k], int)
                            or not (0 if k == "decimal_places" else 1) <= fields[k] <= hi):
            raise BadRequest(f"field {k!r} must be an integer in range")
    return resources.SequenceSpec(**fields)


def create(s: Session, store: Store, path: str, type_: str, *, attributes: dict[str, Any] | None,
           spec: resources.SequenceSpec | None, content: tuple[bytes, str] | None,
           value: Any = None, timestamp: Any = None) -> dict[str, Any]:
    if type_ == ResourceType.ORGANIZATION.value:
        raise BadRequest("create organizations with POST /api/v1/organizations")
    attrs = dict(attributes or {})
    if content is not None:
        attrs["content_type"] = content[1]
    r = resources.create(s, path, type_, attributes=attrs or None, sequence=spec)
    if type_ == ResourceType.CONTROLLER.value:
        controllers.ensure_status_folder(s, r.path)  # status/: disk, processor, messages sent/received
    if content is not None:
        _store_file(s, store, r, content[0])
    if value is not None:
        write_value(s, store, r.path, value, timestamp)
    return describe(s, store, r.path, limit=1, after=None)


def _store_file(s: Session, store: Store, r: Resource, data: bytes) -> Revision | None:
    ts = values.now_us()
    last = revisions.latest(s, r)
    if last is not None and last.timestamp_us >= ts:
        ts = last.timestamp_us + 1
    new = store.new_revision(r.id, ts, values.Encoded(data=data))
    revisions.append(s, [new])
    s.expire(r, ["last_revision_id", "modified_at"])  # append updated them in SQL
    return revisions.latest(s, r)


def replace_file(s: Session, store: Store, path: str, data: bytes, content_type: str) -> dict[str, Any]:
    r = resources.get(s, path, type=FILE)
    resources.set_attributes(r, {"content_type": content_type})
    _store_file(s, store, r, data)
    return describe(s, store, path, limit=1, after=None)


def write_value(s: Session, store: Store, path: str, value: Any, timestamp: Any) -> dict[str, Any]:
    """Store one sequence value as the persister would; a value already stored
    at that timestamp is left as it was (`stored: false`)."""
    r = resources.get(s, path, type=SEQUENCE)
    seq = resources.sequence_of(s, r)
    enc = values.encode(seq, value)
    ts = values.parse_timestamp(timestamp) if timestamp is not None else values.now_us()
    stored = revisions.append(s, [store.new_revision(r.id, ts, enc)]) > 0
    s.expire(r, ["last_revision_id", "modified_at"])  # append updated them in SQL
    freed: list[str] = []
    if stored and seq.max_history:
        freed = revisions.trim(s, r.id, seq.max_history)
    for key in freed:  # the rows are gone in this transaction; objects go now
        store.bulk.delete(key)
    return {"path": r.path, "timestamp": values.iso(ts), "stored": stored}


def update(s: Session, store: Store, path: str, *, new_path: str | None,
           attributes: dict[str, Any] | None, spec: dict[str, Any]) -> dict[str, Any]:
    r = resources.get(s, path)
    if spec:
        if r.type != SEQUENCE:
            raise Conflict(f"{', '.join(spec)}: only sequences have these")
        spec_from(spec)  # type checks
        resources.update_sequence_spec(s, r, **spec)
    if attributes is not None:
        if "content_type" in attributes and r.type != FILE:
            raise Conflict("content_type is an attribute of files only")
        resources.set_attributes(r, attributes)
    if new_path is not None and paths.normalize(new_path) != r.path:
        r = resources.move(s, r.path, new_path)
    return describe(s, store, r.path, limit=1, after=None)


def delete(s: Session, path: str, recursive: bool) -> int:
    return resources.delete(s, path, recursive=recursive)


def list_revisions(s: Session, path: str, *, limit: int, before: int | None) -> dict[str, Any]:
    r = resources.get(s, path, type={FILE, SEQUENCE})
    rows = revisions.history(s, r.id, end_us=before, count=limit + 1, newest_first=True)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"path": r.path, "revisions": [views.revision(x) for x in rows],
            "next_before": values.iso(rows[-1].timestamp_us) if more else None}


def ensure_absent(s: Session, path: str) -> None:
    if resources.find(s, path) is not None:
        raise Conflict(f"{paths.normalize(path)} already exists")
