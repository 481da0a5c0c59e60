"""End to end: controllers publish through the real broker (with the real plugin), the
persister subprocess (`run.py --persister`) stores; real SQLite, PostgreSQL and S3 (moto)."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from hub import wire
from hub.controller import Controller
from hub.persister import deadletters
from hub.persister.stats import read_stats
from hub.storage import resources, revisions, values
from hub.storage.db import Database
from hub.storage.models import DeadLetter, Revision
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store
from tests.fixtures.persister import controller_key


def count(db: Database, model=Revision) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def wait_for(fn, timeout: float = 20.0, interval: float = 0.05):
    """Poll `fn` until it returns something truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(interval)


def wait_count(db: Database, n: int, timeout: float = 20.0, model=Revision) -> int:
    wait_for(lambda: count(db, model) >= n, timeout)
    return count(db, model)


def history(db: Database, path: str) -> list[tuple[int, object]]:
    store = Store(db, None, 0)  # type: ignore[arg-type]
    with db.session() as s:
        r = resources.get(s, path)
        seq = resources.sequence_of(s, r)
        return [(rev.timestamp_us, store.value(seq.data_type, rev))
                for rev in revisions.history(s, r.id, newest_first=False, count=100_000)]


def diagnose(broker, db, *persisters) -> str:
    """What to look at when a count is off: counters, dead letters, logs."""
    with db.session() as s:
        dead = [(d.topic, d.reason) for d in deadletters.recent(s, 5)]
    logs = "\n".join(f"--- {p.log_path.name}\n{p.log_tail(15)}" for p in persisters)
    return f"stats={read_stats(broker.settings)}\ndead letters={dead}\n{logs}\n--- broker\n{broker.log_tail(15)}"


@pytest.fixture
def db(broker):
    d = Database(broker.settings.database_url)
    yield d
    d.dispose()


def test_controller_update_is_stored(broker, persister, db):
    folder, key = controller_key(broker)
    with Controller(key, folder, port=broker.port) as c:
        ts = c.timestamp()
        c.update("temp", 21.5, ts)
        assert c.flush(5)
    assert wait_count(db, 1) == 1
    assert history(db, f"{folder}/temp") == [(values.parse_timestamp(ts), 21.5)]
    with db.session() as s:
        r = resources.get(s, f"{folder}/temp")
        assert revisions.latest(s, r).num == 21.5


def test_batch_forms_and_other_types(broker, persister, db):
    folder, key = controller_key(broker)
    with Controller(key, folder, port=broker.port) as c:
        c.update_values("temp", [(float(i), None) for i in range(100)])
        c.update_many([("temp", 200.0, None), ("mode", "auto", None), ("cfg", {"on": [1, 2]}, None)])
        c.send("set_relay", {"on": True})  # a command: relayed, not stored
        assert c.flush(5)
    assert wait_count(db, 103) == 103
    assert [v for _, v in history(db, f"{folder}/temp")] == [float(i) for i in range(100)] + [200.0]
    assert [v for _, v in history(db, f"{folder}/mode")] == ["auto"]
    assert [v for _, v in history(db, f"{folder}/cfg")] == [{"on": [1, 2]}]
    stats = wait_for(lambda: (s := read_stats(broker.settings)) and s["messages"] >= 3 and s)
    assert stats["ignored"] == 1 and stats["rejected"] == 0 and stats["stored"] == 103
    assert count(db, DeadLetter) == 0


BAD = [
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    b'{"parameters": {}}',
    json.dumps({"type": "t" * 41, "parameters": {}}).encode(),
    b'{"type": "update_sequence", "parameters": "x"}',
    wire.build("update_sequence", {"sequence": "temp"}),
    wire.build("update_sequence", {"sequence": "temp", "value": "warm"}),
    wire.build("update_sequence", {"sequence": "temp", "value": 1, "timestamp": "2999-01-01T00:00:00Z"}),
    wire.build("update_sequence", {"sequence": "nofolder/x", "value": 1}),
    wire.build("update_sequence", {"sequence": "../pi-b/x", "value": 1}),
]  # (oversized payloads are refused by the broker itself, and by the writer: test_persister_writer)


def test_bad_messages_do_not_crash_and_are_counted(broker, persister, db):
    p = persister
    folder, key = controller_key(broker, "acme/pi-a")
    with Controller(key, folder, port=broker.port) as c:
        c.update("temp", 1.0)  # creates temp (numeric)
        assert c.flush(5) and wait_count(db, 1) == 1
        for payload in BAD:
            c.publish(payload)
        assert c.flush(5)
        c.update("temp", 2.0)
        assert c.flush(5)
    assert wait_count(db, 2) == 2
    assert wait_count(db, len(BAD), model=DeadLetter) == len(BAD)
    assert p.is_running()
    stats = wait_for(lambda: (s := read_stats(broker.settings)) and s["rejected"] >= len(BAD) and s)
    assert stats["rejected"] == len(BAD) and stats["stored"] == 2
    with db.session() as s:
        reasons = " | ".join(d.reason for d in deadletters.recent(s))
    for needle in ("not JSON", "UTF-8", "not a JSON object", "no \"type\"", "longer than 40",
                   "must be a JSON object", "exactly one of", "needs a number", "future",
                   "does not exist", "bad name"):
        assert needle in reasons
    assert "rejected message on acme/pi-a: message is not JSON" in p.log_text()


