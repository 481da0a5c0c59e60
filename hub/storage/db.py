"""Engines and the one place sessions are opened."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from hub.errors import Unavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, ping_idle_seconds: float | None = None, **kw: object) -> Engine:
    """An engine for `url`. Pooled server connections are checked before use
    (`pool_pre_ping`: one round trip per checkout) unless `ping_idle_seconds`
    is given: then only a connection idle that long is checked (busy servers
    skip the round trip; a database restart is still noticed after a pause)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if ping_idle_seconds is None:
        kw.setdefault("pool_pre_ping", True)
        return create_engine(url, **kw)
    engine = create_engine(url, pool_pre_ping=False, **kw)
    _ping_when_idle(engine, ping_idle_seconds)
    return engine


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:  # the pool drops it and connects anew
            raise exc.DisconnectionError(f"pooled connection idle for {time.monotonic() - since:.0f} s "
                                         f"is gone: {e}") from e


class Database:
    """Owns the engine and the session scope; shared by every process."""

    def __init__(self, url: str, *, dotless_folders: bool = False, **engine_kw: Any) -> None:
        """`dotless_folders`: folder names may not hold `.` (BROKER=rabbitmq, where a topic's
        `/` becomes `.`: `paths.check_folder_name`); sessions carry it in `Session.info`."""
        self.url = url
        self.engine = make_engine(url, **engine_kw)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False,
                                      info={"dotless_folders": dotless_folders})
        # Reads that need no transaction: on PostgreSQL in autocommit, so a one-query
        # read is one round trip (no BEGIN, no COMMIT). SQLite's driver begins only
        # before writes anyway.
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT") \
            if self.engine.dialect.name == "postgresql" else self.engine
        self._reads = sessionmaker(autocommit, expire_on_commit=False)
        self._compiled: dict[ClauseElement, tuple[str, tuple[str, ...] | None]] = {}

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session that sees one state of the database throughout, whatever
        others commit meanwhile (exports, reports): REPEATABLE READ on PostgreSQL; on
        SQLite an explicit BEGIN (its Python driver begins only before writes, so each
        SELECT would otherwise see the newest state)."""
        s = self._sessions()
        try:
            with s.begin():
                if self.engine.dialect.name == "postgresql":
                    s.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                                    "postgresql_readonly": True})
                elif self.engine.dialect.name == "sqlite":
                    s.connection().exec_driver_sql("BEGIN")
                yield s
        finally:
            s.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        s = self._sessions()
        try:
            with self._unreachable_is_unavailable(), s.begin():
                yield s
        finally:
            s.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, outside a transaction: each statement sees the
        newest committed state (use `snapshot` when several must agree). Nothing
        written here is rolled back on error: call only functions that do not write."""
        s = self._reads()
        try:
            with self._unreachable_is_unavailable():
                yield s
        finally:
            s.close()

    @contextmanager
    def _unreachable_is_unavailable(self) -> Iterator[None]:
        """A lost or refused database connection becomes `Unavailable` (503, says which database)."""
        try:
            yield
        except (OperationalError, InterfaceError) as e:
            if _is_disconnect(e):
                raise Unavailable(f"database unreachable ({self.safe_url}): {e.orig}") from e
            raise

    def first_row(self, stmt: ClauseElement, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a read-only `stmt`, run on a pooled driver connection
        outside a transaction (autocommit on PostgreSQL: one round trip), without
        SQLAlchemy's per-call work (session, result metadata from the cursor's
        description), which costs several times a one-row indexed query. `stmt` is
        compiled once; its columns come back as the driver gives them (SQLite: a
        DateTime as text). For the hottest reads only; everything else uses sessions."""
        compiled = self._compiled.get(stmt)
        if compiled is None:
            c = stmt.compile(dialect=self.engine.dialect)
            order = tuple(c.positiontup or ()) if isinstance(c, SQLCompiler) and c.positional else None
            compiled = self._compiled[stmt] = (c.string, order)
        sql, order = compiled
        args: Any = params if order is None else tuple(params[k] for k in order)
        autocommit = self.engine.dialect.name == "postgresql"
        raw = self.engine.raw_connection()
        try:
            if autocommit:
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cur = raw.cursor()
            cur.execute(sql, args)
            row = cur.fetchone()
            cur.close()
            if autocommit:
                raw.driver_connection.autocommit = False  # type: ignore[union-attr]
            return tuple(row) if row is not None else None
        except self.engine.dialect.loaded_dbapi.Error as e:
            gone = self.engine.dialect.is_disconnect(e, raw.dbapi_connection, None) or _is_disconnect(e)
            raw.invalidate(e)  # whatever state it is in, it goes; the pool connects anew
            if gone:  # the server restarted, say: the pooled connections are stale too
                self.engine.dispose()
                raise Unavailable(f"database unreachable ({self.safe_url}): {e}") from e
            raise
        finally:
            raw.close()

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _is_disconnect(e: Exception) -> bool:
    if getattr(e, "connection_invalidated", False):
        return True
    text = str(getattr(e, "orig", e)).lower()
    return any(w in text for w in ("connection", "could not connect", "server closed", "terminating"))


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (safe to run again)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
