"""The persister and the notifier on RabbitMQ's quorum queues, against a real node
(Debian's rabbitmq-server: a one-node LocalCluster for this module, on free ports).

- the topology: declared twice is fine; a queue of other arguments is a clear error;
- a real persister Daemon (SQLite) stores what is published to amq.topic (as RabbitMQ's MQTT
  plugin does: topic a/b/c is routing key a.b.c) exactly once, and acknowledges only after
  commit: its connection killed between delivery and ack, the messages come again on the new
  connection (the old one's acks are dropped) and are stored once;
- a message whose handler raises every time is dead-lettered after RABBITMQ_DELIVERY_LIMIT
  deliveries and does not hold up the queue;
- the notifier on the notify queue sends a `send_email` and keeps a `status`;
- `run.py --broker` stopped while its own local node boots leaves no process behind.

Each test uses its own queue prefix (its own queues, deleted after it). Without the broker-auth
service here, the node knows hub-persister as an internal user with its derived password.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pika
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from hub import credentials, wire
from hub.persister.batcher import Incoming
from hub.persister.writer import BatchResult
from hub.rabbitmq import nodes, topology
from hub.rabbitmq.cluster import LocalCluster, port_open
from hub.rabbitmq.feed import Feed
from hub.settings import Settings, load
from hub.storage import controllers, resources
from hub.storage.db import Database, migrate
from hub.storage.models import Revision
from tests.support import free_port, write_settings_file
from tests.support.notify import seed, smtp_server, wait_for

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
SECRET_KEY = secrets.token_hex(24)

pytestmark = pytest.mark.skipif(not os.path.exists(SERVER), reason="rabbitmq-server is not installed")


@dataclass
class Node:
    """The module's one-node LocalCluster."""

    cluster: LocalCluster
    spec: dict[str, Any]
    base_port: int

    @property
    def ports(self) -> dict[str, int]:
        return self.spec

    def api(self, method: str, path: str, body: Any = None) -> Any:
        user, password = nodes.admin_credentials(self.cluster.s)
        auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.spec['management']}/api/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - our own node
            raw = r.read()
        return json.loads(raw) if raw else None

    def log_tail(self) -> str:
        logs = sorted(self.cluster.node_dir(0).glob("log/*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)


def _ports() -> tuple[dict[str, Any], int]:
    """Free ports for one node, and a RABBITMQ_BASE_PORT whose +9 (the cluster's epmd) is free."""
    spec: dict[str, Any] = {"host": "127.0.0.1", **{k: free_port() for k in nodes.PORT_KEYS}}
    return spec, free_port() - 9


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("rabbitmq")
    spec, base = _ports()
    s = load(write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": SECRET_KEY, "BROKER": "rabbitmq",
        "RABBITMQ_NODES": [spec], "RABBITMQ_BASE_PORT": base}), env={})
    cluster = LocalCluster(s)
    try:
        cluster.start()
        yield Node(cluster, spec, base)
    finally:
        cluster.stop()


@pytest.fixture
def hub_settings(node: Node, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """`make(**overrides)`: settings for BROKER=rabbitmq on `node`, with this test's own queue
    prefix; the node knows hub-persister (internal user: no broker-auth service here)."""
    prefix = "t" + secrets.token_hex(4)
    user = credentials.PERSISTER_USERNAME
    node.api("PUT", f"users/{user}", {"password": credentials.service_password(SECRET_KEY, user), "tags": ""})
    node.api("PUT", f"permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"})
    made: list[Settings] = []

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": SECRET_KEY, "BROKER": "rabbitmq",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "RABBITMQ_NODES": [node.spec],
            "RABBITMQ_BASE_PORT": node.base_port, "RABBITMQ_QUEUE_PREFIX": prefix,
            "RABBITMQ_DELIVERY_LIMIT": 3, "MQTT_PORT": free_port(), "HTTP_PORT": free_port(), **overrides}
        s = load(write_settings_file(tmp_path / "config.py", values), env={})
        made.append(s)
        return s

    yield make
    if made:
        home = make()  # on `node` (a test may have pointed elsewhere)
        with admin_channel(home) as ch:
            for kind, name in nodes.queue_names(home).items():
                if kind == "dead_exchange":
                    ch.exchange_delete(name)
                else:
                    ch.queue_delete(name)


