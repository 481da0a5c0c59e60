"""Reading a rhizo-server database: its tables as rhizo-server's models define them
(`main/resources/models.py`, `main/users/models.py`), read-only, in one snapshot.

PostgreSQL or SQLite (rhizo-server's default, `sqlite:///rhizo.db`): the columns are read
with their model types (`_TYPES`), so SQLAlchemy turns SQLite's text timestamps and 0/1
booleans into what PostgreSQL gives. A SQLite file is opened read-only and must exist.
Only the columns the import uses are named, so a rhizo database of any recent version
reads; a database without them, or one the role cannot read, is refused up front
(`check_shape`) with what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    String,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeEngine

from hub.errors import BadRequest, Unavailable

# table -> the columns read from it
COLUMNS: dict[str, tuple[str, ...]] = {
    "resources": ("id", "parent_id", "organization_id", "name", "type", "permissions", "system_attributes",
                  "deleted", "creation_timestamp", "modification_timestamp", "user_attributes"),
    "resource_revisions": ("id", "resource_id", "timestamp", "data"),
    "users": ("id", "email_address", "password_hash", "full_name", "deleted", "role", "creation_timestamp",
              "user_name", "attributes"),
    "organization_users": ("organization_id", "user_id", "is_admin"),
    "keys": ("id", "organization_id", "creation_user_id", "revocation_user_id", "creation_timestamp",
             "revocation_timestamp", "access_as_user_id", "access_as_controller_id", "key_part", "key_hash"),
    "controller_status": ("id", "client_version", "last_connect_timestamp", "last_watchdog_timestamp",
                          "attributes"),
}
REVISION_BATCH = 5000
# the model type of every column read that is not text (rhizo-server's db.Column types)
_TYPES: dict[str, TypeEngine[Any]] = {
    **{c: DateTime() for c in ("creation_timestamp", "modification_timestamp", "revocation_timestamp",
                               "last_connect_timestamp", "last_watchdog_timestamp", "timestamp")},
    **{c: Boolean() for c in ("deleted", "is_admin")},
    **{c: Integer() for c in ("id", "parent_id", "organization_id", "type", "role", "user_id", "resource_id",
                              "creation_user_id", "revocation_user_id", "access_as_user_id",
                              "access_as_controller_id")},
    "size": BigInteger(), "data": LargeBinary(),
}


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
    user_attributes: str | None = None


@dataclass(frozen=True)
class SrcUser:
    id: int
    email: str
    password_hash: str
    full_name: str
    deleted: bool
    role: int
    created: datetime | None
    user_name: str | None = None
    attributes: str | None = None


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


_USE = ("use postgresql://user:password@host/database or sqlite:////path/to/rhizo.db "
        "(rhizo-server's SQLALCHEMY_DATABASE_URI); nothing was imported")


def engine_url(url: str) -> str:
    """`url` with the hub's PostgreSQL driver (psycopg 3) when it names none; a SQLite
    URL as a read-only URI of a file that exists (SQLite would create a missing one)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise BadRequest(f"{url!r:.80} is not a database URL: {_USE}") from None
    backend = u.get_backend_name()
    if backend == "postgresql" and u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        path = Path(u.database or "")
        if not u.database or u.database == ":memory:" or not path.is_file():
            raise BadRequest(f"{url} names no SQLite file that exists ({path.resolve() if u.database else 'none'}): "
                             f"{_USE}")
        u = u.set(drivername="sqlite+pysqlite", database=f"file:{path.resolve()}?mode=ro",
                  query={"uri": "true"})
    elif backend != "postgresql":
        raise BadRequest(f"{u.render_as_string(hide_password=True)} is not a database URL the import reads: {_USE}")
    return u.render_as_string(hide_password=False)


def _q(sql: str) -> TextualSelect:
    """`sql` (a SELECT of plain column names) with each column's model type."""
    names = [c.strip() for c in sql.split("SELECT ", 1)[1].split(" FROM ", 1)[0].split(",")]
    return text(sql).columns(**{n: _TYPES.get(n, String()) for n in names})