def test_message_cannot_write_outside_its_folder(broker, persister, db):
    _, key_a = controller_key(broker, "acme/a")
    controller_key(broker, "acme/b")
    with db.session() as s:
        resources.create(s, "acme/b/x", "sequence")
    with Controller(key_a, "acme/a", port=broker.port) as c:
        c.update("/acme/b/x", 666.0)
        c.update_many([("y", 1.0, None), ("/acme/b/x", 667.0, None)])
        c.update("/acme/a/ok", 1.0)
        assert c.flush(5)
    assert wait_count(db, 1) == 1
    assert wait_count(db, 2, model=DeadLetter) == 2
    assert history(db, "acme/b/x") == []
    with db.session() as s:
        assert resources.find(s, "acme/a/y") is None  # the batch was rejected whole
        assert all("outside the message's folder acme/a" in d.reason for d in deadletters.recent(s))


def test_large_values_go_to_s3_and_read_back(broker_factory, persister_factory, s3_bucket):
    broker = broker_factory(BULK_STORAGE_URL=s3_bucket.url("hub"), S3_ENDPOINT_URL=s3_bucket.endpoint_url,
                            BULK_THRESHOLD=1000)
    persister_factory(broker)
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    with db.session() as s:
        resources.create(s, f"{folder}/cam", "sequence", sequence=SequenceSpec(data_type="image"))
    image = bytes(range(256)) * 100
    with Controller(key, folder, port=broker.port) as c:
        c.update("cam", base64.b64encode(image).decode())
        c.update("small", 1.0)
        assert c.flush(5)
    assert wait_count(db, 2) == 2
    with db.session() as s:
        rev = revisions.latest(s, resources.get(s, f"{folder}/cam"))
        assert rev.bulk_key and rev.data is None and rev.size == len(image)
    got = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"hub/{rev.bulk_key}")["Body"].read()
    assert got == image
    store = Store.from_settings(broker.settings)
    with db.session() as s:
        assert store.value("image", rev) == base64.b64encode(image).decode()
    store.close()
    db.dispose()


def test_two_persisters_share_the_stream_and_store_each_message_once(broker, persister_factory, db):
    p1 = persister_factory(broker, PERSISTER_CLIENT_ID="persister-1")
    p2 = persister_factory(broker, PERSISTER_CLIENT_ID="persister-2")
    folder, key = controller_key(broker)
    n = 3000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
        assert c.flush(30)
    assert wait_count(db, n, timeout=60) == n, diagnose(broker, db, p1, p2)
    assert sorted(v for _, v in history(db, f"{folder}/v")) == [float(i) for i in range(n)]
    stats = wait_for(lambda: (s := read_stats(broker.settings)) and s["stored"] >= n and s, timeout=10)
    each = {x["client_id"]: x for x in stats["persisters"]}
    assert set(each) == {"persister-1", "persister-2"}
    assert all(x["received"] > 0 for x in each.values())  # both took part
    assert stats["received"] == n and stats["duplicates"] == 0 and stats["stored"] == n
    assert p1.is_running() and p2.is_running()


@pytest.mark.parametrize("handover", [True, False])
def test_sigterm_drains_and_exits_cleanly_then_restart_catches_up(broker, persister_factory, db, handover):
    """The only persister keeps its session either way: with hand-over on (the default) the
    broker refuses its unsubscribe (nobody to hand over to); its session keeps queueing."""
    persister = persister_factory(broker, PERSISTER_HANDOVER_ON_STOP=handover)
    folder, key = controller_key(broker)
    n = 5000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
            if i == n // 3:
                wait_for(lambda: count(db) > 0, timeout=10)
                stopper = threading.Thread(target=lambda: setattr(persister, "rc", persister.stop()))
                stopper.start()
        stopper.join(30)
        assert persister.rc == 0
        stored_at_stop = count(db)
        text = persister.log_text()
        persister.start()
        assert c.flush(60)
    assert "stopping: storing what has arrived" in text and "Traceback" not in text
    assert "handed over" not in text
    assert ("the broker keeps $share/" in text) == handover
    assert wait_count(db, n, timeout=60) == n
    assert sorted(v for _, v in history(db, f"{folder}/v")) == [float(i) for i in range(n)]
    assert stored_at_stop < n  # the rest was kept in the session


def test_background_trim_keeps_max_history(broker_factory, persister_factory):
    broker = broker_factory(PERSISTER_TRIM_SECONDS=0.2)
    persister_factory(broker)
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    with db.session() as s:
        resources.create(s, f"{folder}/short", "sequence", sequence=SequenceSpec(max_history=5))
    with Controller(key, folder, port=broker.port) as c:
        c.update_values("short", [(float(i), None) for i in range(50)])
        assert c.flush(5)
    assert wait_for(lambda: [v for _, v in history(db, f"{folder}/short")] == [float(i) for i in range(45, 50)])
    db.dispose()


def test_missing_schema_is_a_clear_error(settings_factory, tmp_path):
    from tests.fixtures.persister import RunningPersister

    _, path = settings_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    p = RunningPersister(path, tmp_path / "p.log", {}).start(wait=False)
    assert p.proc.wait(30) == 2
    assert "has no hub tables: run `python run.py --init-db` first" in p.log_text()