class admin_channel:  # noqa: N801 - used as a context manager
    def __init__(self, s: Settings) -> None:
        self.conn = pika.BlockingConnection(topology.admin_parameters(s, nodes.nodes(s)[0]))

    def __enter__(self) -> Any:
        return self.conn.channel()

    def __exit__(self, *_exc: object) -> None:
        self.conn.close()


def publish(s: Settings, topic: str, payloads: list[bytes]) -> None:
    """As RabbitMQ's MQTT plugin routes an MQTT publish: to amq.topic, '/' -> '.'."""
    with admin_channel(s) as ch:
        ch.confirm_delivery()
        for p in payloads:
            ch.basic_publish(topology.TOPIC_EXCHANGE, topic.replace("/", "."), p,
                             pika.BasicProperties(delivery_mode=2))


def ready(s: Settings, kind: str) -> int:
    """Messages ready in the queue (not counting those a consumer holds unacknowledged)."""
    with admin_channel(s) as ch:
        return int(ch.queue_declare(nodes.queue_names(s)[kind], passive=True).method.message_count)


def drop_connections(node: Node, user: str) -> int:
    gone = 0
    for c in node.api("GET", "connections") or []:
        if c.get("user") == user:
            node.api("DELETE", f"connections/{quote(c['name'], safe='')}")
            gone += 1
    return gone


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    return wait_for(cond, timeout)


# -- topology ------------------------------------------------------------------------------
def test_topology_is_idempotent_and_refuses_a_queue_of_other_arguments(hub_settings: Callable[..., Settings]) -> None:
    s = hub_settings()
    topology.declare(s)
    topology.declare(s)  # twice: nothing changes
    names = nodes.queue_names(s)
    publish(s, "acme/pi-01", [b"x"])
    assert wait_until(lambda: ready(s, "persist") == 1 and ready(s, "notify") == 1)  # both bound to amq.topic
    described = topology.describe(s)
    assert set(described) == {names["persist"], names["notify"], names["persist_dead"], names["notify_dead"]}
    assert described[names["persist"]]["consumers"] == 0
    other = hub_settings(RABBITMQ_DELIVERY_LIMIT=7)
    with pytest.raises(topology.TopologyError) as e:
        topology.declare(other)
    assert f"queue {names['persist']} exists with other arguments" in e.value.message
    assert "delete_queue" in e.value.message and "RABBITMQ_QUEUE_PREFIX" in e.value.message
    assert ready(s, "persist") == 1  # the queue is as it was


# -- the persister ---------------------------------------------------------------------------
def _rows(db_url: str) -> int:
    db = Database(db_url)
    try:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Revision)) or 0)
    finally:
        db.dispose()