@contextmanager
def open_source(url: str) -> Iterator[Connection]:
    """A read-only connection to the rhizo database that sees one state throughout."""
    engine = create_engine(engine_url(url))
    safe = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "sqlite":  # a real read transaction (one snapshot), as SQLAlchemy's docs show
        event.listen(engine, "connect", _autocommit_driver)
        event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN"))
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


def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # pysqlite begins nothing itself; the "begin" event does


def check_shape(conn: Connection, name: str) -> None:
    """Raise BadRequest naming what is missing unless the database has rhizo-server's
    tables and the role may read them."""
    try:
        _check_shape(conn, name)
    except SQLAlchemyError as e:
        raise BadRequest(f"cannot read {name}: {str(getattr(e, 'orig', e)).strip().splitlines()[0]}; "
                         "nothing was imported") from None


def _check_shape(conn: Connection, name: str) -> None:
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
    if conn.dialect.name == "postgresql":
        refused = [t for t in COLUMNS if not conn.execute(text("SELECT has_table_privilege(:t, 'SELECT')"),
                                                          {"t": t}).scalar()]
        if refused:
            user = conn.execute(text("SELECT current_user")).scalar()
            raise BadRequest(f"the role {user} may not read table {', '.join(refused)} of {name}: connect as "
                             f"rhizo-server's own role, or GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}; "
                             "nothing was imported")


def resources(conn: Connection) -> list[SrcResource]:
    rows = conn.execute(_q("SELECT id, parent_id, organization_id, name, type, permissions, system_attributes, "
                           "deleted, creation_timestamp, modification_timestamp, user_attributes FROM resources "
                           "ORDER BY id"))
    return [SrcResource(*r) for r in rows]


def users(conn: Connection) -> list[SrcUser]:
    rows = conn.execute(_q("SELECT id, email_address, password_hash, full_name, deleted, role, "
                           "creation_timestamp, user_name, attributes FROM users ORDER BY id"))
    return [SrcUser(*r) for r in rows]


def memberships(conn: Connection) -> list[tuple[int, int, bool]]:
    """(organization resource id, user id, is admin)."""
    rows = conn.execute(_q("SELECT organization_id, user_id, is_admin FROM organization_users ORDER BY id"))
    return [(int(o), int(u), bool(a)) for o, u, a in rows]


def keys(conn: Connection) -> list[SrcKey]:
    rows = conn.execute(_q("SELECT id, organization_id, creation_user_id, revocation_user_id, creation_timestamp, "
                           "revocation_timestamp, access_as_user_id, access_as_controller_id, key_part, key_hash "
                           "FROM keys ORDER BY id"))
    return [SrcKey(*r) for r in rows]


def statuses(conn: Connection) -> list[SrcStatus]:
    rows = conn.execute(_q("SELECT id, client_version, last_connect_timestamp, last_watchdog_timestamp, "
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
    result = conn.execution_options(stream_results=True, yield_per=REVISION_BATCH).execute(_q(
        f"SELECT resource_id, id, timestamp, data FROM resource_revisions WHERE resource_id IN ({ids}) "
        "ORDER BY resource_id, timestamp, id"))
    for rid, rev_id, ts, data in result:
        if isinstance(data, str):  # a SQLite row written as text
            data = data.encode()
        yield int(rid), int(rev_id), ts, bytes(data) if data is not None else None


def bulk_keys(conn: Connection, limit: int) -> list[tuple[int, int]]:
    """(resource id, revision id) of up to `limit` revisions whose value is in bulk storage,
    spread over the table (its first, its last, and every n-th between)."""
    total = int(conn.execute(text("SELECT count(*) FROM resource_revisions WHERE data IS NULL")).scalar() or 0)
    step = max(1, total // max(1, limit - 1))
    rows = conn.execute(_q("SELECT resource_id, id FROM resource_revisions WHERE data IS NULL ORDER BY id"))
    return [(int(r), int(i)) for n, (r, i) in enumerate(rows) if n % step == 0][:limit]
