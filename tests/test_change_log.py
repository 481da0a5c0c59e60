"""The change log's followers miss no change that commits after a newer one (PostgreSQL
hands out ids from a sequence; transactions commit in any order)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from hub.http.app import _generation
from hub.http.authcache import AuthCache
from hub.storage import changes, keys, users
from hub.storage.db import Database, migrate
from hub.storage.models import ApiKey, Change
from hub.storage.store import Store
from tests.support import free_port, write_settings_file
from tests.support.broker import RunningBroker, mqtt_client, start_broker


@pytest.fixture
def pgdb(pg_database_url: str) -> Iterator[Database]:
    migrate(pg_database_url)
    database = Database(pg_database_url)
    yield database
    database.dispose()


def _poll(db: Database, cursor: changes.ChangeCursor) -> list[tuple[int, str, str]]:
    with db.session() as s:
        rows = cursor.read(s, 100)
    cursor.consume(rows)
    return rows


def _broker_on(db: Database, tmp_path: Path) -> RunningBroker:
    """Mosquitto with the hub's plugin on `db`, no persister required."""
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": secrets.token_hex(24),
        "DATABASE_URL": db.url, "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(),
        "PASSWORD_HASH_ROUNDS": 4, "MQTT_REQUIRE_PERSISTER": False})
    return start_broker(path)


@pytest.mark.pg
def test_a_change_committed_after_a_newer_one_is_still_followed(pgdb: Database) -> None:
    with pgdb.session() as s:
        cursor = changes.ChangeCursor(changes.latest(s))
    late = pgdb.session()
    s_late = late.__enter__()
    changes.record(s_late, "key", "late")
    s_late.flush()  # takes id N, not committed
    late_id = s_late.scalar(select(Change.id).where(Change.subject == "late"))
    with pgdb.session() as s:  # takes N+1, commits first
        changes.record(s, "key", "early")
    first = _poll(pgdb, cursor)
    assert [(k, subj) for _, k, subj in first] == [("key", "early")]
    assert cursor.position > late_id
    assert _poll(pgdb, cursor) == []
    late.__exit__(None, None, None)  # N commits now
    assert _poll(pgdb, cursor) == [(late_id, "key", "late")]
    assert _poll(pgdb, cursor) == []  # once


@pytest.mark.pg
def test_a_change_rolled_back_is_given_up_after_a_while(pgdb: Database) -> None:
    now = [0.0]
    with pgdb.session() as s:
        cursor = changes.ChangeCursor(changes.latest(s), gap_seconds=5, clock=lambda: now[0])
    with pytest.raises(RuntimeError), pgdb.session() as s:
        changes.record(s, "key", "gone")
        s.flush()
        raise RuntimeError
    with pgdb.session() as s:
        changes.record(s, "key", "kept")
    assert [subj for _, _, subj in _poll(pgdb, cursor)] == ["kept"]
    assert cursor.gaps
    now[0] = 6.0
    assert _poll(pgdb, cursor) == []
    assert not cursor.gaps


@pytest.mark.pg
def test_a_long_transaction_s_changes_are_followed_however_late_it_commits(pgdb: Database) -> None:
    """An import flushes its changes early and commits minutes later: past the follower's
    GAP_SECONDS. Inside `taken_at_the_end` they take their ids at the commit."""
    now = [0.0]
    with pgdb.session() as s:
        cursor = changes.ChangeCursor(changes.latest(s), gap_seconds=5, clock=lambda: now[0])
    with pgdb.session() as s_long, changes.taken_at_the_end(s_long):
        changes.record(s_long, "key", "imported")
        s_long.flush()  # an id taken at the start, not committed
        with pgdb.session() as s:
            changes.record(s, "key", "meanwhile")
        assert [subj for _, _, subj in _poll(pgdb, cursor)] == ["meanwhile"]
        now[0] = 60.0  # the transaction runs past the follower's patience for the skipped id
        assert _poll(pgdb, cursor) == []
        assert not cursor.gaps
    assert [(k, subj) for _, k, subj in _poll(pgdb, cursor)] == [("key", "imported")]
    with pgdb.session() as s:  # the early row is gone: each change is in the log once
        assert s.scalars(select(Change.subject).where(Change.subject == "imported")).all() == ["imported"]