def test_persister_stores_once_and_acks_after_commit(hub_settings: Callable[..., Settings], node: Node) -> None:
    from hub.persister.daemon import Daemon

    s = hub_settings(PERSISTER_CLIENT_ID="persister-amqp")
    topology.declare(s)
    migrate(s.database_url)
    db = Database(s.database_url)
    with db.session() as ses:
        resources.create(ses, "acme", "organization")
        resources.create(ses, "acme/pi-01", "controller")
    db.dispose()
    n = 20
    payloads = [wire.update_message("temperature", 20 + i / 8, f"2024-05-01T12:00:{i:02d}Z") for i in range(n)]
    publish(s, "acme/pi-01", payloads)

    daemon = Daemon(s)
    entered, release = threading.Event(), threading.Event()
    results: list[tuple[int, BatchResult]] = []  # (generation of the batch's messages, result)
    write = daemon.writer.write

    def held_write(batch: Any) -> BatchResult:
        if not entered.is_set():
            entered.set()
            assert release.wait(30)
        res = write(batch)
        results.append((batch[0].generation, res))
        return res

    daemon.writer.write = held_write  # type: ignore[method-assign]
    acks: list[int] = []
    ack = daemon.intake.ack

    def counted_ack(batch: list[Incoming]) -> int:
        acks.append(ack(batch))
        return acks[-1]

    daemon.intake.ack = counted_ack  # type: ignore[method-assign]
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(daemon.run()), daemon=True)
    t.start()
    try:
        assert entered.wait(20), node.log_tail()  # the first batch is being written: not acknowledged
        assert daemon.intake.generation == 1
        # (the management API lists a connection once its stats come in: a few seconds)
        assert wait_until(lambda: drop_connections(node, credentials.PERSISTER_USERNAME) == 1)
        assert wait_until(lambda: daemon.intake.generation == 2 and daemon.intake.subscribed.is_set())
        release.set()  # the first batch commits now; its acks belong to the dead connection
        assert wait_until(lambda: _rows(s.database_url) == n)
        assert wait_until(lambda: sum(r.duplicates for _, r in results) >= results[0][1].stored)
        assert wait_until(lambda: daemon.q.empty() and sum(acks) >= results[0][1].stored)
    finally:
        release.set()
        daemon.request_stop()
        t.join(30)
    assert rc == [0]
    assert results[0][0] == 1 and acks[0] == 0  # committed, but its connection was gone: no ack
    assert sum(r.stored for _, r in results) == n and _rows(s.database_url) == n  # stored once
    assert all(g == 2 for g, _ in results[1:])  # the redelivered copies
    assert ready(s, "persist") == 0  # every message acknowledged (a held one would be back)
    # a message as a controller sends it: MQTT (3.1.1) to the node's MQTT port
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, client_id="ctl-" + secrets.token_hex(3))
    c.username_pw_set(*nodes.admin_credentials(s))
    c.connect("127.0.0.1", node.ports["mqtt"])
    c.loop_start()
    try:
        info = c.publish("acme/pi-01", wire.update_message("humidity", 55.5, "2024-05-01T12:01:00Z"), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()
    daemon = Daemon(s)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    try:
        assert wait_until(lambda: _rows(s.database_url) == n + 1)
    finally:
        daemon.request_stop()
        t.join(30)
    assert not t.is_alive()


# -- poison -----------------------------------------------------------------------------------
def test_a_poison_message_is_dead_lettered_after_the_delivery_limit(hub_settings: Callable[..., Settings]) -> None:
    s = hub_settings()
    topology.declare(s)
    poison_deliveries: list[int] = []
    good: list[bytes] = []
    feed: Feed

    def on_message(topic: str, payload: bytes, tag: int, generation: int) -> None:
        assert topic == "acme/pi-02"
        if payload == b"poison":
            poison_deliveries.append(tag)
            raise RuntimeError("this message crashes its handler")
        good.append(payload)
        feed.ack([tag], generation)

    feed = Feed(s, nodes.queue_names(s)["persist"], on_message, prefetch=10, name="test")
    publish(s, "acme/pi-02", [b"poison"] + [b"good %d" % i for i in range(5)])
    feed.start()
    try:
        assert feed.subscribed.wait(20)
        assert wait_until(lambda: len(good) == 5)
        assert wait_until(lambda: ready(s, "persist_dead") == 1)
    finally:
        feed.stop()
    assert sorted(good) == [b"good %d" % i for i in range(5)]
    # the first delivery and RABBITMQ_DELIVERY_LIMIT returns of it, then the dead queue
    assert len(poison_deliveries) == s.RABBITMQ_DELIVERY_LIMIT + 1
    assert ready(s, "persist") == 0
    with admin_channel(s) as ch:
        method, props, body = ch.basic_get(nodes.queue_names(s)["persist_dead"], auto_ack=True)
    assert body == b"poison" and method.routing_key == nodes.queue_names(s)["persist_dead"]
    death = props.headers["x-death"][0]
    reason = death["reason"].decode() if isinstance(death["reason"], bytes) else death["reason"]
    queue = death["queue"].decode() if isinstance(death["queue"], bytes) else death["queue"]
    assert (queue, reason) == (nodes.queue_names(s)["persist"], "delivery_limit")


def test_the_feed_says_when_a_node_is_down(hub_settings: Callable[..., Settings], caplog: Any) -> None:
    s = hub_settings(RABBITMQ_NODES=[{"host": "127.0.0.1", "amqp": free_port()}])
    feed = Feed(s, "nowhere", lambda *_a: None, prefetch=1)
    feed.start()
    try:
        assert wait_until(lambda: "cannot reach RabbitMQ node 127.0.0.1:" in caplog.text, 10)
    finally:
        feed.stop()
    assert not feed.connected.is_set()
    assert "(attempt 1); retrying" in caplog.text


# -- the notifier -------------------------------------------------------------------------------
def test_the_notifier_on_amqp_sends_an_email_and_keeps_a_status(hub_settings: Callable[..., Settings]) -> None:
    from hub.notify.daemon import Notifier

    with smtp_server() as (smtp, smtp_port):
        s = hub_settings(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port, SMTP_TLS="none", SMTP_FROM="hub@example.com",
                         NOTIFY_CLIENT_ID="notifier-amqp", WATCHDOG_CHECK_SECONDS=0.2)
        topology.declare(s)
        migrate(s.database_url)
        db = Database(s.database_url)
        emails, _keys = seed(db, 1)
        notifier = Notifier(s)
        notifier.start()
        try:
            assert notifier.subscribed.wait(20)
            assert notifier.topic == nodes.queue_names(s)["notify"]
            publish(s, "acme/pi-01", [
                json.dumps({"type": "send_email", "parameters": {"to": [emails["alice"]], "subject": "Tank low",
                                                                   "body": "Level at 12 %."}}).encode(),
                json.dumps({"type": "status", "parameters": {"ip": "10.0.0.1", "uptime": 7}}).encode()])
            mails = smtp.wait(1, timeout=20)
            assert [m.message["Subject"] for m in mails] == ["Tank low"] and mails[0].rcpt_tos == [emails["alice"]]
            assert mails[0].message["X-Hub-Folder"] == "acme/pi-01"

            def status() -> Any:
                with db.session() as ses:
                    return controllers.describe(ses, resources.get(ses, "acme/pi-01"))["status"]

            assert wait_until(lambda: status() == {"ip": "10.0.0.1", "uptime": 7})
            assert notifier.wait_idle()
        finally:
            notifier.stop()
            notifier.store.close()
        assert ready(s, "notify") == 0  # both acknowledged once handled
        db.dispose()


def test_settings_without_rabbitmq_use_the_mosquitto_feeds(tmp_path: Path) -> None:
    from hub import brokers
    from hub.notify.mqttfeed import MqttFeed
    from hub.persister.intake import Intake

    s = load(write_settings_file(tmp_path / "config.py", {"DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 48,
                                                          "MQTT_PORT": free_port()}), env={})

    assert isinstance(brokers.persister_intake(s, queue.SimpleQueue(), "p", 20), Intake)
    assert isinstance(brokers.notifier_feed(s, "n", lambda *_a: None, lambda: None, 10), MqttFeed)
    assert brokers.mqtt_endpoint(s) == (s.MQTT_HOST, s.MQTT_PORT, mqtt.MQTTv5)


# -- run.py --broker's local cluster: nothing left behind ---------------------------------
def _left_behind(data_dir: Path) -> list[str]:
    """Processes whose command line names `data_dir` (a node's beam names its home there)."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmd and p.name.isdigit() and int(p.name) != os.getpid():
            found.append(f"{p.name}: {cmd[:120]}")
    return found


def test_run_py_broker_stopped_while_its_node_boots_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM (as the supervisor sends at Ctrl-C) while the local node boots, the worst
    case: a booting node does not stop on SIGTERM. `run.py --broker` gives up the start, kills
    the node after 15 s, within the supervisor's 25 s, and no beam or epmd of its cluster is
    left. (Stopping a running cluster is what every RabbitMQ test module's teardown does.)"""
    import signal
    import subprocess
    import sys
    import time

    from tests.support.ports import free_block
    from tests.support.processes import wait_log
    from tests.support.settings import clean_env

    data = tmp_path / "data"
    path = write_settings_file(tmp_path / "config.py", {
        "DATA_DIR": str(data), "SECRET_KEY": secrets.token_hex(24), "BROKER": "rabbitmq",
        "RABBITMQ_LOCAL_NODES": 1, "RABBITMQ_BASE_PORT": free_block(30), "MQTT_PORT": free_port(),
        "MQTT_WS_PORT": free_port()})
    epmd = nodes.epmd_port(load(path, env={}))
    log = tmp_path / "broker.log"
    root = Path(__file__).resolve().parent.parent
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, str(root / "run.py"), "--broker"], cwd=root, env=clean_env(path),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_log(log, "starting RabbitMQ node", 90, 0, proc), log.read_text()[-3000:]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(25) == 0, log.read_text()[-3000:]
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 20, took
    deadline = time.monotonic() + 5  # a killed beam's children go a moment after it
    while (_left_behind(data) or port_open("127.0.0.1", epmd)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left_behind(data) == [] and not port_open("127.0.0.1", epmd), (_left_behind(data), log.read_text()[-2000:])

