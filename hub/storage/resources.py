"""The resource tree: create, find, list, move, delete by path."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Conflict, NotFound, Unprocessable
from hub.storage import changes
from hub.storage.latest import ResourceRow
from hub.storage.models import DataType, Resource, ResourceType, Revision, Sequence, utcnow

FOLDER_TYPES = {t.value for t in ResourceType if t.is_folder}


@dataclass
class SequenceSpec:
    data_type: str = DataType.NUMERIC.value
    units: str = ""
    min_value: float | None = None
    max_value: float | None = None
    decimal_places: int | None = None
    max_history: int | None = None

    def __post_init__(self) -> None:
        if self.data_type not in {d.value for d in DataType}:
            raise BadRequest(f"data_type must be one of {', '.join(d.value for d in DataType)}")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise Unprocessable("min_value is greater than max_value")
        if self.decimal_places is not None and not 0 <= self.decimal_places <= 15:
            raise BadRequest("decimal_places must be 0-15")
        if self.max_history is not None and self.max_history < 1:
            raise BadRequest("max_history must be at least 1")


def find(s: Session, path: str) -> Resource | None:
    p = paths.normalize(path)
    return s.scalar(select(Resource).where(Resource.path == p, ~Resource.deleted))


def get(s: Session, path: str, *, type: str | set[str] | None = None) -> Resource:
    r = find(s, path)
    if r is None:
        raise NotFound(f"no resource at {paths.normalize(path)}")
    if type is not None:
        allowed = {type} if isinstance(type, str) else type
        if r.type not in allowed:
            raise Conflict(f"{r.path} is a {r.type}, not a {' or '.join(sorted(allowed))}")
    return r


# Built once: constructing this select costs more CPU than running it (the hot read).
_WITH_LATEST = (select(Resource, Sequence, Revision)
                .outerjoin(Sequence, Sequence.resource_id == Resource.id)
                .outerjoin(Revision, Revision.id == Resource.last_revision_id)
                .where(Resource.path == bindparam("path"), ~Resource.deleted))


def get_with_latest(s: Session, path: str) -> tuple[Resource, Sequence | None, Revision | None]:
    """`get`, with the resource's sequence spec and latest revision (None where it has
    none) from the same query: one round trip for a latest-value read instead of three."""
    p = paths.normalize(path)
    row = s.execute(_WITH_LATEST, {"path": p}).first()
    if row is None:
        raise NotFound(f"no resource at {p}")
    return row[0], row[1], row[2]


def get_folder(s: Session, path: str) -> Resource:
    return get(s, path, type=FOLDER_TYPES)


def create(s: Session, path: str, type: str, *, attributes: dict[str, Any] | None = None,
           sequence: SequenceSpec | None = None, organization_id: int | None = None) -> Resource:
    """Create a resource under an existing folder. Organization folders are
    made by `users.create_organization`, the only top-level resources."""
    if type not in {t.value for t in ResourceType}:
        raise BadRequest(f"unknown resource type {type!r}")
    parent_path, name = paths.split(path)
    parent = None
    if parent_path is None:
        if type != ResourceType.ORGANIZATION.value:
            raise Conflict("only organizations live at the top level")
    else:
        if type == ResourceType.ORGANIZATION.value:
            raise Conflict("an organization folder must be at the top level")
        parent = get_folder(s, parent_path)
        organization_id = parent.organization_id
    full = paths.normalize(path)
    if type in FOLDER_TYPES:
        paths.check_folder_name(name, bool(s.info.get("dotless_folders")))
    if find(s, full) is not None:
        raise Conflict(f"{full} already exists")
    r = Resource(parent_id=parent.id if parent else None, organization_id=organization_id, name=name,
                 path=full, type=type, attributes=json.dumps(attributes) if attributes else None)
    s.add(r)
    s.flush()
    if type == ResourceType.SEQUENCE.value:
        spec = sequence or SequenceSpec()
        s.add(Sequence(resource_id=r.id, **spec.__dict__))
    if type in FOLDER_TYPES:
        changes.record(s, "resource", full)
    return r


def sequence_of(s: Session, r: Resource) -> Sequence:
    seq = s.get(Sequence, r.id)
    if seq is None:
        raise Conflict(f"{r.path} is a {r.type}, not a sequence")
    return seq


def sequences_of(s: Session, rs: Iterable[Resource]) -> dict[int, Sequence]:
    """resource id -> Sequence row, for many sequences in one query."""
    ids = [r.id for r in rs]
    return {q.resource_id: q for q in s.scalars(select(Sequence).where(Sequence.resource_id.in_(ids)))} if ids else {}


def children(s: Session, folder: Resource, *, limit: int = 100, after: str | None = None) -> list[Resource]:
    """Live children by name, `limit` at a time, after the name `after`."""
    q = select(Resource).where(Resource.parent_id == folder.id, ~Resource.deleted)
    if after:
        q = q.where(Resource.name > after)
    return list(s.scalars(q.order_by(Resource.name).limit(limit)))


def count_children(s: Session, folder: Resource) -> int:
    return int(s.scalar(select(func.count()).where(
        Resource.parent_id == folder.id, ~Resource.deleted)) or 0)


def _descendants(folder_path: str):
    return Resource.path.like(folder_path.replace("_", r"\_").replace("%", r"\%") + "/%", escape="\\")


def move(s: Session, path: str, new_path: str) -> Resource:
    """Rename or move a resource (and its subtree) to `new_path`."""
    r = get(s, path)
    if r.type == ResourceType.ORGANIZATION.value:
        raise Conflict("organization folders cannot be moved or renamed")
    new_parent_path, new_name = paths.split(new_path)
    target = paths.normalize(new_path)
    if r.type in FOLDER_TYPES:
        paths.check_folder_name(new_name, bool(s.info.get("dotless_folders")))
    if new_parent_path is None:
        raise Conflict("only organizations live at the top level")
    if paths.is_within(target, r.path):
        raise Conflict("cannot move a folder into itself")
    if find(s, target) is not None:
        raise Conflict(f"{target} already exists")
    parent = get_folder(s, new_parent_path)
    if parent.organization_id != r.organization_id:
        raise Conflict("cannot move a resource to another organization")
    old = r.path
    subtree = list(s.scalars(select(Resource).where(_descendants(old), ~Resource.deleted)))
    for child in subtree:
        child.path = target + child.path[len(old):]
    r.parent_id, r.name, r.path, r.modified_at = parent.id, new_name, target, utcnow()
    s.flush()
    changes.record(s, "resource", target)
    return r


def delete(s: Session, path: str, *, recursive: bool = False) -> int:
    """Soft-delete a resource; a folder with live children needs `recursive`.
    Returns how many resources were marked deleted."""
    r = get(s, path)
    if r.type == ResourceType.ORGANIZATION.value:
        raise Conflict("delete an organization through the organization, not its folder")
    now = utcnow()
    n = 1
    if r.type in FOLDER_TYPES:
        if not recursive and count_children(s, r):
            raise Conflict(f"{r.path} is not empty; delete with recursive=true")
        result = s.execute(update(Resource).where(_descendants(r.path), ~Resource.deleted)
                           .values(deleted=True, deleted_at=now))
        n += getattr(result, "rowcount", 0) or 0
        changes.record(s, "resource", r.path)
    r.deleted, r.deleted_at = True, now
    s.flush()
    return n


def attributes(r: Resource | ResourceRow) -> dict[str, Any]:
    return json.loads(r.attributes) if r.attributes else {}


def set_attributes(r: Resource, values: dict[str, Any]) -> None:
    merged = {**attributes(r), **values}
    r.attributes = json.dumps({k: v for k, v in merged.items() if v is not None})
    r.modified_at = utcnow()


def update_sequence_spec(s: Session, r: Resource, **fields: Any) -> Sequence:
    seq = sequence_of(s, r)
    spec = SequenceSpec(**{**{k: getattr(seq, k) for k in SequenceSpec.__dataclass_fields__}, **fields})
    for k, v in spec.__dict__.items():
        setattr(seq, k, v)
    return seq


def by_id(s: Session, resource_id: int) -> Resource | None:
    """A resource row by id, deleted or not (for showing what a key or grant is on)."""
    return s.get(Resource, resource_id)
