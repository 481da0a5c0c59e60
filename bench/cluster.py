"""The hub on a 3-node RabbitMQ cluster: no acknowledged value lost while nodes die.

    .venv/bin/python bench/cluster.py [--controllers 12] [--rate 5] [--kills 3] [--down 5]
                                      [--burst-seconds 10] [--burst-clients 4] [--seed N]

Everything is real and on this machine (SQLite, as `make run` has it):
1. Rate: `--burst-clients` plain paho MQTT 3.1.1 publishers send QoS 1 values as fast as
   their 50 in-flight messages allow for `--burst-seconds`, first to Mosquitto with the hub
   plugin and a persister, then to the cluster (each publisher on its own node) with two
   AMQP persisters: acknowledged values a second on each, and cluster_vs_mosquitto, their ratio.
2. Kills: `--controllers` controllers (spread over the nodes; half the hub's client on MQTT
   3.1.1 with every node in `brokers`, half plain paho; both move to the next node when
   their node goes) publish numbered values `--rate` times a second each while the nodes
   are killed with -9 in turn (each at least once, `--kills` in all), each down for
   `--down` seconds and started again. After each kill the bench waits until every
   controller got an acknowledgement again (from another node), after each restart until
   the node is back in the cluster. Then every value a controller got a PUBACK for must be
   stored exactly once: cluster_lost and cluster_duplicated are 0. max_gap_s is the longest
   a controller went without an acknowledgement.

The last line is `cluster_acked=… cluster_stored=… cluster_lost=… cluster_duplicated=…
node_kills=… max_gap_s=… mosquitto_rate=… cluster_rate=… cluster_vs_mosquitto=…`.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# not bench/ itself on the path: bench/http.py would shadow the standard library's http
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hub import wire  # noqa: E402
from hub.controller import Controller  # noqa: E402
from hub.storage import keys, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Resource, Revision  # noqa: E402
from tests.support import free_port, write_settings_file  # noqa: E402
from tests.support.broker import start_broker  # noqa: E402
from tests.support.processes import PERSISTER_READY, stop_process, wait_log  # noqa: E402
from tests.support.rabbit_stack import rabbit_hub  # noqa: E402
from tests.support.settings import clean_env  # noqa: E402

SEQUENCE = "n"


def seed_folders(db: Database, n: int, prefix: str) -> list[tuple[str, str]]:
    out = []
    with db.session() as s:
        if not any(o.name == "acme" for o in users.list_organizations(s)):
            users.create_organization(s, "acme")
        for i in range(n):
            folder = f"acme/{prefix}{i:03d}"
            resources.create(s, folder, "controller")
            _, key = keys.create(s, controller_path=folder)
            out.append((folder, key))
    return out


def stored(db: Database, prefix: str) -> dict[str, Counter[int]]:
    out: dict[str, Counter[int]] = {}
    with db.session() as s:
        for path, num in s.execute(select(Resource.path, Revision.num)
                                   .join(Resource, Resource.id == Revision.resource_id)
                                   .where(Resource.path.like(f"acme/{prefix}%/{SEQUENCE}"))):
            out.setdefault(path.rsplit("/", 1)[0], Counter())[int(num)] += 1
    return out


def wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# -- publishers ------------------------------------------------------------------------
class Tracked:
    """Which numbers of one controller were acknowledged; the longest wait between acks."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.pending: dict[int, int] = {}
        self.last_ack = time.monotonic()
        self.max_gap = 0.0
        self.counting = True
        self._last_us = 0

    def got(self, n: int) -> None:
        now = time.monotonic()
        with self.lock:
            self.acked.add(n)
            if self.counting:
                self.max_gap = max(self.max_gap, now - self.last_ack)
            self.last_ack = now

    def payload(self, n: int) -> bytes:
        us = max(time.time_ns() // 1000, self._last_us + 1)
        self._last_us = us
        return wire.update_message(SEQUENCE, n, wire.format_timestamp_us(us))


class MovingController(Tracked):
    """Plain paho MQTT 3.1.1 that goes to the next node when it loses its node."""

    def __init__(self, folder: str, key: str, ports: list[int], first: int, inflight: int = 20) -> None:
        super().__init__(folder)
        self.ports, self.at = ports, first
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"mv-{secrets.token_hex(4)}",
                             protocol=mqtt.MQTTv311)
        self.c.username_pw_set(folder, key)
        self.c.reconnect_delay_set(1, 4)
        self.c.max_inflight_messages_set(inflight)
        self.c.max_queued_messages_set(0)
        self.c.on_publish, self.c.on_disconnect = self._on_publish, self._on_disconnect
        self.early: set[int] = set()
        self.c.connect_async("127.0.0.1", ports[first], keepalive=10)
        self.c.loop_start()

    def _on_disconnect(self, *_a: Any) -> None:
        self.at = (self.at + 1) % len(self.ports)  # the next try goes to the next node
        self.c.connect_async("127.0.0.1", self.ports[self.at], keepalive=10)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self.lock:
            n = self.pending.pop(mid, None)
            if n is None:
                self.early.add(mid)
                return
        self.got(n)

    def publish(self, n: int) -> None:
        info = self.c.publish(self.folder, self.payload(n), qos=1)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                early = True
            else:
                self.pending[info.mid] = n
                early = False
        if early:
            self.got(n)

    def unacked(self) -> int:
        with self.lock:
            return len(self.pending)

    def close(self) -> None:
        self.c.on_disconnect = None
        self.c.disconnect()
        self.c.loop_stop()


