"""The plugin inside a real Mosquitto: who connects, who publishes and reads what,
revocation kicks, live grants. Paho clients over TCP and websockets, MQTT 3.1.1 and 5.

One broker for the module (its data is set up once, before it starts); tests that change
access make their own users and keys so they do not disturb the others.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from hub import credentials
from hub.broker_auth.policy import CHANGE_TOPIC, SYNC_TOPIC
from hub.storage import changes, keys, permissions, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import Level
from tests.fixtures.http import seed_people, start_http_server
from tests.support import free_port, write_settings_file
from tests.support.broker import Client, RunningBroker, mqtt_client, start_broker
from tests.support.processes import stop_process

NOT_AUTHORIZED = 135  # MQTT 5 reason code
SUBACK_FAILURE = 128  # MQTT 3.1.1
NO_SUBSCRIBERS = 16  # MQTT 5: accepted, nobody listening
TRANSPORTS = [pytest.param(t, p, id=f"{t}-v{p}") for t in ("tcp", "websockets") for p in (5, 4)]


@dataclass
class World:
    broker: RunningBroker
    db: Database
    ctl_key: str  # controller acme/greenhouse/pi-01
    other_ctl_key: str  # controller other/pi-x
    alice_key: str  # member of acme, read on acme/greenhouse
    alice_id: int
    revoked_key: str

    def token(self, user_id: int, ttl: float = 60) -> str:
        return credentials.issue_token(self.broker.settings.SECRET_KEY, user_id, ttl)

    def service(self, name: str = credentials.SERVICE_USERNAME, **kw: object) -> Client:
        password = credentials.service_password(self.broker.settings.SECRET_KEY, name)
        return mqtt_client(self.broker, password, username=name, **kw)  # type: ignore[arg-type]

    def sync(self) -> None:
        """Wait until the plugin has loaded every change made so far."""
        self.broker.sync()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("broker")
    url = f"sqlite:///{tmp / 'hub.db'}"
    path = write_settings_file(tmp / "config.py", {
        "DATA_DIR": str(tmp / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
        "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "PASSWORD_HASH_ROUNDS": 4,
        "MQTT_REQUIRE_PERSISTER": False})  # ACLs only, no persister: the storage gate is test_storage_gate's
    migrate(url)
    db = Database(url)
    with db.session() as s:
        acme = users.create_organization(s, "acme")
        users.create_organization(s, "other")
        for folder in ("acme/greenhouse", "acme/office"):
            resources.create(s, folder, "folder")
        resources.create(s, "acme/greenhouse/pi-01", "controller")
        resources.create(s, "other/pi-x", "controller")
        alice = users.create_user(s, "alice@example.com", "correct horse battery", rounds=4)
        users.set_membership(s, acme, alice)
        permissions.grant(s, "acme/greenhouse", Level.READ, user_id=alice.id)
        _, ctl_key = keys.create(s, controller_path="acme/greenhouse/pi-01")
        _, other_key = keys.create(s, controller_path="other/pi-x")
        _, alice_key = keys.create(s, user_id=alice.id)
        row, revoked = keys.create(s, user_id=alice.id)
        keys.revoke(s, row.prefix)
        alice_id = alice.id
    broker = start_broker(path)
    try:
        yield World(broker, db, ctl_key, other_key, alice_key, alice_id, revoked)
    finally:
        broker.stop()
        db.dispose()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(world: World, clients: list[Client], password: str | None, **kw: object) -> Client:
    c = mqtt_client(world.broker, password, **kw)  # type: ignore[arg-type]
    clients.append(c)
    return c


def tampered(token: str) -> str:
    tag, payload, mac = token.split(".")
    forged = credentials._b64(b'{"u":1,"exp":9999999999}')  # a different user, never expiring
    return ".".join((tag, forged, mac))


# -- authentication -----------------------------------------------------------
@pytest.mark.parametrize(("transport", "protocol"), TRANSPORTS)
def test_good_credentials_connect(world: World, clients: list[Client], transport: str, protocol: int) -> None:
    kw = {"transport": transport, "protocol": protocol}
    for password in (world.ctl_key, world.alice_key, world.token(world.alice_id)):
        c = connect(world, clients, password, **kw)
        assert c.connected.is_set(), (c.connack, world.broker.log_tail())
    # the username is informational: none at all (MQTT 5) or anything
    c = connect(world, clients, world.ctl_key, username="pi-01", **kw)
    assert c.connected.is_set()


@pytest.mark.parametrize(("transport", "protocol"), TRANSPORTS)
def test_bad_credentials_refused(world: World, clients: list[Client], transport: str, protocol: int) -> None:
    prefix = credentials.key_prefix(world.ctl_key)
    wrong = f"hk_{prefix}_{secrets.token_urlsafe(32)}"
    expired = credentials.issue_token(world.broker.settings.SECRET_KEY, world.alice_id, -10)
    cases = {
        "wrong secret": wrong,
        "revoked": world.revoked_key,
        "unknown prefix": credentials.new_key().key,
        "expired token": expired,
        "tampered token": tampered(world.token(world.alice_id)),
        "token of another hub": credentials.issue_token("x" * 48, world.alice_id, 60),
        "empty": "",
        "not a credential": "hunter2",
    }
    for case, password in cases.items():
        c = connect(world, clients, password, transport=transport, protocol=protocol)
        assert not c.connected.is_set(), case
        assert c.connack is None or c.connack.is_failure, case
    anonymous = connect(world, clients, None, username=None, transport=transport, protocol=protocol)
    assert not anonymous.connected.is_set()


def test_refusals_logged_with_prefix_never_secret(world: World, clients: list[Client]) -> None:
    prefix = credentials.key_prefix(world.ctl_key)
    secret_part = secrets.token_urlsafe(32)
    c = connect(world, clients, f"hk_{prefix}_{secret_part}", client_id="log-probe")
    assert not c.connected.is_set()
    assert world.broker.wait_log(f"refused connection of client 'log-probe': key {prefix}: wrong secret")
    log = world.broker.log_text()
    assert secret_part not in log
    assert world.ctl_key.split("_", 2)[2] not in log


# -- publish / subscribe ------------------------------------------------------
@pytest.mark.parametrize("protocol", [5, 4])
def test_publish_to_own_folder_delivered_to_readers(world: World, clients: list[Client], protocol: int) -> None:
    reader = connect(world, clients, world.alice_key, protocol=protocol)
    assert reader.subscribe("acme/greenhouse/#") == [1]
    ctl = connect(world, clients, world.ctl_key, protocol=protocol)
    assert ctl.publish("acme/greenhouse/pi-01", b'{"type":"update_sequence","parameters":{}}') == 0
    got = reader.wait_messages(1)
    assert got == [("acme/greenhouse/pi-01", b'{"type":"update_sequence","parameters":{}}')]


def test_publish_outside_own_folder_refused(world: World, clients: list[Client]) -> None:
    watcher = world.service()
    clients.append(watcher)
    assert watcher.subscribe("#") == [1]
    ctl = connect(world, clients, world.ctl_key, protocol=5)
    for topic in ("other/pi-x", "acme/greenhouse", "acme/office", "acme/greenhouse/pi-01/no-such-folder",
                  "nowhere", "$SYS/broker/uptime", "/acme/greenhouse/pi-01"):
        assert ctl.publish(topic, b"x") == NOT_AUTHORIZED, topic
    old = connect(world, clients, world.ctl_key, protocol=4)
    assert old.publish("other/pi-x", b"y") == 0  # 3.1.1 has no reason code: dropped silently
    ctl.publish("acme/greenhouse/pi-01", b"marker")
    got = watcher.wait_messages(1)
    assert got == [("acme/greenhouse/pi-01", b"marker")]


@pytest.mark.parametrize("protocol", [5, 4])
def test_subscriptions_outside_readable_folders_denied(world: World, clients: list[Client],
                                                       protocol: int) -> None:
    alice = connect(world, clients, world.alice_key, protocol=protocol)
    for topic in ("#", "+/#", "+", "$SYS/#", "$share/g/#", "other/#", "other/pi-x", "acme/#",
                  "acme/office/#", "acme/+/pi-01", "acme/nowhere/#"):
        assert alice.subscribe(topic) == [NOT_AUTHORIZED if protocol == 5 else SUBACK_FAILURE], topic
    for topic in ("acme/greenhouse/#", "acme/greenhouse/+", "acme/greenhouse/pi-01"):
        assert alice.subscribe(topic) == [1], topic


def test_reader_gets_only_its_folders(world: World, clients: list[Client]) -> None:
    alice = connect(world, clients, world.token(world.alice_id), transport="websockets")
    assert alice.subscribe("acme/greenhouse/#") == [1]
    assert alice.subscribe("acme/office/#") == [NOT_AUTHORIZED]
    service = world.service()
    clients.append(service)
    for topic in ("acme/office", "acme", "other/pi-x", "acme/greenhouse"):
        assert service.publish(topic, topic.encode()) in (0, NO_SUBSCRIBERS)
    assert alice.publish("acme/greenhouse", b"read-only") == NOT_AUTHORIZED
    service.publish("acme/greenhouse", b"end")  # delivered in order: what got through came before it
    assert alice.wait_messages(2) == [("acme/greenhouse", b"acme/greenhouse"), ("acme/greenhouse", b"end")]


def test_persister_reads_everything_through_a_shared_subscription(world: World, clients: list[Client]) -> None:
    persister = world.service(credentials.PERSISTER_USERNAME)
    clients.append(persister)
    assert persister.subscribe("#") == [NOT_AUTHORIZED]
    assert persister.subscribe("$share/persist/#") == [1]
    assert persister.publish("acme/greenhouse/pi-01", b"z") == NOT_AUTHORIZED
    ctl = connect(world, clients, world.ctl_key)
    ctl.publish("acme/greenhouse/pi-01", b"to-persist")
    assert persister.wait_messages(1) == [("acme/greenhouse/pi-01", b"to-persist")]
    other = connect(world, clients, world.other_ctl_key)
    assert other.subscribe("$share/persist/#") == [NOT_AUTHORIZED]


# -- live changes -------------------------------------------------------------
def _new_user_with_key(world: World, email: str) -> tuple[int, str]:
    with world.db.session() as s:
        u = users.create_user(s, email, "correct horse battery", rounds=4)
        users.set_membership(s, users.get_organization(s, "acme"), u)
        _, key = keys.create(s, user_id=u.id)
        uid = u.id
    world.sync()
    return uid, key


@pytest.mark.parametrize("how", ["revoke key", "delete user"])
def test_revocation_kicks_live_connection_within_2s(world: World, clients: list[Client], how: str) -> None:
    uid, key = _new_user_with_key(world, f"kick-{how.replace(' ', '-')}@example.com")
    victim = connect(world, clients, key, client_id=f"victim-{uid}")
    by_token = connect(world, clients, world.token(uid), client_id=f"victim-token-{uid}",
                       transport="websockets")
    bystander = connect(world, clients, world.alice_key)
    assert victim.connected.is_set() and by_token.connected.is_set() and bystander.connected.is_set()
    with world.db.session() as s:
        if how == "revoke key":
            keys.revoke(s, credentials.key_prefix(key) or "")
        else:
            users.delete_user(s, uid)
    t0 = time.monotonic()
    assert victim.disconnected.wait(2.0), world.broker.log_tail()
    assert time.monotonic() - t0 < 2.0
    if how == "delete user":
        assert by_token.disconnected.wait(1.0)
    else:
        assert not by_token.disconnected.is_set()  # the token still stands for a live user
    assert not bystander.disconnected.is_set()
    victim.paho.loop_stop()
    assert world.broker.wait_log(f"disconnecting client 'victim-{uid}'")
    again = connect(world, clients, key)
    assert not again.connected.is_set()


def test_expired_token_ends_its_live_connection(world: World, clients: list[Client]) -> None:
    """A browser token is good for MQTT_TOKEN_TTL: the connection made with it ends then
    (the console reconnects with the fresh token it fetched before)."""
    browser = connect(world, clients, world.token(world.alice_id, ttl=2), client_id="browser-expiring",
                      transport="websockets")
    other = connect(world, clients, world.token(world.alice_id, ttl=60), transport="websockets")
    assert browser.connected.is_set() and other.connected.is_set()
    t0 = time.monotonic()
    assert browser.disconnected.wait(5.0), world.broker.log_tail()
    assert time.monotonic() - t0 > 0.5  # not at once: when it ran out
    assert not other.disconnected.is_set()
    assert world.broker.wait_log("disconnecting client 'browser-expiring'")


def test_revoked_controller_last_will_reaches_watchers(world: World, clients: list[Client]) -> None:
    """A kicked controller's will still reaches those watching its folder (so a console
    shows it went away), and nothing else it sends passes."""
    with world.db.session() as s:
        resources.create(s, "acme/greenhouse/pi-will", "controller")
        row, key = keys.create(s, controller_path="acme/greenhouse/pi-will")
    world.sync()
    watcher = connect(world, clients, world.alice_key)
    assert watcher.subscribe("acme/greenhouse/pi-will/#") == [1]  # matches the folder itself too
    ctl = connect(world, clients, key, client_id="pi-will",
                  will=("acme/greenhouse/pi-will", b'{"type":"status","parameters":{"connected":false}}'))
    assert ctl.connected.is_set(), world.broker.log_tail()
    with world.db.session() as s:
        keys.revoke(s, row.prefix)
    assert ctl.disconnected.wait(2.0), world.broker.log_tail()
    watcher.wait_messages(1, timeout=3.0)
    service = world.service()
    clients.append(service)
    service.publish("acme/greenhouse/pi-will", b"end")  # in order: anything else would come before it
    will = b'{"type":"status","parameters":{"connected":false}}'
    assert watcher.wait_messages(2) == [("acme/greenhouse/pi-will", will), ("acme/greenhouse/pi-will", b"end")]
    again = connect(world, clients, key)
    assert not again.connected.is_set()


def test_grant_and_removal_take_effect_without_reconnect(world: World, clients: list[Client]) -> None:
    uid, key = _new_user_with_key(world, "grantee@example.com")
    with world.db.session() as s:  # somewhere bob keeps reading throughout
        permissions.grant(s, "acme/greenhouse", Level.READ, user_id=uid)
    world.sync()
    bob = connect(world, clients, key)
    assert bob.publish("acme/office", b"before") == NOT_AUTHORIZED
    assert bob.subscribe("acme/office/#") == [NOT_AUTHORIZED]
    with world.db.session() as s:
        perm_id = permissions.grant(s, "acme/office", Level.WRITE, user_id=uid).id
    t0 = time.monotonic()
    while bob.publish("acme/office", b"after") == NOT_AUTHORIZED:
        assert time.monotonic() - t0 < 2.0, world.broker.log_tail()
        time.sleep(0.05)
    assert bob.subscribe("acme/office/#") == [1]
    service = world.service()
    clients.append(service)
    service.publish("acme/office", b"first")
    bob.wait_messages(1)
    assert ("acme/office", b"first") in bob.messages
    with world.db.session() as s:
        permissions.revoke(s, perm_id)
    world.sync()
    count = len(bob.messages)
    assert bob.subscribe("acme/greenhouse") == [1]
    service.publish("acme/office", b"second")
    service.publish("acme/greenhouse", b"end")  # in order: "second" would have come before it
    assert bob.wait_messages(count + 1)[count:] == [("acme/greenhouse", b"end")]
    assert len(bob.messages) == count + 1  # the subscription stays, its deliveries stop
    assert bob.publish("acme/office", b"x") == NOT_AUTHORIZED
    assert not bob.disconnected.is_set()


def test_new_folder_and_key_usable_without_restart(world: World, clients: list[Client]) -> None:
    with world.db.session() as s:
        resources.create(s, "acme/greenhouse/pi-02", "controller")
        _, key = keys.create(s, controller_path="acme/greenhouse/pi-02")
    world.sync()
    pi = connect(world, clients, key)
    assert pi.publish("acme/greenhouse/pi-02", b"hello") in (0, NO_SUBSCRIBERS)
    assert pi.publish("acme/greenhouse/pi-01", b"not mine") == NOT_AUTHORIZED


def test_sync_request_is_answered_with_the_change_the_plugin_decides_by(world: World,
                                                                         clients: list[Client]) -> None:
    """hub-service publishes to SYNC_TOPIC; the plugin looks at the change log at once and
    says on CHANGE_TOPIC the change it now decides by, a new folder included."""
    watcher = world.service()
    clients.append(watcher)
    assert watcher.subscribe(CHANGE_TOPIC, qos=0) == [0]
    with world.db.session() as s:
        resources.create(s, "acme/greenhouse/pi-01/synced", "folder")
    with world.db.session() as s:
        wanted = changes.latest(s)
    pi = connect(world, clients, world.ctl_key)
    deadline = time.monotonic() + 10
    while True:  # each request is answered; one is enough unless the look came before the commit was seen
        before = len(watcher.messages)
        watcher.publish(SYNC_TOPIC, str(wanted), qos=0)
        got = watcher.wait_messages(before + 1, timeout=2)
        ids = [int(payload) for topic, payload in got if topic == CHANGE_TOPIC]
        if ids and max(ids) >= wanted:
            break
        assert time.monotonic() < deadline, f"no change {wanted} on {CHANGE_TOPIC}: {got}\n{world.broker.log_tail()}"
    # the folder is a topic now: no poll, no wait
    assert pi.publish("acme/greenhouse/pi-01/synced", b"at once") in (0, NO_SUBSCRIBERS)


def test_sync_topics_are_the_hub_services_only(world: World, clients: list[Client]) -> None:
    alice = connect(world, clients, world.alice_key)
    assert alice.subscribe(CHANGE_TOPIC) == [NOT_AUTHORIZED]
    assert alice.publish(SYNC_TOPIC, b"1") == NOT_AUTHORIZED
    service = world.service()
    clients.append(service)
    assert service.subscribe(SYNC_TOPIC) == [NOT_AUTHORIZED]  # nobody hears the requests
    assert service.publish(SYNC_TOPIC, b"1") == NOT_AUTHORIZED  # a request, never delivered


def test_stats_file_counts_decisions(world: World, clients: list[Client]) -> None:
    from hub.broker_auth.stats import WRITE_INTERVAL, read_stats

    connect(world, clients, "nope")
    deadline = time.monotonic() + WRITE_INTERVAL * 3
    stats = read_stats(world.broker.settings)
    while (stats is None or stats["connects_refused"] == 0) and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = read_stats(world.broker.settings)
    assert stats is not None
    assert stats["connects_refused"] >= 1 and stats["connects_allowed"] >= 0
    assert stats["acl_allowed"] >= 0 and stats["age_s"] < WRITE_INTERVAL * 3
    assert stats["db_ok"] is True


# -- fail closed --------------------------------------------------------------
@pytest.mark.parametrize("breakage", ["unreadable settings", "database not migrated"])
def test_plugin_that_cannot_start_stops_mosquitto(tmp_path: Path, breakage: str) -> None:
    from tests.support.broker import BrokerFailed

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
        "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port()})
    if breakage == "database not migrated":
        Database(url).dispose()
    else:
        migrate(url)
    broker = RunningBroker(path)
    if breakage == "unreadable settings":
        path.write_text("SECRET_KEY = (\n")
    with pytest.raises(BrokerFailed) as e:
        broker.start(timeout=20)
    assert "hub-auth: cannot start" in str(e.value)
    if breakage == "database not migrated":
        assert "run `run.py --init-db`" in str(e.value)
    assert not broker.is_running()


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def _create_folder_timed(settings_factory: Any, tmp_path: Path, mqtt_port: int, bound: float) -> float:
    """Seconds a folder create over the hub's API takes with the broker at `mqtt_port`."""
    settings, _ = settings_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'hub.db'}", MQTT_PORT=mqtt_port,
                                   MQTT_FOLDER_SYNC_SECONDS=bound, PASSWORD_HASH_ROUNDS=4)
    migrate(settings.database_url)
    people = seed_people(settings)
    with start_http_server(settings, migrate_db=False) as http:
        # the first create may wait for the worker's first connection attempt: time the second
        requests.post(http.api(f"/resources/{people.controller}/first"), json={"type": "folder"},
                      headers=people.auth("admin"), timeout=30)
        started = time.monotonic()
        r = requests.post(http.api(f"/resources/{people.controller}/second"), json={"type": "folder"},
                          headers=people.auth("admin"), timeout=30)
        took = time.monotonic() - started
        assert r.status_code == 201, r.text
        assert requests.get(http.api(f"/resources/{people.controller}/second"), headers=people.auth("admin"),
                            timeout=10).status_code == 200
    return took


def test_folder_create_answers_at_once_while_the_broker_is_down(settings_factory: Any, tmp_path: Path) -> None:
    assert _create_folder_timed(settings_factory, tmp_path, free_port(), bound=20.0) < 5.0


def test_folder_create_waits_no_longer_than_its_bound(settings_factory: Any, tmp_path: Path) -> None:
    """A broker that never confirms (a Mosquitto without the hub's plugin): the create
    still succeeds, after MQTT_FOLDER_SYNC_SECONDS."""
    port = free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        took = _create_folder_timed(settings_factory, tmp_path, port, bound=1.0)
        assert 1.0 <= took < 5.0
    finally:
        stop_process(proc)
