"""Reading a rhizo-server database: its tables as rhizo-server's models define them
(`main/resources/models.py`, `main/users/models.py`), read-only, in one snapshot.

Only the columns the import uses are named, so a rhizo database of any recent version
reads; a database without them is refused up front (`check_shape`) with what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hub.errors import BadRequest, Unavailable

# table -> the columns read from it
COLUMNS: dict[str, tuple[str, ...]] = {
    "resources": ("id", "parent_id", "organization_id", "name", "type", "permissions", "system_attributes",
                  "deleted", "creation_timestamp", "modification_timestamp"),
    "resource_revisions": ("id", "resource_id", "timestamp", "data"),
    "users": ("id", "email_address", "password_hash", "full_name", "deleted", "role", "creation_timestamp"),
    "organization_users": ("organization_id", "user_id", "is_admin"),
    "keys": ("id", "organization_id", "creation_user_id", "revocation_user_id", "creation_timestamp",
             "revocation_timestamp", "access_as_user_id", "access_as_controller_id", "key_part", "key_hash"),
    "controller_status": ("id", "client_version", "last_connect_timestamp", "last_watchdog_timestamp",
                          "attributes"),
}
REVISION_BATCH = 5000


@dataclass(frozen=True)
class SrcResource:
    id: int
    parent_id: int | None
    organization_id: int | None
    name: str
    type: int
    permissions: str | None
    system_attributes: str | None
    deleted: bool
    created: datetime | None
    modified: datetime | None


@dataclass(frozen=True)
class SrcUser:
    id: int
    email: str
    password_hash: str
    full_name: str
    deleted: bool
    role: int
    created: datetime | None


@dataclass(frozen=True)
class SrcKey:
    id: int
    organization_id: int | None
    created_by: int | None
    revoked_by: int | None
    created: datetime | None
    revoked: datetime | None
    user_id: int | None
    controller_id: int | None
    key_part: str
    key_hash: str


@dataclass(frozen=True)
class SrcStatus:
    controller_id: int
    client_version: str
    last_connect: datetime | None
    last_watchdog: datetime | None
    attributes: str | None


def engine_url(url: str) -> str:
    """`url` with the hub's PostgreSQL driver (psycopg 3) when it names none."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise BadRequest(f"{url!r} is not a database URL: use postgresql://user:password@host/database") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


@contextmanager
def open_source(url: str) -> Iterator[Connection]:
    """A read-only connection to the rhizo database that sees one state throughout."""
    engine = create_engine(engine_url(url))
    safe = engine.url.render_as_string(hide_password=True)
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as e:
            raise Unavailable(f"cannot connect to the rhizo-server database {safe}: "
                              f"{str(getattr(e, 'orig', e)).strip().splitlines()[0]}") from None
        with conn:
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                check_shape(conn, safe)
                yield conn
    finally:
        engine.dispose()


def check_shape(conn: Connection, name: str) -> None:
    """Raise BadRequest naming what is missing unless the database has rhizo-server's tables."""
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    missing = [t for t in COLUMNS if t not in tables]
    if missing:
        raise BadRequest(f"{name} is not a rhizo-server database: it has no table {', '.join(missing)} "
                         f"(rhizo-server keeps resources, resource_revisions, users, organization_users, "
                         f"keys and controller_status); nothing was imported")
    for table, wanted in COLUMNS.items():
        have = {c["name"] for c in insp.get_columns(table)}
        lacking = [c for c in wanted if c not in have]
        if lacking:
            raise BadRequest(f"{name} is not a rhizo-server database this hub can read: table {table} has "
                             f"no column {', '.join(lacking)}; nothing was imported")


def resources(conn: Connection) -> list[SrcResource]:
    rows = conn.execute(text("SELECT id, parent_id, organization_id, name, type, permissions, system_attributes, "
                             "deleted, creation_timestamp, modification_timestamp FROM resources ORDER BY id"))
    return [SrcResource(*r) for r in rows]


def users(conn: Connection) -> list[SrcUser]:
    rows = conn.execute(text("SELECT id, email_address, password_hash, full_name, deleted, role, "
                             "creation_timestamp FROM users ORDER BY id"))
    return [SrcUser(*r) for r in rows]


def memberships(conn: Connection) -> list[tuple[int, int, bool]]:
    """(organization resource id, user id, is admin)."""
    rows = conn.execute(text("SELECT organization_id, user_id, is_admin FROM organization_users ORDER BY id"))
    return [(int(o), int(u), bool(a)) for o, u, a in rows]


def keys(conn: Connection) -> list[SrcKey]:
    rows = conn.execute(text("SELECT id, organization_id, creation_user_id, revocation_user_id, creation_timestamp, "
                             "revocation_timestamp, access_as_user_id, access_as_controller_id, key_part, key_hash "
                             "FROM keys ORDER BY id"))
    return [SrcKey(*r) for r in rows]


def statuses(conn: Connection) -> list[SrcStatus]:
    rows = conn.execute(text("SELECT id, client_version, last_connect_timestamp, last_watchdog_timestamp, "
                             "attributes FROM controller_status ORDER BY id"))
    return [SrcStatus(*r) for r in rows]


def revision_counts(conn: Connection) -> tuple[int, int]:
    """(revisions, those whose value is in bulk storage: `data` is NULL)."""
    total, bulk = conn.execute(text("SELECT count(*), count(*) - count(data) FROM resource_revisions")).one()
    return int(total), int(bulk)


def revisions(conn: Connection, resource_ids: list[int]) -> Iterator[tuple[int, int, datetime, bytes | None]]:
    """(resource id, revision id, timestamp, data or None) of those resources, each
    resource's in time order, streamed (a server-side cursor)."""
    if not resource_ids:
        return
    ids = ",".join(str(int(i)) for i in resource_ids)  # integers only: nothing to inject
    result = conn.execution_options(stream_results=True, yield_per=REVISION_BATCH).execute(text(
        f"SELECT resource_id, id, timestamp, data FROM resource_revisions WHERE resource_id IN ({ids}) "
        "ORDER BY resource_id, timestamp, id"))
    for rid, rev_id, ts, data in result:
        yield int(rid), int(rev_id), ts, bytes(data) if data is not None else None