class HubController(Tracked):
    """The hub's own client on MQTT 3.1.1, told of every node (`brokers`)."""

    def __init__(self, folder: str, key: str, ports: list[int], first: int) -> None:
        super().__init__(folder)
        self.c = Controller(key, folder, port=ports[first], client_id=f"hc-{secrets.token_hex(4)}", mqtt_version=4,
                            keepalive=10, brokers=[("127.0.0.1", p) for p in ports])
        theirs = self.c.client.on_publish

        def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            import json

            sent = self.c.client.sent_message(mid)
            if sent is not None:
                self.got(json.loads(sent[1])["parameters"]["value"])
            theirs(client, userdata, mid, reason, props)

        self.c.client.on_publish = on_publish
        self.c.connect(wait=None)

    def publish(self, n: int) -> None:
        self.c.update(SEQUENCE, n)

    def unacked(self) -> int:
        return self.c.pending

    def close(self) -> None:
        self.c.close()


def burst(folders: list[tuple[str, str]], ports: list[int], seconds: float) -> float:
    """Acknowledged values a second, publishers as fast as 50 in flight allow."""
    pubs = [MovingController(f, k, ports, i % len(ports), inflight=50) for i, (f, k) in enumerate(folders)]
    wait(lambda: all(p.c.is_connected() for p in pubs), 30, "the burst publishers to connect")
    stop = threading.Event()

    def drive(p: MovingController) -> None:
        n = 0
        while not stop.is_set():
            if p.unacked() < 50:
                p.publish(n)
                n += 1
            else:
                time.sleep(0.0005)

    threads = [threading.Thread(target=drive, args=(p,), daemon=True) for p in pubs]
    t0 = time.monotonic()
    base = sum(len(p.acked) for p in pubs)
    for t in threads:
        t.start()
    time.sleep(seconds)
    done = sum(len(p.acked) for p in pubs) - base
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    for p in pubs:
        p.close()
    return done / elapsed


