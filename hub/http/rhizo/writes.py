"""What rhizo's POST, PUT and DELETE do, each in one transaction (a worker thread).

Every write goes through the same storage functions as the hub's own API
(`hub.http.resource_ops`, `hub.storage.*`), so values get the same checks and
limits; a refused request leaves nothing stored (the transaction rolls back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hub import paths
from hub.access import Subject
from hub.errors import BadRequest, BadValue, Conflict, Forbidden
from hub.http import resource_ops as ops
from hub.http.rhizo import shapes
from hub.http.rhizo.reads import loaded, need, rhizo_path
from hub.storage import controllers, permissions, resources, values
from hub.storage.models import DataType, Level, Resource, ResourceType
from hub.storage.store import Store

CONTROLLER = ResourceType.CONTROLLER.value
FOLDERS_MADE = "rhizo.folders_made"  # Session.info: this write created a folder (a new topic)
DEFAULT_MAX_HISTORY = 10_000  # what rhizo-server gave a sequence created without one


@dataclass
class SequenceFields:
    """rhizo's sequence attributes (form fields, or a `system_attributes` object)."""

    data_type: int | None = None
    decimal_places: int | None = None
    max_history: int | None = None
    units: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # min_storage_interval, ...

    def spec_changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.data_type is not None:
            if self.data_type not in shapes.DATA_TYPES_BY_NUMBER:
                raise BadRequest(f"data_type must be 1 (numeric), 2 (text) or 3 (image), got {self.data_type}")
            out["data_type"] = shapes.DATA_TYPES_BY_NUMBER[self.data_type]
        if self.decimal_places is not None:
            out["decimal_places"] = self.decimal_places
        if self.max_history is not None:
            out["max_history"] = self.max_history
        if self.units is not None:
            if len(self.units) > 40:
                raise BadRequest("units: at most 40 characters")
            out["units"] = self.units
        return out


def _ok(r: Resource) -> dict[str, Any]:
    return {"status": "ok", "id": r.id}


def _set_extra(r: Resource, extra: dict[str, Any]) -> None:
    if not extra:
        return
    current = resources.attributes(r).get(shapes.EXTRA_KEY)
    merged = {**(current if isinstance(current, dict) else {}), **extra}
    resources.set_attributes(r, {shapes.EXTRA_KEY: merged})


def _ensure_folders(s: Session, path: str) -> None:
    """rhizo created missing folders along a new resource's path (not the path itself)."""
    chain = paths.ancestors(path)
    if resources.find(s, chain[0]) is None:
        raise Forbidden(f"no organization {rhizo_path(chain[0])} that you may write")
    for p in chain[1:-1]:
        found = resources.find(s, p)
        if found is None:
            resources.create(s, p, ResourceType.FOLDER.value)
            s.info[FOLDERS_MADE] = True
        elif found.type not in resources.FOLDER_TYPES:
            raise BadRequest(f"{rhizo_path(p)} is a {found.type}, not a folder")


def create(s: Session, store: Store, subject: Subject, parent: str, name: str, type_number: int, *,
           data: bytes | None, seq: SequenceFields, user_attributes: dict[str, Any] | None,
           created_us: int | None) -> dict[str, Any]:
    """`POST /api/v1/resources`: a folder (10), controller (12), file (20) or sequence (21)."""
    type_ = shapes.TYPES_BY_NUMBER.get(type_number)
    if type_ is None or type_ == ResourceType.ORGANIZATION.value:
        raise BadRequest(f"type {type_number} cannot be created here: use 10 (folder), 12 (controller), "
                         "20 (file) or 21 (sequence); organizations are made by an administrator")
    path = paths.join(parent, name) if name else ""
    if not name or "/" in name or paths.split(path)[0] != parent:
        raise BadRequest(f"name must be one path segment, got {name[:100]!r}")
    if permissions.level(s, subject, parent) < (Level.ADMIN if type_ == CONTROLLER else Level.WRITE):
        raise Forbidden(f"{'admin' if type_ == CONTROLLER else 'write'} access to {rhizo_path(parent)} is needed")
    _ensure_folders(s, path)
    if resources.find(s, path) is not None:
        return {"message": "Resource already exists.", "status": "error"}  # rhizo's answer, with 200
    spec = None
    if type_ == ResourceType.SEQUENCE.value:
        if seq.data_type is None:
            raise BadRequest("a sequence needs data_type: 1 (numeric), 2 (text) or 3 (image)")
        if seq.max_history is None:
            seq.max_history = DEFAULT_MAX_HISTORY
        if "min_storage_interval" not in seq.extra:
            seq.extra["min_storage_interval"] = 0 if seq.data_type == 2 else 50
        spec = ops.spec_from(seq.spec_changes())
    content = (data if data is not None else b"", "application/octet-stream") if type_ == ops.FILE else None
    attrs = dict(user_attributes or {})
    ops.create(s, store, path, type_, attributes=attrs or None, spec=spec, content=content)
    if type_ in resources.FOLDER_TYPES:
        s.info[FOLDERS_MADE] = True
    r = resources.get(s, path)
    _set_extra(r, seq.extra)
    if created_us is not None:
        r.created_at = values.from_us(created_us).replace(tzinfo=None)
    if type_ == CONTROLLER and resources.find(s, paths.join(path, "log")) is None:
        resources.create(s, paths.join(path, "log"), ResourceType.SEQUENCE.value,
                         sequence=resources.SequenceSpec(data_type=DataType.TEXT.value,
                                                         max_history=DEFAULT_MAX_HISTORY))
    return _ok(r)


