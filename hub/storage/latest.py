"""The hot read: a resource with its sequence spec and latest revision, by path.

A latest-value GET with the HTTP read cache off is this one indexed query (the
unique index on live paths, then two primary keys). Profiled under load
(bench/http.py), building the select, the ORM session and SQLAlchemy's result
set-up cost several times the query itself, so the select is built once here
and run with `Database.first_row` (no session, autocommit, plain tuples), or in the
HTTP server on PostgreSQL with `AsyncReads.first_row` on the event loop (no thread hop).
The rows are small frozen records that the views read like the ORM objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from hub import paths
from hub.errors import NotFound
from hub.storage.db import Database
from hub.storage.models import Resource, Revision, Sequence

if TYPE_CHECKING:
    from hub.storage.asyncreads import AsyncReads


@dataclass(frozen=True, slots=True)
class ResourceRow:
    path: str
    name: str
    type: str
    attributes: str | None
    created_at: datetime
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class SequenceRow:
    data_type: str
    units: str
    min_value: float | None
    max_value: float | None
    decimal_places: int | None
    max_history: int | None


@dataclass(frozen=True, slots=True)
class RevisionRow:
    id: int
    timestamp_us: int
    num: float | None
    text: str | None
    data: bytes | None
    bulk_key: str | None
    size: int


_STMT = (select(Resource.path, Resource.name, Resource.type, Resource.attributes, Resource.created_at,
                Resource.modified_at,
                Sequence.data_type, Sequence.units, Sequence.min_value, Sequence.max_value,
                Sequence.decimal_places, Sequence.max_history,
                Revision.id, Revision.timestamp_us, Revision.num, Revision.text, Revision.data,
                Revision.bulk_key, Revision.size)
         .select_from(Resource)
         .outerjoin(Sequence, Sequence.resource_id == Resource.id)
         .outerjoin(Revision, Revision.id == Resource.last_revision_id)
         .where(Resource.path == bindparam("path"), ~Resource.deleted))


def _dt(value: datetime | str) -> datetime:
    """SQLite keeps a DateTime as SQLAlchemy's text form, which fromisoformat reads."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


Loaded = tuple[ResourceRow, SequenceRow | None, RevisionRow | None]


def load(db: Database, path: str) -> Loaded:
    """The live resource at `path` (NotFound if none), its spec and its latest revision."""
    p = paths.normalize(path)
    return _records(p, db.first_row(_STMT, {"path": p}))


async def load_async(reads: AsyncReads, path: str) -> Loaded:
    """`load` on the event loop (PostgreSQL through psycopg: `hub.storage.asyncreads`)."""
    p = paths.normalize(path)
    return _records(p, await reads.first_row(_STMT, {"path": p}))


def _records(p: str, row: tuple[Any, ...] | None) -> Loaded:
    if row is None:
        raise NotFound(f"no resource at {p}")
    r = ResourceRow(row[0], row[1], row[2], row[3], _dt(row[4]), _dt(row[5]))
    seq = SequenceRow(*row[6:12]) if row[6] is not None else None
    data = row[16]
    rev = RevisionRow(row[12], row[13], row[14], row[15], bytes(data) if data is not None else None,
                      row[17], row[18]) if row[12] is not None else None
    return r, seq, rev
