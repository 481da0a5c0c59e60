"""The hottest reads on the event loop: asyncpg over a small pool.

Profiled under load (bench/http.py, PostgreSQL, 32 requests in flight, HTTP read
cache off), a latest-value GET through the thread pool spent as much of the
worker's CPU handing the query to a thread and back (executor submit, futures,
the GIL passed between loop and thread) and in psycopg's Python layers as in
everything else. psycopg's own async mode cost more still (its wait loop
registers and drops an event-loop reader per query, its pool wakes waiters
through conditions). asyncpg's protocol is compiled, so the HTTP server on
PostgreSQL runs `Database.first_row`'s statements here: the same SQLAlchemy
statement, compiled once for asyncpg's dialect, rows as plain tuples, so both
paths answer alike (tests/test_fresh_reads.py compares them). SQLite keeps the
thread path (`AsyncReads.for_database` gives None).

Measured per read (one core, serial): asyncpg's `fetchrow` ~60 us of CPU, its
`Pool.acquire`/`release` ~100 us more (a timer re-armed per release, a reset, a
holder queue); a list of idle connections under a semaphore costs next to nothing,
so that is the pool here. The connections run single autocommit SELECTs and keep no
session state: nothing to reset between uses.

The event loop sees a pooled connection's socket close (a database restart) while
it sits idle, and such a connection is dropped before use. A lost or refused
connection is `Unavailable` (503), and then every idle connection is dropped (as
`Database.first_row` disposes of the engine), so a read fails once, not once per
pooled connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.expression import ClauseElement

from hub.errors import Unavailable
from hub.storage.db import Database

CONNECT_TIMEOUT = 5.0  # seconds a read waits for a connection before answering 503
_GONE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
         asyncpg.exceptions.OperatorInterventionError)  # (admin shutdown, crash shutdown, cannot connect now)


class AsyncReads:
    def __init__(self, db: Database, *, max_size: int = 8) -> None:
        self.db = db
        self._dialect = asyncpg_dialect()
        self._compiled: dict[ClauseElement, tuple[str, tuple[str, ...]]] = {}
        self._idle: list[asyncpg.Connection] = []  # newest last: the warmest is reused first
        self._slots = asyncio.Semaphore(max_size)
        self._closed = False

    @classmethod
    def for_database(cls, db: Database, **kw: Any) -> AsyncReads | None:
        """An async reader for `db` when it is PostgreSQL, else None."""
        return cls(db, **kw) if db.engine.dialect.name == "postgresql" else None

    async def open(self) -> None:
        """Nothing connects yet: the server starts while the database is away."""

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close(timeout=CONNECT_TIMEOUT)

    async def _connect(self) -> asyncpg.Connection:
        # the same URL without SQLAlchemy's driver name: asyncpg reads its query (host=, sslmode=)
        dsn = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)

    def _sql(self, stmt: ClauseElement, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        compiled = self._compiled.get(stmt)
        if compiled is None:
            c = stmt.compile(dialect=self._dialect)
            compiled = self._compiled[stmt] = (c.string, tuple(getattr(c, "positiontup", None) or ()))
        sql, order = compiled
        return sql, tuple(params[k] for k in order)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()

    async def first_row(self, stmt: ClauseElement, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """`Database.first_row`, awaited on the event loop."""
        sql, args = self._sql(stmt, params)
        try:
            if self._slots.locked():  # all connections busy: wait, but not for ever
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
        except TimeoutError as e:
            raise Unavailable(f"database busy ({self.db.safe_url}): no connection within "
                              f"{CONNECT_TIMEOUT:.0f} s") from e
        try:
            conn = None
            while self._idle and conn is None:
                conn = self._idle.pop()
                if conn.is_closed():  # the server went away while it sat idle
                    conn = None
            try:
                if conn is None:
                    conn = await self._connect()
                row = await conn.fetchrow(sql, *args)
            except (*_GONE, asyncpg.PostgresError) as e:
                if conn is not None and not isinstance(e, _GONE) and not conn.is_closed():
                    self._idle.append(conn)  # a refused query: the connection is fine
                    raise
                if conn is not None:
                    conn.terminate()
                self._drop_idle()  # the server restarted, say: the others are stale too
                raise Unavailable(f"database unreachable ({self.db.safe_url}): "
                                  f"{e or type(e).__name__}") from e
            except BaseException:  # a cancelled request, say: the connection's state is unknown
                if conn is not None:
                    conn.terminate()
                raise
            if self._closed:
                await conn.close(timeout=CONNECT_TIMEOUT)
            else:
                self._idle.append(conn)
        finally:
            self._slots.release()
        return tuple(row) if row is not None else None