@pytest.mark.pg
def test_a_key_revoked_in_a_transaction_that_commits_late_is_kicked(pgdb: Database, tmp_path: Path) -> None:
    """The broker's plugin polls between the two commits (it has loaded the newer change)
    and still kicks the key revoked by the older one once that commits."""
    with pgdb.session() as s:
        alice = users.create_user(s, "alice@example.com", "correct horse battery", rounds=4)
        bob = users.create_user(s, "bob@example.com", "correct horse battery", rounds=4)
        row, key = keys.create(s, user_id=alice.id)
        prefix, bob_id = row.prefix, bob.id
    broker = _broker_on(pgdb, tmp_path)
    victim = None
    try:
        victim = mqtt_client(broker, key, client_id="victim")
        assert victim.connected.is_set(), broker.log_tail()
        late = pgdb.session()
        s_late = late.__enter__()
        keys.revoke(s_late, prefix)
        s_late.flush()  # holds change id N, not committed
        with pgdb.session() as s:  # N+1 commits first
            keys.create(s, user_id=bob_id)
        broker.sync()  # the plugin is at N+1
        assert not victim.disconnected.is_set()
        late.__exit__(None, None, None)
        t0 = time.monotonic()
        assert victim.disconnected.wait(5.0), broker.log_tail()
        assert time.monotonic() - t0 < 5.0
        again = mqtt_client(broker, key, client_id="victim-again")
        assert not again.connected.is_set()
        again.close()
    finally:
        if victim is not None:
            victim.close()
        broker.stop()


@pytest.mark.pg
def test_a_key_use_write_waiting_on_a_lock_does_not_hold_up_revocations(pgdb: Database, tmp_path: Path) -> None:
    """The plugin writes key uses (`keyuse.py`) on a thread of its own: while that write
    waits for a row another transaction holds, the plugin still follows the change log."""
    with pgdb.session() as s:
        alice = users.create_user(s, "alice@example.com", "correct horse battery", rounds=4)
        row, key = keys.create(s, user_id=alice.id)
        prefix, alice_id = row.prefix, alice.id
    broker = _broker_on(pgdb, tmp_path)
    holder, client = pgdb.session(), None
    try:
        s_hold = holder.__enter__()
        s_hold.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(name="held"))  # the row is locked
        client = mqtt_client(broker, key, client_id="alice")  # a key use for the plugin to write
        assert client.connected.is_set(), broker.log_tail()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(pgdb, "api_keys"):  # the plugin's write is stuck behind it
            assert time.monotonic() < deadline, "the plugin never tried to record the key use"
            time.sleep(0.05)
        with pgdb.session() as s:
            other, _ = keys.create(s, user_id=alice_id)
        broker.sync()  # the plugin follows the log all the same
        with pgdb.session() as s:
            keys.revoke(s, other.prefix)
        broker.sync()
    finally:
        holder.__exit__(None, None, None)
        if client is not None:
            client.close()
        broker.stop()


def _waiting_on_a_lock(db: Database, table: str) -> bool:
    with db.session() as s:
        return bool(s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND datname = current_database() AND query LIKE :q"), {"q": f"%{table}%"}))


@pytest.mark.pg
def test_http_worker_drops_cached_access_for_a_change_committed_late(pgdb: Database,
                                                                     settings_factory: Any) -> None:
    """The worker's poll (`app._generation`) reports the late change, and the auth cache
    drops what it cached between the two commits."""
    settings, _ = settings_factory(DATABASE_URL=pgdb.url)
    store = Store.from_settings(settings)
    cursor: list[changes.ChangeCursor] = []
    cache = AuthCache()
    told: list[tuple[int, list[tuple[int, str, str]]]] = []
    cache.listeners.append(lambda gen, late: told.append((gen, list(late))))
    try:
        change_id, _, late = _generation(store, cursor)
        cache.observe(change_id, late)
        late_session = pgdb.session()
        s_late = late_session.__enter__()
        changes.record(s_late, "key", "late")
        s_late.flush()
        with pgdb.session() as s:
            changes.record(s, "key", "early")
        change_id, _, late = _generation(store, cursor)
        cache.observe(change_id, late)
        assert late == []
        cache.put_caller("token", "the caller as the late change's key was")
        late_session.__exit__(None, None, None)
        again, _, late = _generation(store, cursor)
        assert again == change_id and [subj for _, _, subj in late] == ["late"]
        cache.observe(again, late)
        assert cache.get_caller("token") is None
        assert told[-1] == (change_id, late)
        assert _generation(store, cursor)[2] == []  # once
    finally:
        store.db.dispose()


def test_a_huge_jump_in_ids_keeps_a_bounded_number_of_gaps() -> None:
    cursor = changes.ChangeCursor(10)
    cursor.consume([(10 + 10 * changes.MAX_GAPS, "key", "far")])
    assert len(cursor.gaps) == changes.MAX_GAPS and max(cursor.gaps) == 10 + 10 * changes.MAX_GAPS - 1
    cursor.consume([(20 + 10 * changes.MAX_GAPS, "key", "farther")])
    assert len(cursor.gaps) == changes.MAX_GAPS and cursor.position == 20 + 10 * changes.MAX_GAPS
