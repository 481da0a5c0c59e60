"""What a rhizo GET answers, computed in one transaction (runs in a worker thread).

Access follows the hub's rule (`hub.storage.permissions.level`), answered the way
rhizo-server answered: 404 when nothing is at the path, 403 when it is there but the
caller may not do this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import paths
from hub.access import Subject
from hub.errors import BadRequest, Forbidden, NotFound
from hub.http.rhizo import shapes
from hub.storage import permissions, resources, revisions, values
from hub.storage.codec import Value
from hub.storage.models import ControllerStatus, DataType, Level, Resource, ResourceType, Revision, Sequence
from hub.storage.store import Store

MAX_LISTED = 10_000
MAX_COUNT = 100_000
FOLDERS = resources.FOLDER_TYPES


@dataclass
class Raw:
    """Bytes to send as they are (a file's content, a sequence's value)."""

    data: bytes
    content_type: str


@dataclass
class ReadOptions:
    meta: bool = False
    recursive: bool = False
    type_number: int | None = None
    name_filter: str | None = None
    count: int = 1
    start_us: int | None = None
    end_us: int | None = None
    revision: int | None = None
    download: bool = False


def rhizo_path(path: str) -> str:
    return "/" + path


SYSTEM = "system"  # rhizo-server's own organization folder (docs/rhizo-compat.md, "/system")


def loaded(s: Session, path: str, subject: Subject | None = None) -> tuple[Resource, Sequence | None, Revision | None]:
    """The resource at `path`. Under `/system`, which every rhizo-server has and only its
    system admins may use, a path the hub does not hold is 403 to anyone else (`subject`:
    who asks; None counts as not a system admin), as rhizo-server answered."""
    try:
        return resources.get_with_latest(s, path)
    except NotFound:
        if paths.normalize(path).split("/", 1)[0] == SYSTEM and not (subject is not None and subject.is_admin):
            raise Forbidden(f"{rhizo_path(paths.normalize(path))} is rhizo-server's system folder: "
                            "for system admins only") from None
        raise NotFound(f"no resource at {rhizo_path(paths.normalize(path))}") from None


def need(s: Session, subject: Subject, path: str, level: Level) -> None:
    """Forbidden unless `subject` has `level` on `path` (which the caller found)."""
    if permissions.level(s, subject, path) < level:
        raise Forbidden(f"{level.name.lower()} access to {rhizo_path(path)} is needed")


def self_path(s: Session, subject: Subject) -> str:
    """The controller folder of a controller key (`/self`)."""
    if subject.controller_path is None:
        raise Forbidden("/self is the controller folder of a controller key: send one (Basic auth)")
    return subject.controller_path


def _visible_below(s: Session, subject: Subject, folder: str) -> set[str] | None:
    """For a folder the subject may not read: the paths below it it may (its own controller
    folder, the folders it holds grants on), so a controller can find itself in its parent's
    listing as it could on rhizo-server. None: nothing (403)."""
    tops = {p for p in permissions.granted_roots(s, subject) if p != folder and paths.is_within(p, folder)}
    return tops or None


def read(s: Session, store: Store, subject: Subject, path: str, opts: ReadOptions) -> Any:
    r, seq, rev = loaded(s, path, subject)
    only: set[str] | None = None
    if r.type in FOLDERS and not opts.meta and permissions.level(s, subject, r.path) < Level.READ:
        only = _visible_below(s, subject, r.path)
    if only is None:
        need(s, subject, r.path, Level.READ)
    if opts.meta:
        out = shapes.resource(r, extended=True, seq=seq, rev=rev)
        out["path"] = rhizo_path(r.path)
        return out
    if r.type in FOLDERS:
        return listing(s, r, opts, only)
    if r.type == ResourceType.SEQUENCE.value:
        if seq is None:
            raise BadRequest(f"{rhizo_path(r.path)} is a sequence without its spec: recreate it")
        if opts.count > 1 or opts.start_us is not None or opts.end_us is not None:
            return history(s, store, r, seq, opts)
        if opts.revision is not None:
            rev = revisions.get_at(s, r.id, opts.revision)
            if rev is None:
                raise NotFound(f"{rhizo_path(r.path)} has no revision {opts.revision}")
        return sequence_value(store, seq, rev)
    if rev is None:
        raise NotFound(f"{rhizo_path(r.path)} has no content yet")
    raw = store.raw(rev)
    data = raw if isinstance(raw, bytes) else str(raw).encode() if raw is not None else b""
    return Raw(data, "application/octet-stream")


def sequence_value(store: Store, seq: Sequence, rev: Revision | Value | None) -> Raw:
    """A value (a row, or one from a compacted block) as rhizo served it."""
    if rev is None:
        return Raw(b"", "text/plain")
    raw = store.raw(rev)
    if seq.data_type == DataType.IMAGE.value:
        return Raw(raw if isinstance(raw, bytes) else b"", "image/jpeg")
    if isinstance(raw, bytes):  # a large text value, from bulk storage
        return Raw(raw, "text/plain")
    num = raw if isinstance(raw, float) else None
    text = raw if isinstance(raw, str) else None
    return Raw(shapes.value_text(seq.data_type, num, text).encode(), "text/plain")


def history(s: Session, store: Store, r: Resource, seq: Sequence, opts: ReadOptions) -> Any:
    rows = revisions.history(s, r.id, start_us=opts.start_us,
                             end_us=None if opts.end_us is None else opts.end_us + 1,
                             count=min(opts.count, MAX_COUNT), newest_first=True)
    rows.reverse()
    texts = [sequence_value(store, seq, x).data.decode(errors="replace") for x in rows]
    if opts.download:
        lines = ["utc_timestamp,value\n"] + [
            f"{values.from_us(x.timestamp_us).strftime('%Y-%m-%d %H:%M:%S.%f')},{t}\n"
            for x, t in zip(rows, texts, strict=True)]
        return Raw("".join(lines).encode(), "application/octet-stream")
    return {"name": r.name, "path": rhizo_path(r.path), "units": seq.units or None,
            "timestamps": [x.timestamp_us / 1e6 for x in rows], "values": texts}


def _name_matcher(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


def listing(s: Session, folder: Resource, opts: ReadOptions, only: set[str] | None = None) -> list[dict[str, Any]]:
    """A folder's children (with `recursive`, everything below it) in rhizo's shape;
    controllers carry their status and watchdog time. `only`: show just these paths and
    what is below them (a caller that may read only those)."""
    q = select(Resource).where(~Resource.deleted)
    if opts.recursive:
        q = q.where(resources._descendants(folder.path))
    else:
        q = q.where(Resource.parent_id == folder.id)
    if opts.type_number is not None:
        q = q.where(Resource.type == shapes.TYPES_BY_NUMBER[opts.type_number])
    kids = list(s.scalars(q.order_by(Resource.path).limit(MAX_LISTED + 1)))
    if len(kids) > MAX_LISTED:
        raise BadRequest(f"more than {MAX_LISTED} resources: list a smaller folder, or filter by type")
    if only is not None:
        kids = [k for k in kids if any(paths.is_within(k.path, p) for p in only)]
    match = _name_matcher(opts.name_filter)
    if match is not None:
        kids = [k for k in kids if match.match(k.name)]
    seqs = resources.sequences_of(s, [k for k in kids if k.type == ResourceType.SEQUENCE.value])
    revs = revisions.latest_of(s, [k for k in kids if k.type == ResourceType.FILE.value])
    ctl_ids = [k.id for k in kids if k.type == ResourceType.CONTROLLER.value]
    statuses = {st.controller_id: st for st in s.scalars(
        select(ControllerStatus).where(ControllerStatus.controller_id.in_(ctl_ids)))} if ctl_ids else {}
    out = []
    for k in kids:
        item = shapes.resource(k, extended=True, seq=seqs.get(k.id), rev=revs.get(k.id))
        if k.type == ResourceType.CONTROLLER.value:
            item.update(shapes.controller_status(statuses.get(k.id)))
        if opts.recursive:
            item["path"] = item["fullPath"] = rhizo_path(k.path)
        out.append(item)
    return out


def of_type(s: Session, type_number: int, include_path: bool) -> dict[str, Any]:
    """`GET /api/v1/resources?type=N` (system admins): every resource of a type by id."""
    rows = list(s.scalars(select(Resource).where(
        Resource.type == shapes.TYPES_BY_NUMBER[type_number], ~Resource.deleted)
        .order_by(Resource.id).limit(MAX_LISTED)))
    ids = [r.id for r in rows if r.type == ResourceType.CONTROLLER.value]
    statuses = {st.controller_id: st for st in s.scalars(
        select(ControllerStatus).where(ControllerStatus.controller_id.in_(ids)))} if ids else {}
    out: dict[str, Any] = {}
    for r in rows:
        d = shapes.resource(r, extended=True)
        if r.type == ResourceType.CONTROLLER.value:
            d.update(shapes.controller_status(statuses.get(r.id)))
        if include_path:
            d["path"] = rhizo_path(r.path)
        out[str(r.id)] = d
    return out