# -- phases ----------------------------------------------------------------------------
def mosquitto_rate(root: Path, args: argparse.Namespace) -> float:
    url = f"sqlite:///{root / 'mosq.db'}"
    path = write_settings_file(root / "mosq.py", {
        "DATA_DIR": str(root / "mosq-data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
        "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "PERSISTER_BATCH_MS": 5})
    migrate(url)
    db = Database(url)
    folders = seed_folders(db, args.burst_clients, "b")
    broker = start_broker(path)
    log = root / "mosq-persister.log"
    import subprocess

    with open(log, "ab") as out:
        persister = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--persister"], cwd=ROOT,
                                     env=clean_env(path), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
    try:
        if not wait_log(log, PERSISTER_READY, 30, 0, persister):
            raise SystemExit("the Mosquitto persister did not subscribe")
        return burst(folders, [broker.port], args.burst_seconds)
    finally:
        stop_process(persister, 25)
        broker.stop()
        db.dispose()


def run(args: argparse.Namespace) -> int:
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hub-cluster-") as tmp:
        root = Path(tmp)
        m_rate = mosquitto_rate(root, args)
        print(f"mosquitto: {m_rate:,.0f} acknowledged values/s with {args.burst_clients} publishers", flush=True)
        made: dict[str, list[tuple[str, str]]] = {}

        def seed(db: Database) -> None:
            made["burst"] = seed_folders(db, args.burst_clients, "b")
            made["ctl"] = seed_folders(db, args.controllers, "c")

        (root / "rabbit").mkdir()
        with rabbit_hub(root / "rabbit", seed, persisters=2) as hub:
            ports = [n.mqtt for n in hub.cluster.nodes]
            c_rate = burst(made["burst"], ports, args.burst_seconds)
            print(f"cluster: {c_rate:,.0f} acknowledged values/s ({c_rate / m_rate:.2f} of Mosquitto's)", flush=True)
            db = hub.db()
            ctls: list[MovingController | HubController] = [
                HubController(f, k, ports, i % len(ports)) if i % 2 == 0 else MovingController(f, k, ports, i % 3)
                for i, (f, k) in enumerate(made["ctl"])]
            stop = threading.Event()

            def drive() -> None:
                n = 0
                while not stop.is_set():
                    t = time.monotonic()
                    for c in ctls:
                        c.publish(n)
                    n += 1
                    stop.wait(max(0.0, 1 / args.rate - (time.monotonic() - t)))

            wait(lambda: all(c.unacked() == 0 for c in ctls), 30, "the controllers to connect")
            driver = threading.Thread(target=drive, daemon=True)
            driver.start()
            order = list(range(len(ports)))
            rnd.shuffle(order)
            kills = [order[i % len(order)] for i in range(max(args.kills, len(ports)))]
            for node in kills:
                time.sleep(rnd.uniform(3, 6))
                t = time.monotonic()
                hub.cluster.kill(node)
                print(f"killed node {node} (-9); {sum(len(c.acked) for c in ctls)} acknowledged so far", flush=True)
                wait(lambda t=t: all(c.last_ack > t for c in ctls), 120,  # type: ignore[misc]
                     "every controller to get an acknowledgement again")
                moved = time.monotonic() - t
                print(f"every controller acknowledged again {moved:.1f} s after the kill", flush=True)
                time.sleep(max(0.0, args.down - moved))
                t = time.monotonic()
                hub.cluster.restart(node)
                print(f"node {node} started again and back in the cluster in {time.monotonic() - t:.1f} s",
                      flush=True)
            time.sleep(3)
            stop.set()
            driver.join()
            for c in ctls:
                c.counting = False
            wait(lambda: all(c.unacked() == 0 for c in ctls), 120, "the last acknowledgements")
            acked = {c.folder: set(c.acked) for c in ctls}
            total = sum(len(v) for v in acked.values())
            wait(lambda: sum(len(v) for v in stored(db, "c").values()) >= total, 120, "the persisters to catch up")
            got = stored(db, "c")
            lost = sum(len(nums - set(got.get(f, Counter()))) for f, nums in acked.items())
            dup = sum(sum(k - 1 for k in cnt.values() if k > 1) for cnt in got.values())
            n_stored = sum(len(cnt) for cnt in got.values())
            max_gap = max(c.max_gap for c in ctls)
            for c in ctls:
                c.close()
            db.dispose()
            print(f"cluster_acked={total} cluster_stored={n_stored} cluster_lost={lost} cluster_duplicated={dup} "
                  f"node_kills={hub.cluster.kills} max_gap_s={max_gap:.1f} mosquitto_rate={m_rate:.0f} "
                  f"cluster_rate={c_rate:.0f} cluster_vs_mosquitto={c_rate / m_rate:.2f}", flush=True)
            return 0 if lost == 0 and dup == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--controllers", type=int, default=12)
    p.add_argument("--rate", type=float, default=5.0, help="values a second per controller")
    p.add_argument("--kills", type=int, default=3, help="node kills in all (at least one per node)")
    p.add_argument("--down", type=float, default=5.0, help="seconds a killed node stays down")
    p.add_argument("--burst-seconds", type=float, default=10.0)
    p.add_argument("--burst-clients", type=int, default=4)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
