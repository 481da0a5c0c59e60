"""End to end: the broker takes values only while a persister subscription exists to take
them (hub/broker_auth/storagegate.py), at start-up, when the last persister leaves and
after a broker restart; a persister stopped for good hands its share over. Real Mosquitto
with the real plugin, `run.py --persister` subprocesses, SQLite."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from hub import credentials
from hub.controller import Controller
from hub.storage import changes, permissions, resources, revisions, users
from hub.storage.db import Database
from hub.storage.models import Level, Revision
from tests.fixtures.http import start_http_server
from tests.fixtures.persister import controller_key
from tests.support.broker import Client, RunningBroker, mqtt_client

HELD_LOG = "closed the connection before accepting it"


@pytest.fixture
def db(broker: RunningBroker) -> Iterator[Database]:
    d = Database(broker.settings.database_url)
    yield d
    d.dispose()


def stored(db: Database, path: str) -> list[float]:
    with db.session() as s:
        r = resources.find(s, path)
        if r is None:
            return []
        return [rev.num for rev in revisions.history(s, r.id, newest_first=False, count=100_000)]


def revision_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Revision)) or 0)


def wait_until(fn, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll what the hub reports (rows, logs) until `fn()` holds."""
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def watcher(broker: RunningBroker, db: Database, folder: str) -> Client:
    """A browser: a user with read access on `folder`, its token, subscribed to the folder."""
    with db.session() as s:
        user = users.create_user(s, "watcher@example.com", "correct horse battery", rounds=4)
        s.flush()
        permissions.grant(s, folder, Level.READ, user_id=user.id)
        uid = user.id
    broker.sync(10)
    token = credentials.issue_token(broker.settings.SECRET_KEY, uid, 600)
    w = mqtt_client(broker, token, username="browser", client_id="browser-1", transport="websockets")
    assert w.connected.is_set(), w.connack  # browsers may watch while no persister is there
    assert w.subscribe(f"{folder}/#") == [1]
    return w


def update(value: float) -> bytes:
    return json.dumps({"type": "update_sequence", "parameters": {"sequence": "v", "value": value}}).encode()


def held(broker: RunningBroker, key: str, protocol: int) -> bool:
    """A plain client with a good key gets no CONNACK: the connection is closed."""
    c = mqtt_client(broker, key, protocol=protocol, timeout=30)
    try:
        return c.connack is None and not c.connected.is_set() and c.disconnected.is_set()
    finally:
        c.close()


def test_controllers_wait_for_a_persister_and_a_watched_value_is_stored(broker, persister_factory, db, caplog):
    """The window of test_deploy's wss test, closed: a browser watches, no persister has
    subscribed yet; the controller's value must not be acknowledged-and-dropped."""
    caplog.set_level(logging.WARNING, "hub.controller")
    folder, key = controller_key(broker)
    w = watcher(broker, db, folder)
    assert held(broker, key, 5) and held(broker, key, 4)
    c = Controller(key, folder, port=broker.port)
    c.connect(wait=None)
    c.update("v", 1.0)
    assert not c.connected.is_set()
    assert wait_until(lambda: HELD_LOG in caplog.text)  # the client saw the refusal
    persister_factory(broker)  # waits until it is subscribed
    assert c.connected.wait(60), broker.log_tail()
    assert c.flush(30)
    assert wait_until(lambda: stored(db, f"{folder}/v") == [1.0]), broker.log_tail()
    assert w.wait_messages(1, 30) and b'"value":1.0' in w.messages[-1][1]
    c.close()
    w.close()
    assert caplog.text.count(HELD_LOG) == 1  # logged once, however many attempts
    assert "storage gate open: persister" in broker.log_text()
    assert "holding back API-key clients" in broker.log_text()


@pytest.mark.parametrize("protocol", [4, 5])
def test_last_persister_stopping_keeps_its_share_and_loses_nothing(broker, persister_factory, db, protocol):
    """SIGTERM of the only persister: its unsubscribe is refused, so its session keeps the
    share; the gate stays open, controllers go on publishing (QoS 1 and QoS 0), and the
    persister stores everything once it is back."""
    folder, key = controller_key(broker)
    p = persister_factory(broker, PERSISTER_CLIENT_ID="only-persister")
    c = mqtt_client(broker, key, protocol=protocol, client_id=f"plain-{protocol}")
    assert c.connected.is_set()
    assert c.publish(folder, update(1.0), timeout=30) == 0
    assert p.stop() == 0
    assert "keeps $share/" in p.log_text() and "handed over" not in p.log_text(), p.log_tail()
    assert broker.wait_log("persister 'only-persister' is the last one connected", 30), broker.log_tail()
    assert broker.wait_log("Client only-persister disconnected", 30), broker.log_tail()
    assert c.publish(folder, update(2.0), timeout=30) == 0  # acknowledged: it waits in the session
    c.paho.publish(folder, update(3.0), qos=0)
    assert c.publish(folder, update(4.0), timeout=30) == 0  # (after the QoS 0 one, on one connection)
    assert not c.disconnected.is_set()
    c.close()
    p.start()
    assert "session resumed" in p.log_text()
    assert wait_until(lambda: stored(db, f"{folder}/v") == [1.0, 2.0, 3.0, 4.0]), p.log_tail()
    assert "storage gate closed" not in broker.log_text()