def write_content(s: Session, store: Store, r: Resource, data: bytes) -> None:
    """New content: a file's next revision, or a sequence's next value (rhizo sent values
    as base64 of their text)."""
    if r.type == ops.FILE:
        ctype = resources.attributes(r).get("content_type") or "application/octet-stream"
        ops.replace_file(s, store, r.path, data, ctype)
        return
    if r.type != ops.SEQUENCE:
        raise BadRequest(f"{rhizo_path(r.path)} is a {r.type}: only files and sequences hold data")
    seq = resources.sequence_of(s, r)
    if seq.data_type == DataType.IMAGE.value:
        ops.write_value(s, store, r.path, data, None)
        return
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise BadValue(f"{rhizo_path(r.path)} holds text values: data is not UTF-8") from None
    value: Any = text
    if seq.data_type == DataType.JSON.value:
        try:
            value = json.loads(text)
        except ValueError:
            raise BadValue(f"{rhizo_path(r.path)} holds JSON values: data is not JSON") from None
    ops.write_value(s, store, r.path, value, None)


def post_file(s: Session, store: Store, subject: Subject, path: str, data: bytes) -> dict[str, Any]:
    """`POST /api/v1/resources/<path>`: create the file (and its folders) or add a revision."""
    parent, _ = paths.split(path)
    if parent is None:
        raise BadRequest("top-level folders are organizations")
    if permissions.level(s, subject, parent) < Level.WRITE:
        raise Forbidden(f"write access to {rhizo_path(parent)} is needed")
    _ensure_folders(s, path)
    r = resources.find(s, path)
    if r is None:
        ops.create(s, store, path, ops.FILE, attributes=None, spec=None,
                   content=(data, "application/octet-stream"))
        return _ok(resources.get(s, path))
    write_content(s, store, r, data)
    return _ok(r)


@dataclass
class Update:
    name: str | None = None
    parent: str | None = None
    user_attributes: dict[str, Any] | None = None
    system_attributes: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    seq: SequenceFields = field(default_factory=SequenceFields)
    data: bytes | None = None


def update(s: Session, store: Store, subject: Subject, path: str, u: Update) -> dict[str, Any]:
    """`PUT /api/v1/resources/<path>`: rename or move, attributes, controller status, data."""
    r, _, _ = loaded(s, path, subject)
    moving = u.name is not None or u.parent is not None
    need(s, subject, r.path, Level.ADMIN if r.type == CONTROLLER and moving else Level.WRITE)
    if u.user_attributes is not None:
        resources.set_attributes(r, u.user_attributes)
    if r.type == ops.SEQUENCE:
        changes = u.seq.spec_changes()
        if changes:
            ops.update(s, store, r.path, new_path=None, attributes=None, spec=changes)
        _set_extra(r, u.seq.extra)
    elif r.type == CONTROLLER and u.status is not None:
        st = controllers.row(s, r.id)
        current = json.loads(st.status) if st.status else {}
        controllers.record_status(s, r.path, {**(current if isinstance(current, dict) else {}), **u.status})
    elif u.system_attributes is not None:
        _set_extra(r, u.system_attributes)
    if u.data is not None:
        write_content(s, store, r, u.data)
    new_parent, new_name = paths.split(r.path)
    if u.parent is not None:
        target = loaded(s, u.parent)[0]
        if target.type not in resources.FOLDER_TYPES:
            raise BadRequest(f"{rhizo_path(target.path)} is not a folder")
        need(s, subject, target.path, Level.ADMIN if r.type == CONTROLLER else Level.WRITE)
        new_parent = target.path
    if u.name is not None:
        new_name = u.name
    if new_parent is not None and (new_parent, new_name) != paths.split(r.path):
        try:
            resources.move(s, r.path, paths.join(new_parent, new_name))
        except Conflict as e:
            raise BadRequest(e.message) from None
    return _ok(r)


def delete(s: Session, subject: Subject, path: str, data_only: bool) -> dict[str, Any]:
    r, _, _ = loaded(s, path, subject)
    need(s, subject, r.path, Level.ADMIN if r.type == CONTROLLER else Level.WRITE)
    if data_only:
        raise BadRequest("data_only is not supported: delete the resource, or trim it with max_history")
    resources.delete(s, r.path, recursive=True)
    return _ok(r)


def put_values(s: Session, store: Store, subject: Subject, items: list[tuple[str, str]],
               timestamp: str | None) -> dict[str, Any]:
    """`PUT /api/v1/resources` with `values`: as rhizo-server, a value whose sequence is
    missing or not writable is skipped; the rest are stored."""
    stored, skipped = 0, []
    if timestamp:
        try:
            values.parse_timestamp(timestamp)  # a bad time refuses the whole request
        except BadValue as e:
            raise BadRequest(e.message) from None
    for path, value in sorted(items):
        r = resources.find(s, path)
        if r is None or r.type != ops.SEQUENCE or permissions.level(s, subject, path) < Level.WRITE:
            skipped.append(rhizo_path(path))
            continue
        out = ops.write_value(s, store, r.path, value, timestamp or None)
        stored += int(out["stored"])
    return {"status": "ok", "stored": stored, "skipped": skipped}
