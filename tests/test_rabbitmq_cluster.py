"""The hub on a real 3-node RabbitMQ cluster (BROKER=rabbitmq): the access rule of the
Mosquitto path, revocation within 2 s, values stored exactly once while a node is killed
with -9, a browser watching over Web MQTT and the real rhizo-client.

One cluster for the module (about 30 s to start; tests/support/rabbit_stack.py): the
broker-auth service, two AMQP persisters, the notifier and the HTTP server. Tests that
change access make their own users and keys. MQTT 3.1.1 only: RabbitMQ 3.10 has no MQTT 5.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from hub import credentials, wire
from hub.controller import Controller
from hub.rabbitmq import nodes as nodes_mod
from hub.rabbitmq.cluster import management_get
from hub.settings import Settings
from hub.storage import keys, permissions, resources, users
from hub.storage.db import Database
from hub.storage.models import Level, Resource, ResourceType, Revision
from tests.support.broker import Client, mqtt_client
from tests.support.rabbit_stack import RabbitHub, rabbit_hub

pytestmark = pytest.mark.skipif(not Path(Settings.RABBITMQ_SERVER_BIN).exists(),
                                reason="rabbitmq-server is not installed (Debian's rabbitmq-server): `make setup` "
                                       "installs it")

SUBACK_FAILURE = 128
KICK_WITHIN = 2.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitHub]:
    root = tmp_path_factory.mktemp("rabbit")

    def seed(db: Database) -> None:
        with db.session() as s:
            users.create_organization(s, "other")
            resources.create(s, "other/pi-x", ResourceType.CONTROLLER.value)
            resources.create(s, "other/lab", ResourceType.FOLDER.value)
            resources.create(s, "acme/office", ResourceType.FOLDER.value)
            _, key = keys.create(s, controller_path="other/pi-x")
        (root / "other-key").write_text(key)

    with rabbit_hub(root, seed, persisters=2, http=True, notifier=True, WATCHDOG_CHECK_SECONDS=3600) as h:
        yield h


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(hub: RabbitHub | Any, clients: list[Client], password: str | None, **kw: Any) -> Client:
    kw.setdefault("protocol", 4)
    c = mqtt_client(hub, password, **kw)
    clients.append(c)
    return c


def service(hub: RabbitHub, clients: list[Client], node: int = 0) -> Client:
    password = credentials.service_password(hub.settings.SECRET_KEY, credentials.SERVICE_USERNAME)
    return connect(hub.on_node(node), clients, password, username=credentials.SERVICE_USERNAME)


def new_user(hub: RabbitHub, email: str, *, read: str | None = None) -> tuple[int, str]:
    db = hub.db()
    try:
        with db.session() as s:
            u = users.create_user(s, email, "correct horse battery", rounds=4)
            users.set_membership(s, users.get_organization(s, "acme"), u)
            if read:
                permissions.grant(s, read, Level.READ, user_id=u.id)
            _, key = keys.create(s, user_id=u.id)
            return u.id, key
    finally:
        db.dispose()


def refused_or_closed(c: Client, timeout: float = 5.0) -> bool:
    c.answered.wait(timeout)
    return not c.connected.is_set() or c.disconnected.wait(timeout)


# -- who connects ------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_good_credentials_connect_bad_ones_are_refused(hub: RabbitHub, clients: list[Client],
                                                       transport: str) -> None:
    people = hub.people
    token = credentials.issue_token(hub.settings.SECRET_KEY, people.users["member"], 60)
    assert connect(hub, clients, people.keys["controller"], transport=transport).connected.is_set()
    assert connect(hub, clients, token, transport=transport, username="token").connected.is_set()
    wrong = people.keys["controller"][:-4] + ("aaaa" if not people.keys["controller"].endswith("aaaa") else "bbbb")
    tag, payload, mac = token.split(".")
    forged = ".".join((tag, credentials._b64(b'{"u":1,"exp":9999999999}'), mac))
    for password, username in ((None, None), ("", "key"), (wrong, "key"), (people.keys["revoked"], "key"),
                               (forged, "token"), ("not-a-key", "key"),
                               (nodes_mod.admin_credentials(hub.settings)[1], "hub-service")):
        c = connect(hub, clients, password, username=username, transport=transport)
        c.answered.wait(5)
        assert not c.connected.is_set(), (username, password and password[:8])


# -- what each may do --------------------------------------------------------------------
def test_publish_outside_own_folder_is_never_delivered(hub: RabbitHub, clients: list[Client]) -> None:
    watcher = service(hub, clients, node=2)
    assert watcher.subscribe("#") == [1]
    key = hub.people.keys["controller"]
    for topic in ("other/pi-x", "acme/site", "acme/office", "acme/site/pi-01/no-such-folder", "nowhere",
                  "acme/site/pi-01/../../office", "$SYS/broker", "acme.office", "other.pi-x"):
        ctl = connect(hub.on_node(1), clients, key)
        assert ctl.connected.is_set()
        ctl.paho.publish(topic, b"escape", qos=1)  # a refused publish ends the connection (3.1.1 has no code)
        assert ctl.disconnected.wait(5), topic
    ok = connect(hub.on_node(1), clients, key)
    assert ok.publish("acme/site/pi-01", b"marker") == 0
    # RabbitMQ makes '/' a '.' and leaves a '.' as it is: `acme.site.pi-01` is the same routing
    # key, so the same folder (one, since folder names hold no '.' on this broker)
    assert ok.publish("acme.site.pi-01", b"dotted") == 0
    got = watcher.wait_messages(2)
    assert got == [("acme/site/pi-01", b"marker"), ("acme/site/pi-01", b"dotted")]


def test_subscriptions_outside_readable_folders_are_denied(hub: RabbitHub, clients: list[Client]) -> None:
    key = hub.people.keys["member"]
    for topic in ("#", "+/#", "+", "$SYS/#", "$share/g/#", "other/#", "other/pi-x", "acme/#",
                  "acme/office/#", "acme/+/pi-01", "acme/nowhere/#", "acme/site/../office/#"):
        c = connect(hub.on_node(2), clients, key)
        assert c.connected.is_set()
        _, mid = c.paho.subscribe(topic, 1)
        with c._cv:
            c._cv.wait_for(lambda mid=mid, c=c: mid in c.subacks or c.disconnected.is_set(), 5)
        assert c.disconnected.is_set() or c.subacks.get(mid) == [SUBACK_FAILURE], topic
    reader = connect(hub.on_node(2), clients, key)
    for topic in ("acme/site/#", "acme/site/+", "acme/site/pi-01"):
        assert reader.subscribe(topic) == [1], topic


def test_a_reader_gets_its_folders_from_any_node(hub: RabbitHub, clients: list[Client]) -> None:
    token = credentials.issue_token(hub.settings.SECRET_KEY, hub.people.users["member"], 60)
    member_id = f"member-{secrets.token_hex(4)}"
    member = connect(hub.on_node(1), clients, token, username="token", transport="websockets", client_id=member_id)
    assert member.subscribe("acme/site/#") == [1]
    wait_bound(hub, f"mqtt-subscription-{member_id}", "acme.site.#")
    ctl = connect(hub.on_node(2), clients, hub.people.keys["controller"])
    other = connect(hub.on_node(0), clients, (Path(hub.root) / "other-key").read_text())
    assert other.publish("other/pi-x", b"not for acme") == 0
    assert ctl.publish("acme/site/pi-01", b"for the member") == 0
    assert member.wait_messages(1) == [("acme/site/pi-01", b"for the member")]
    time.sleep(0.3)  # nothing else arrives after it: a message of other's would come in order
    assert member.messages == [("acme/site/pi-01", b"for the member")]


def test_folder_names_with_a_dot_are_refused_on_this_broker(hub: RabbitHub) -> None:
    r = requests.post(hub.http.api("/resources/acme/site/v1.2"), json={"type": "folder"},
                      headers=hub.people.auth("admin"), timeout=10)
    assert r.status_code == 400, r.text
    assert "RabbitMQ" in r.json()["error"]["message"]
    r = requests.post(hub.http.api("/resources/acme/site/v1_2"), json={"type": "folder"},
                      headers=hub.people.auth("admin"), timeout=10)
    assert r.status_code == 201, r.text


def test_a_new_folder_is_a_topic_at_once(hub: RabbitHub, clients: list[Client]) -> None:
    r = requests.post(hub.http.api("/resources/acme/site/fresh-pi"), json={"type": "controller"},
                      headers=hub.people.auth("admin"), timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(hub.http.api("/keys"), json={"controller": "acme/site/fresh-pi"},
                      headers=hub.people.auth("admin"), timeout=10)
    assert r.status_code == 201, r.text
    ctl = connect(hub.on_node(1), clients, r.json()["key"])
    assert ctl.connected.is_set()
    msg = wire.update_message("t", 1.5, None)
    assert ctl.publish("acme/site/fresh-pi", msg) == 0
    assert not ctl.disconnected.is_set()
    wait_stored(hub, "acme/site/fresh-pi/t", 1)


# -- revocation --------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["revoke key", "delete user", "revoke key at once"])
def test_revocation_closes_live_connections_within_2s(hub: RabbitHub, clients: list[Client], how: str) -> None:
    """"at once": revoked the moment it connected, before the management API lists the
    connection (that takes 0.5-5 s here): closed by its user name, which no other client uses
    (as a controller's folder, or a browser's user-N)."""
    uid, key = new_user(hub, f"kick-{how.replace(' ', '-')}-{secrets.token_hex(2)}@example.com")
    victim = connect(hub.on_node(1), clients, key, client_id=f"victim-{uid}",
                     username=f"user-{uid}" if how.endswith("at once") else "key")
    by_token = connect(hub.on_node(2), clients, credentials.issue_token(hub.settings.SECRET_KEY, uid, 60),
                       username="token", client_id=f"victim-token-{uid}", transport="websockets")
    bystander = connect(hub.on_node(1), clients, hub.people.keys["member"])
    assert victim.connected.is_set() and by_token.connected.is_set() and bystander.connected.is_set()
    if how != "revoke key at once":  # listed: its node has emitted statistics since it connected
        wait_listed(hub, {f"victim-{uid}", f"victim-token-{uid}"})
    db = hub.db()
    try:
        with db.session() as s:
            if how.startswith("revoke key"):
                keys.revoke(s, credentials.key_prefix(key) or "")
            else:
                users.delete_user(s, uid)
    finally:
        db.dispose()
    t0 = time.monotonic()
    assert victim.disconnected.wait(KICK_WITHIN), hub.auth_log_tail()
    assert time.monotonic() - t0 < KICK_WITHIN
    if how == "delete user":
        assert by_token.disconnected.wait(1.0)
    else:
        assert not by_token.disconnected.is_set()
    assert not bystander.disconnected.is_set()
    again = connect(hub, clients, key)
    again.answered.wait(5)
    assert not again.connected.is_set()


def wait_listed(hub: RabbitHub, client_ids: set[str], timeout: float = 10.0) -> None:
    from hub.rabbitmq.revoker import client_id_of

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conns = management_get(hub.settings, hub.cluster.nodes[0], "/api/connections")
        if client_ids <= {client_id_of(c) for c in conns}:
            return
        time.sleep(0.1)
    raise AssertionError(f"the management API never listed {client_ids}")


def wait_bound(hub: RabbitHub, queue_prefix: str, routing_key: str, timeout: float = 15.0) -> None:
    """Until every node sees a queue named `queue_prefix...` bound to amq.topic with
    `routing_key`. A SUBACK comes once the subscriber's node has the binding; a publish on
    another node a moment later can still miss it (each node routes by its own copy)."""
    deadline = time.monotonic() + timeout
    waiting = list(hub.cluster.nodes)
    while waiting and time.monotonic() < deadline:
        bindings = management_get(hub.settings, waiting[0], "/api/exchanges/%2F/amq.topic/bindings/source")
        if any(b.get("destination", "").startswith(queue_prefix) and b.get("routing_key") == routing_key
               for b in bindings):
            waiting.pop(0)
        else:
            time.sleep(0.05)
    if waiting:
        raise AssertionError(f"no queue {queue_prefix}* bound with {routing_key} on {waiting[0]} within "
                             f"{timeout:.0f} s")


def test_lost_read_access_closes_the_subscriber_and_removes_its_queue(hub: RabbitHub,
                                                                      clients: list[Client]) -> None:
    uid, key = new_user(hub, f"reader-{secrets.token_hex(2)}@example.com", read="acme/office")
    client_id = f"reader-{uid}"
    # a persistent session: its queue outlives the connection, so it must go too
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                       clean_session=False, reconnect_on_failure=False)
    reader = Client(paho)
    clients.append(reader)
    paho.username_pw_set("key", key)
    paho.on_connect = lambda *_a: reader.connected.set()
    paho.on_disconnect = lambda *_a: reader.disconnected.set()
    paho.on_subscribe = lambda _c, _u, mid, rc, _p: (reader.subacks.__setitem__(mid, [int(getattr(r, "value", r))
                                                                                      for r in rc]))
    paho.connect(hub.host, hub.on_node(2).port)
    paho.loop_start()
    reader.thread = None
    assert reader.connected.wait(5)
    paho.subscribe("acme/office/#", 1)
    queue = f"mqtt-subscription-{client_id}qos1"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _queue_exists(hub, queue):
        time.sleep(0.05)
    assert _queue_exists(hub, queue)
    wait_listed(hub, {client_id})
    db = hub.db()
    try:
        with db.session() as s:
            for p in permissions.on(s, "acme/office"):
                if p.user_id == uid:
                    permissions.revoke(s, p.id)
    finally:
        db.dispose()
    assert reader.disconnected.wait(KICK_WITHIN), hub.auth_log_tail()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _queue_exists(hub, queue):
        time.sleep(0.05)
    assert not _queue_exists(hub, queue)
    paho.loop_stop()


def _queue_exists(hub: RabbitHub, name: str) -> bool:
    from urllib.error import HTTPError
    from urllib.parse import quote

    try:
        management_get(hub.settings, hub.cluster.nodes[0], f"/api/queues/%2F/{quote(name, safe='')}")
        return True
    except HTTPError as e:
        if e.code == 404:
            return False
        raise


# -- no acknowledged value lost --------------------------------------------------------
def stored(hub: RabbitHub, like: str) -> dict[str, Counter[int]]:
    out: dict[str, Counter[int]] = {}
    db = hub.db()
    try:
        with db.session() as s:
            for path, num in s.execute(select(Resource.path, Revision.num)
                                       .join(Resource, Resource.id == Revision.resource_id)
                                       .where(Resource.path.like(like))):
                out.setdefault(path, Counter())[int(num)] += 1
    finally:
        db.dispose()
    return out


def wait_stored(hub: RabbitHub, path: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(stored(hub, path).get(path, Counter()).values()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path}: fewer than {count} values stored within {timeout:.0f} s")


class Publisher:
    """A controller on MQTT 3.1.1 at QoS 1 that moves to the next node when it loses its
    node; `acked` holds the numbers a PUBACK came back for."""

    def __init__(self, folder: str, key: str, ports: list[int], first: int) -> None:
        self.folder, self.ports, self.at = folder, ports, first
        self.acked: set[int] = set()
        self.pending: dict[int, int] = {}
        self.lock = threading.Lock()
        self.last_us = 0
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{secrets.token_hex(4)}",
                             protocol=mqtt.MQTTv311)
        self.c.username_pw_set(folder, key)
        self.c.reconnect_delay_set(1, 2)
        self.c.max_inflight_messages_set(20)
        self.c.on_publish, self.c.on_disconnect = self._on_publish, self._on_disconnect
        self.early: set[int] = set()
        self.c.connect_async("127.0.0.1", ports[first], keepalive=10)
        self.c.loop_start()

    def _on_disconnect(self, *_a: Any) -> None:
        self.at = (self.at + 1) % len(self.ports)
        self.c.connect_async("127.0.0.1", self.ports[self.at], keepalive=10)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self.lock:
            n = self.pending.pop(mid, None)
            if n is None:
                self.early.add(mid)
            else:
                self.acked.add(n)

    def publish(self, n: int) -> None:
        us = max(time.time_ns() // 1000, self.last_us + 1)
        self.last_us = us
        # never paho's call under our lock: its thread holds its own lock while it calls _on_publish
        info = self.c.publish(self.folder, wire.update_message("n", n, wire.format_timestamp_us(us)), qos=1)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self.acked.add(n)
            else:
                self.pending[info.mid] = n

    def close(self) -> None:
        self.c.on_disconnect = None
        self.c.disconnect()
        self.c.loop_stop()


def test_acknowledged_values_are_stored_once_while_a_node_is_killed(hub: RabbitHub) -> None:
    """Six plain paho publishers and two of the hub's controllers (`brokers`: all three
    nodes) publish while node 1 is killed with -9. Every one of them is acknowledged
    again while the node is still down (they moved to another node), and every value
    acknowledged is stored exactly once."""
    db = hub.db()
    made = []
    try:
        with db.session() as s:
            for i in range(8):
                folder = f"acme/site/kill-{i}"
                resources.create(s, folder, ResourceType.CONTROLLER.value)
                made.append((folder, keys.create(s, controller_path=folder)[1]))
    finally:
        db.dispose()
    ports = [n.mqtt for n in hub.cluster.nodes]
    pubs = [Publisher(folder, key, ports, i % 3) for i, (folder, key) in enumerate(made[:6])]
    ctls = [Controller(key, folder, port=ports[1], mqtt_version=4, keepalive=10,
                       brokers=[("127.0.0.1", p) for p in ports]).connect(wait=20) for folder, key in made[6:]]
    stop = threading.Event()
    sent = 0

    def drive() -> None:
        nonlocal sent
        while not stop.is_set():
            for p in pubs:
                p.publish(sent)
            for c in ctls:
                c.update("n", sent)
            sent += 1
            stop.wait(0.05)

    def progress() -> list[int]:
        return [len(p.acked) for p in pubs] + [c.acknowledged for c in ctls]

    def wait_progress(since: list[int], more: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(now < then + more for now, then in zip(progress(), since, strict=True)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    try:
        deadline = time.monotonic() + 20
        while not all(p.c.is_connected() for p in pubs) and time.monotonic() < deadline:
            time.sleep(0.05)
        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        assert wait_progress([0] * len(pubs + ctls), 20, 30)
        hub.cluster.kill(1)
        moved = wait_progress(progress(), 20, 20)  # before the node is started again
        assert moved, f"not acknowledged again while node 1 was down: {progress()}"
        assert all(c.port != ports[1] for c in ctls)
        hub.cluster.restart(1)
        assert wait_progress(progress(), 20, 60)
        stop.set()
        driver.join()
        deadline = time.monotonic() + 60
        while any(p.pending for p in pubs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(c.flush(60) for c in ctls)
    finally:
        stop.set()
        for p in pubs:
            p.close()
        for c in ctls:
            c.close()
    acked = {f"{p.folder}/n": set(p.acked) for p in pubs}
    acked.update({f"{c.folder}/n": set(range(sent)) for c in ctls})  # flushed: every one acknowledged
    assert all(len(v) >= 40 for v in acked.values()), {k: len(v) for k, v in acked.items()}
    deadline = time.monotonic() + 60
    got = stored(hub, "acme/site/kill-%/n")
    while any(not nums <= set(got.get(path, Counter())) for path, nums in acked.items()) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
        got = stored(hub, "acme/site/kill-%/n")
    lost = {path: sorted(nums - set(got.get(path, Counter())))[:10] for path, nums in acked.items()}
    assert not any(lost.values()), lost
    duplicated = {path: [n for n, k in cnt.items() if k > 1][:10] for path, cnt in got.items()}
    assert not any(duplicated.values()), duplicated


# -- the hub's clients on this broker --------------------------------------------------
def test_the_controller_client_speaks_mqtt_311_here(hub: RabbitHub) -> None:
    ctl = Controller(hub.people.keys["controller"], hub.people.controller, port=hub.on_node(2).port,
                     mqtt_version=4).connect(wait=10)
    try:
        ctl.update("humidity", 41.25)
        assert ctl.flush(10)
    finally:
        ctl.close()
    wait_stored(hub, f"{hub.people.controller}/humidity", 1)


def test_messages_published_over_http_reach_mqtt_subscribers(hub: RabbitHub, clients: list[Client]) -> None:
    watcher_id = f"watcher-{secrets.token_hex(4)}"
    watcher = connect(hub.on_node(1), clients, hub.people.keys["member"], client_id=watcher_id)
    assert watcher.subscribe("acme/site/#") == [1]
    wait_bound(hub, f"mqtt-subscription-{watcher_id}", "acme.site.#")
    r = requests.post(hub.http.api("/messages"), json={"folder": "acme/site/pi-01", "type": "blink",
                                                       "parameters": {"times": 3}},
                      headers=hub.people.auth("writer"), timeout=10)
    assert r.status_code in (200, 201, 202), r.text
    got = watcher.wait_messages(1)
    assert got and json.loads(got[0][1]) == {"type": "blink", "parameters": {"times": 3}}


def test_a_browser_watches_a_sequence_over_web_mqtt(hub: RabbitHub) -> None:
    from tests.fixtures.http import PASSWORD
    from tests.support.browser import PageLog, launch_chromium, require_chromium, watch_page
    from tests.support.console_stack import ensure_console_built

    require_chromium()
    ensure_console_built()
    path = f"{hub.people.controller}/temperature"
    ctl = Controller(hub.people.keys["controller"], hub.people.controller, port=hub.on_node(1).port,
                     mqtt_version=4).connect(wait=10)
    page_log = PageLog(allowed=["status of 401"])
    try:
        ctl.update("temperature", 19.5)
        assert ctl.flush(10)
        wait_stored(hub, path, 1)
        with launch_chromium() as browser:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            page = context.new_page()
            watch_page(page, page_log)
            page.goto(f"{hub.url}/#/r/{path}")
            page.wait_for_selector("#login-form")
            page.fill("input[name=email]", hub.people.emails["member"])
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            page.wait_for_function("document.querySelector('#live-state')?.dataset.state === 'live'")
            page.wait_for_function("document.querySelector('#latest-value')?.textContent.startsWith('19.5')")
            # the page's subscriptions are made once the cluster has bound its queue (QoS 0: a value
            # published before that is not for it)
            wait_bound(hub, "mqtt-subscription-console-", hub.people.controller.replace("/", "."))
            for value in (23.75, 24.125):
                ctl.update("temperature", value)
                page.wait_for_function(
                    f"document.querySelector('#latest-value').textContent.startsWith('{value}')", timeout=5000)
            context.close()
    finally:
        ctl.close()
    assert not page_log.unexpected(), page_log.errors


def test_rhizo_client_works_on_the_cluster(hub: RabbitHub, tmp_path: Path) -> None:
    from tests.support.rhizo_drive import RHIZO_PYTHON, Drive, _config

    if not RHIZO_PYTHON.exists():
        pytest.skip("rhizo-client's environment is missing: run `make rhizo-client`")
    people = hub.people
    drive = Drive(tmp_path, {"scenario": "controller", "config": _config(hub, people.keys["controller"], mqtt=True),
                             "missing_folder": "/acme/no/such/folder", "foreign_folder": "/other/lab"},
                  hub.auth_log_tail)
    try:
        base = "/" + people.controller
        assert drive.next("path")["path"] == base
        assert drive.next("folder") == {"event": "folder", "exists": True, "missing": False}
        drive.next("sequences")
        files = drive.next("files")
        assert files["text_ok"] and files["binary_ok"]
        assert drive.next("mqtt") == {"event": "mqtt", "temp": "21.5", "note": "hello"}
        assert drive.next("http") == {"event": "http", "temp": "22.25", "note": "over http", "count": "8"}
        assert drive.next("messages") == {"event": "messages", "own": 200, "missing": 404, "foreign": 403}
        item = drive.next("listing")["item"]
        assert item["status"] == {"foo": "bar"}
        drive.next("done")
    finally:
        drive.stop()


def test_check_sees_the_cluster_and_folders_no_client_could_reach(hub: RabbitHub) -> None:
    import subprocess
    import sys

    from tests.support.settings import clean_env

    def check() -> str:
        r = subprocess.run([sys.executable, "run.py", "--check"], cwd=Path(__file__).resolve().parent.parent,
                           env=clean_env(hub.settings_path), capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr

    hub.wait_counted()  # after a node kill a persister may have moved: counted again a moment later
    out = check()
    assert "ok    broker: RabbitMQ: 3 of 3 nodes running" in out, out
    assert "2 persisters, 3 replicas" in out, out
    db = Database(hub.settings.database_url)  # the rule is the Store's: a hub that ran on Mosquitto has these
    try:
        with db.session() as s:
            resources.create(s, "acme/site/v1.2", ResourceType.FOLDER.value)
        assert "FAIL  broker: 1 folders have a '.' in their name (acme/site/v1.2)" in check()
        with db.session() as s:
            resources.delete(s, "acme/site/v1.2")
    finally:
        db.dispose()
    assert "ok    broker: RabbitMQ" in check()


def test_without_the_broker_auth_service_the_nodes_refuse_and_health_says_so(hub: RabbitHub,
                                                                            clients: list[Client]) -> None:
    from tests.support.processes import stop_process

    hub.wait_counted()  # /health reads the consumer counts of the management API, which lag
    stop_process(hub.auth)
    try:
        refused = connect(hub.on_node(1), clients, hub.people.keys["controller"])
        refused.answered.wait(10)
        assert not refused.connected.is_set()  # fails closed
        r = requests.get(hub.http.api("/health"), timeout=30)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "degraded" and "broker_auth" in body["failing"], body
        assert "does not answer" in body["checks"]["broker_auth"]["detail"]
    finally:
        hub.restart_auth()
    back = connect(hub.on_node(1), clients, hub.people.keys["controller"])
    assert back.connected.is_set(), hub.auth_log_tail()
    # /health says the service is back (the persisters never left: they were connected already)
    body = requests.get(hub.http.api("/health"), timeout=30).json()
    assert body["checks"]["broker_auth"]["ok"] and body["checks"]["persister"]["ok"], (body, hub.auth_log_tail())
