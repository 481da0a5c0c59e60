"""Engines and the one place sessions are opened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hub.errors import Unavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kw: object) -> Engine:
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
    kw.setdefault("pool_pre_ping", True)
    return create_engine(url, **kw)


class Database:
    """Owns the engine and the session scope; shared by every process."""

    def __init__(self, url: str, **engine_kw: object) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kw)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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
            with s.begin():
                yield s
        except (OperationalError, InterfaceError) as e:
            if _is_disconnect(e):
                raise Unavailable(f"database unreachable ({self.safe_url}): {e.orig}") from e
            raise
        finally:
            s.close()

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
