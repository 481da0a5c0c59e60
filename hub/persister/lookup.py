"""Per-batch look-ups: which topics are folders, which paths are sequences,
and creating unknown sequences on their first update.

One query per kind for a whole batch (no cache, so a sequence changed or
deleted through the HTTP API is seen by the very next batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import Conflict, HubError, NotFound
from hub.storage import resources, values
from hub.storage.models import Resource, ResourceType, Sequence
from hub.storage.resources import FOLDER_TYPES, SequenceSpec

CHUNK = 500  # paths per IN (...) list


@dataclass(slots=True)
class Target:
    """A sequence an update may go to, or why it may not."""

    resource_id: int = 0
    seq: Sequence | None = None
    error: str | None = None


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def folders(s: Session, wanted: Iterable[str]) -> dict[str, str | None]:
    """For each path: None if it is a live folder, else why it cannot be a topic."""
    want = sorted(set(wanted))
    found: dict[str, str] = {}
    for chunk in _chunks(want):
        for path, type_ in s.execute(select(Resource.path, Resource.type).where(
                Resource.path.in_(chunk), ~Resource.deleted)):
            found[path] = type_
    out: dict[str, str | None] = {}
    for p in want:
        t = found.get(p)
        out[p] = None if t in FOLDER_TYPES else (
            f"topic {p} names no folder" if t is None else f"topic {p} is a {t}, not a folder")
    return out


def sequences(s: Session, wanted: Iterable[str]) -> dict[str, Target]:
    """Live resources at the wanted paths (missing paths are left out)."""
    out: dict[str, Target] = {}
    want = sorted(set(wanted))
    for chunk in _chunks(want):
        rows = s.execute(select(Resource.id, Resource.path, Resource.type, Sequence)
                         .outerjoin(Sequence, Sequence.resource_id == Resource.id)
                         .where(Resource.path.in_(chunk), ~Resource.deleted))
        for rid, path, type_, seq in rows:
            if type_ != ResourceType.SEQUENCE.value or seq is None:
                out[path] = Target(error=f"{path} is a {type_}, not a sequence")
            else:
                out[path] = Target(rid, seq)
    return out


def create(s: Session, path: str, first_value: Any, allowed: bool) -> Target:
    """Create the sequence at `path` (its folder must exist), typed by its
    first value; or say why not. Called inside the batch's transaction."""
    if not allowed:
        return Target(error=f"no sequence {path} (AUTO_CREATE_SEQUENCES is off: create it first)")
    parent, _name = paths.split(path)
    try:
        r = resources.create(s, path, ResourceType.SEQUENCE.value,
                             sequence=SequenceSpec(data_type=values.guess_type(first_value)))
    except NotFound:
        return Target(error=f"no sequence {path}, and its folder {parent} does not exist")
    except Conflict:  # another persister (or the HTTP API) created it since this batch looked
        found = sequences(s, [path]).get(path)
        return found or Target(error=f"cannot create sequence {path}: something else is there")
    except HubError as e:
        return Target(error=f"cannot create sequence {path}: {e.message}")
    return Target(r.id, resources.sequence_of(s, r))
