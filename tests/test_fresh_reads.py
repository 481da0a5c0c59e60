"""Reads with the HTTP read cache off: the one hot query (hub/storage/latest.py), run in a
thread or (PostgreSQL) on the event loop (hub/storage/asyncreads.py), the
index every live-path lookup must use, and the pool's idle-only liveness check."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hub.errors import NotFound, Unavailable
from hub.storage import asyncreads, latest, resources
from hub.storage.db import Database, migrate
from hub.storage.models import Resource, ResourceType
from tests.fixtures.http import seed_people
from tests.support import PgCluster


def _plan(db: Database, stmt: Any, params: dict[str, Any]) -> str:
    compiled = stmt.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}) \
        if not params else stmt.compile(dialect=db.engine.dialect)
    with db.engine.connect() as c:
        if db.engine.dialect.name == "postgresql":
            c.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether the index CAN serve
            rows = c.exec_driver_sql("EXPLAIN " + compiled.string, params)
        else:
            args = tuple(params[k] for k in compiled.positiontup or ())
            rows = c.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, args)
        return "\n".join(str(r[-1]) for r in rows)


def test_live_path_lookups_use_the_partial_index(db: Database) -> None:
    """`deleted IS false` does not match the index's `NOT deleted` (PostgreSQL) or
    `deleted = 0` (SQLite): every lookup by path scanned the whole table."""
    with db.session() as s:
        for i in range(20):
            resources.create(s, f"org{i}", ResourceType.ORGANIZATION.value)
    by_path = select(Resource.id).where(Resource.path == "org7", ~Resource.deleted)
    plans = {"latest": _plan(db, latest._STMT, {"path": "org7"}),
             "get_with_latest": _plan(db, resources._WITH_LATEST, {"path": "org7"}),
             "find": _plan(db, by_path, {})}
    for name, plan in plans.items():
        assert "ix_resources_live_path" in plan, f"{name}: {plan}"
    old = select(Resource.id).where(Resource.path == "org7", Resource.deleted.is_(False))
    assert "ix_resources_live_path" not in _plan(db, old, {})  # the form that was used


def test_latest_load_matches_the_session_read(db: Database) -> None:
    from hub.storage import revisions
    from hub.storage.revisions import NewRevision

    with db.session() as s:
        resources.create(s, "acme", ResourceType.ORGANIZATION.value)
        seq = resources.create(s, "acme/t", ResourceType.SEQUENCE.value,
                               sequence=resources.SequenceSpec(units="C", min_value=-40.0))
        resources.create(s, "acme/f", ResourceType.FILE.value, attributes={"content_type": "text/plain"})
        revisions.append(s, [NewRevision(seq.id, 1_700_000_000_000_000, num=21.5, size=8)])
    r, spec, rev = latest.load(db, "acme/t")
    with db.session() as s:
        orm_r, orm_spec, orm_rev = resources.get_with_latest(s, "acme/t")
        assert (r.path, r.name, r.type, r.created_at, r.modified_at) == \
            (orm_r.path, orm_r.name, orm_r.type, orm_r.created_at, orm_r.modified_at)
        assert spec is not None and orm_spec is not None and orm_rev is not None
        assert (spec.units, spec.min_value, spec.data_type) == ("C", -40.0, orm_spec.data_type)
        assert rev is not None and (rev.id, rev.timestamp_us, rev.num) == (orm_rev.id, orm_rev.timestamp_us, 21.5)
    f, fspec, frev = latest.load(db, "acme/f")
    assert f.type == "file" and fspec is None and frev is None and "text/plain" in (f.attributes or "")
    with pytest.raises(NotFound):
        latest.load(db, "acme/none")


@pytest.mark.pg
def test_uncached_reads_on_postgresql_survive_a_restart(http_server_factory: Any, pg_database_url: str,
                                                        pg_cluster: PgCluster) -> None:
    srv = http_server_factory(DATABASE_URL=pg_database_url, HTTP_READ_CACHE_SECONDS=0)
    people = seed_people(srv.settings)
    w, m = people.auth("writer"), people.auth("member")
    assert requests.post(srv.api("/resources/acme/site/temp"), headers=w,
                         json={"type": "sequence", "units": "C", "value": 20}).status_code == 201
    assert requests.post(srv.api("/resources/acme/site/notes"), headers=w,
                         json={"type": "file", "content": "hello"}).status_code == 201
    for value in (21, 22.5, 23):  # every read sees the write before it
        assert requests.put(srv.api("/resources/acme/site/temp"), headers=w,
                            json={"value": value}).status_code == 200
        r = requests.get(srv.api("/resources/acme/site/temp"), headers=m)
        assert r.status_code == 200 and r.json()["value"] == value, r.text
        assert r.json()["sequence"]["units"] == "C" and r.headers["X-Access"] == "read"
    assert requests.get(srv.api("/resources/acme/site/notes"), headers=m).text == "hello"
    meta = requests.get(srv.api("/resources/acme/site/notes?meta=true"), headers=m).json()
    assert meta["type"] == "file" and meta["size"] == 5
    folder = requests.get(srv.api("/resources/acme/site"), headers=m).json()
    assert {c["name"] for c in folder["children"]} >= {"temp", "notes", "pi-01"}
    assert requests.get(srv.api("/resources/acme/site/nothing"), headers=m).status_code == 404

    def read_until_ok() -> list[int]:
        statuses = []
        for _ in range(200):  # pooled connections died: 503 at worst, never a 500
            r = requests.get(srv.api("/resources/acme/site/temp"), headers=m)
            statuses.append(r.status_code)
            if r.status_code == 200:
                assert r.json()["value"] == 23
                break
        assert statuses[-1] == 200 and set(statuses) <= {200, 503}, statuses
        return statuses

    pg_cluster.stop()  # a restart: connections idle this long are checked before use
    pg_cluster.start()
    read_until_ok()
    db = Database(pg_database_url)  # every pooled connection killed while in use (no idle check):
    try:  # the first read on a dead one answers 503, and the pool starts afresh
        with db.engine.connect() as c:
            c.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        db.dispose()
    statuses = read_until_ok()
    assert statuses.count(503) <= 2, statuses


def _seed_values(db: Database) -> None:
    from hub.storage import revisions
    from hub.storage.revisions import NewRevision

    with db.session() as s:
        resources.create(s, "acme", ResourceType.ORGANIZATION.value)
        num = resources.create(s, "acme/t", ResourceType.SEQUENCE.value,
                               sequence=resources.SequenceSpec(units="C", min_value=-40.0, decimal_places=2))
        text = resources.create(s, "acme/label", ResourceType.SEQUENCE.value,
                                sequence=resources.SequenceSpec(data_type="text"))
        blob = resources.create(s, "acme/pic", ResourceType.SEQUENCE.value,
                                sequence=resources.SequenceSpec(data_type="image"))
        resources.create(s, "acme/empty", ResourceType.SEQUENCE.value)
        resources.create(s, "acme/f", ResourceType.FILE.value, attributes={"content_type": "text/plain"})
        resources.create(s, "acme/dir", ResourceType.FOLDER.value)
        revisions.append(s, [NewRevision(num.id, 1_700_000_000_000_000, num=21.5, size=8),
                             NewRevision(text.id, 1_700_000_000_000_001, text="héllo wörld", size=12),
                             NewRevision(blob.id, 1_700_000_000_000_002, data=b"\x89PNG\x00\xff", size=6)])


@pytest.mark.pg
def test_async_load_on_postgresql_matches_the_sync_one(pg_database_url: str) -> None:
    """The HTTP server's event-loop read (asyncpg) and the thread read (psycopg) run
    the same statement: the same records for every kind of resource, NotFound alike."""
    migrate(pg_database_url)
    db = Database(pg_database_url)
    try:
        _seed_values(db)
        reads = asyncreads.AsyncReads.for_database(db)
        assert reads is not None
        paths_ = ["acme/t", "acme/label", "acme/pic", "acme/empty", "acme/f", "acme/dir", "/acme/t"]

        async def run() -> list[Any]:
            await reads.open()
            try:
                got = [await latest.load_async(reads, p) for p in paths_]
                with pytest.raises(NotFound):
                    await latest.load_async(reads, "acme/none")
                return got
            finally:
                await reads.close()

        got = asyncio.run(run())
        assert got == [latest.load(db, p) for p in paths_]
        assert got[0][2] is not None and got[0][2].num == 21.5
        assert got[1][2] is not None and got[1][2].text == "héllo wörld"
        assert got[2][2] is not None and got[2][2].data == b"\x89PNG\x00\xff"
    finally:
        db.dispose()


def test_sqlite_keeps_the_thread_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate(url)
    db = Database(url)
    try:
        assert asyncreads.AsyncReads.for_database(db) is None
    finally:
        db.dispose()


@pytest.mark.pg
def test_async_read_when_the_database_is_away_is_unavailable(pg_database_url: str, pg_cluster: PgCluster) -> None:
    """Stopped: Unavailable (503) at once, not a hang and not a 500; back: reads again.
    A connection killed while idle costs at most one Unavailable."""
    migrate(pg_database_url)
    db = Database(pg_database_url)
    try:
        _seed_values(db)
        reads = asyncreads.AsyncReads.for_database(db)
        assert reads is not None

        async def read() -> str:
            try:
                r, _, rev = await latest.load_async(reads, "acme/t")
                assert rev is not None and rev.num == 21.5
                return "ok"
            except Unavailable:
                return "unavailable"

        async def run() -> None:
            await reads.open()
            try:
                assert await read() == "ok"
                pg_cluster.stop()
                try:
                    t = time.monotonic()
                    assert [await read(), await read()] == ["unavailable", "unavailable"]
                    assert time.monotonic() - t < 2 * asyncreads.CONNECT_TIMEOUT
                finally:
                    pg_cluster.start()
                outcomes = [await read() for _ in range(3)]
                assert outcomes.count("unavailable") <= 1 and outcomes[-1] == "ok", outcomes
                await asyncio.gather(*(read() for _ in range(8)))  # several pooled connections
                with db.engine.connect() as c:
                    c.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                outcomes = [await read() for _ in range(3)]
                assert outcomes.count("unavailable") <= 1 and outcomes[-1] == "ok", outcomes
            finally:
                await reads.close()

        asyncio.run(run())
    finally:
        db.dispose()


@pytest.mark.pg
def test_uncached_read_on_postgresql_is_503_while_the_database_is_away(
        http_server_factory: Any, pg_database_url: str, pg_cluster: PgCluster) -> None:
    srv = http_server_factory(DATABASE_URL=pg_database_url, HTTP_READ_CACHE_SECONDS=0)
    people = seed_people(srv.settings)
    w, m = people.auth("writer"), people.auth("member")
    assert requests.post(srv.api("/resources/acme/site/temp"), headers=w,
                         json={"type": "sequence", "value": 20}).status_code == 201
    assert requests.get(srv.api("/resources/acme/site/temp"), headers=m).json()["value"] == 20
    pg_cluster.stop()
    try:
        r = requests.get(srv.api("/resources/acme/site/temp"), headers=m, timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable" and "database" in r.json()["error"]["message"]
    finally:
        pg_cluster.start()
    for _ in range(5):
        r = requests.get(srv.api("/resources/acme/site/temp"), headers=m)
        if r.status_code == 200:
            break
        assert r.status_code == 503, r.text
    assert r.status_code == 200 and r.json()["value"] == 20