@pytest.mark.parametrize("protocol", [4, 5])
def test_last_persister_ending_its_session_holds_controllers(broker_factory, persister_factory, protocol):
    """Sessions too short to count on (PERSISTER_SESSION_EXPIRY under the plugin's margin):
    the last persister leaving closes the gate; a publish is not acknowledged (it would be
    stored by nobody) and the connection ends; the hub's client buffers, retries, and gets
    in once a persister is back."""
    broker = broker_factory(PERSISTER_SESSION_EXPIRY=5)
    d = Database(broker.settings.database_url)
    try:
        folder, key = controller_key(broker)
        p = persister_factory(broker, PERSISTER_CLIENT_ID="only-persister")
        w = watcher(broker, d, folder)
        c = mqtt_client(broker, key, protocol=protocol, client_id=f"plain-{protocol}")
        assert c.connected.is_set()
        assert c.publish(folder, update(1.0), timeout=30) == 0
        assert p.stop() == 0
        assert broker.wait_log("storage gate closed: persister 'only-persister' ended its session", 30), \
            broker.log_tail()
        c.paho.publish(folder, update(2.0), qos=1)
        assert c.disconnected.wait(30), broker.log_tail()
        assert not c.pubacks
        c.close()
        assert held(broker, key, protocol)
        ctl = Controller(key, folder, port=broker.port, client_id=f"hub-{protocol}")
        ctl.connect(wait=None)
        ctl.update("v", 2.0)
        p.start()
        assert ctl.connected.wait(60) and ctl.flush(30)
        ctl.close()
        assert wait_until(lambda: stored(d, f"{folder}/v") == [1.0, 2.0]), broker.log_tail()
        assert len(w.wait_messages(2, 30)) == 2
        w.close()
    finally:
        d.dispose()


def test_broker_restart_holds_controllers_until_the_persister_is_back(broker, persister_factory, db):
    """Every value the hub's client had acknowledged across a broker restart (persistence
    on; shared subscriptions are not restored) is stored exactly once."""
    folder, key = controller_key(broker)
    persister_factory(broker, PERSISTER_CLIENT_ID="p-restart")
    ctl = Controller(key, folder, port=broker.port).connect(wait=30)
    n, stop = 0, threading.Event()

    def publish() -> None:
        nonlocal n
        while not stop.is_set() and n < 5000:
            ctl.update("v", float(n))
            n += 1
            stop.wait(0.002)

    t = threading.Thread(target=publish)
    t.start()
    assert wait_until(lambda: revision_count(db) > 50)
    broker.restart()  # SIGTERM, as systemd stops it
    assert wait_until(lambda: n > 0 and ctl.connected.is_set(), 60)
    stop.set()
    t.join()
    assert ctl.flush(60), broker.log_tail()
    ctl.close()
    assert wait_until(lambda: revision_count(db) >= n, 60)
    assert stored(db, f"{folder}/v") == [float(i) for i in range(n)]
    log = broker.log_text().split("mosquitto version 2.0.11 starting")[-1]
    assert log.index("storage gate open") > log.index("hub-auth: ready")


def test_persister_leaving_for_good_hands_its_share_over(broker, persister_factory, db):
    """Two persisters; one is stopped (scaled down) mid-stream and never comes back: the
    other stores everything, each value once; nothing waits in the stopped one's session."""
    folder, key = controller_key(broker)
    p1 = persister_factory(broker, PERSISTER_CLIENT_ID="persister-1")
    p2 = persister_factory(broker, PERSISTER_CLIENT_ID="persister-2")
    n = 4000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
            if i == n // 4:
                assert wait_until(lambda: revision_count(db) > 0)
                stopper = threading.Thread(target=lambda: setattr(p2, "rc", p2.stop()))
                stopper.start()
        assert c.flush(60)
    stopper.join(60)
    assert p2.rc == 0 and "handed over: nothing is left queued" in p2.log_text(), p2.log_tail()
    assert "Traceback" not in p2.log_text()
    assert wait_until(lambda: revision_count(db) >= n, 60), p1.log_tail()
    assert stored(db, f"{folder}/v") == [float(i) for i in range(n)]
    assert broker.wait_log("persister 'persister-2' unsubscribed", 30)
    assert "storage gate closed" not in broker.log_text().split("persister 'persister-2' unsubscribed")[-1]
    with db.session() as s:
        assert changes.latest(s) > 0


def test_killed_persister_keeps_its_share_until_it_is_back(broker, persister_factory, db):
    """kill -9: its session keeps its share of the messages (they wait for it); restarted
    under the same client id it stores them, each value once."""
    folder, key = controller_key(broker)
    persister_factory(broker, PERSISTER_CLIENT_ID="persister-1")
    p2 = persister_factory(broker, PERSISTER_CLIENT_ID="persister-2")
    n = 2000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
            if i == n // 4:
                p2.kill()
        assert c.flush(60)  # the gate stays open: persister-2's session still holds its share
    p2.start()
    assert "session resumed" in p2.log_text()
    assert wait_until(lambda: revision_count(db) >= n, 60)
    assert stored(db, f"{folder}/v") == [float(i) for i in range(n)]


def test_health_names_the_missing_persister(broker, persister_factory):
    """/health says which part is down: no persister subscribed, then one away (killed)."""
    def persister_check() -> dict[str, Any] | None:
        body = requests.get(srv.api("/health"), timeout=30).json()
        return body["checks"].get("persister")

    with start_http_server(broker.settings, broker.settings_path) as srv:
        assert wait_until(lambda: (c := persister_check()) is not None and not c["ok"]
                          and "no persister subscribed" in c["detail"])
        p = persister_factory(broker, PERSISTER_CLIENT_ID="p-health")
        assert wait_until(lambda: (c := persister_check()) is not None and c["ok"])
        p.kill()  # its session keeps its share: the gate stays open, the persister is "away"
        assert wait_until(lambda: (c := persister_check()) is not None and not c["ok"] and "1 away" in c["detail"])
        body = requests.get(srv.api("/health"), timeout=30).json()
        assert body["status"] == "degraded", body
