"""Ingest throughput: MQTT alone vs. MQTT + persister, on SQLite and PostgreSQL.

    .venv/bin/python bench/ingest.py [--messages 30000] [--controllers 2] [--values 50] [--skip-pg]

Everything is real and on this machine: Mosquitto with the hub plugin, N
controller processes (`hub.controller.Controller`, QoS 1, every update
timestamped), the persister (`run.py --persister`, defaults) and the database
(PostgreSQL in a throw-away cluster with fsync and synchronous_commit on, as in
production; SQLite with the hub's pragmas).

live: the controllers publish `--messages` single-value updates each, as fast
      as they can, while
      (a) a bare paho subscriber (the persister's credentials, a shared
          subscription, automatic acks, stores nothing) receives them: raw_per_s;
          and the same with the persister's own receive path (`FastClient`,
          a stricter baseline than plain paho): raw_fast_per_s;
      (b) the persister receives and commits them: sqlite_per_s, pg_per_s;
      and again with batch messages (`--values` values of one sequence each).
      Updates/s from "go" to the last one received / committed. Publishers,
      broker, subscriber and database share the two cores: this is the rate
      of the whole box, and the ratio (b)/(a) says whether persistence is the
      bottleneck (1.0: it is not); *_vs_fast_ratio divides by raw_fast_per_s.
drain: the same updates are queued by Mosquitto while the subscriber / the
      persister is away; then it connects and we time until all are received /
      committed (no publisher competing for the CPU): the persister's own rate.

The last line is `key=value` pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# not bench/ itself on the path: bench/http.py would shadow the standard library's http
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from hub import credentials  # noqa: E402
from hub.controller.fastclient import FastClient  # noqa: E402
from hub.storage import changes, keys, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Resource, Revision  # noqa: E402
from tests.support import PgCluster, find_pg_bindir, free_port, write_settings_file  # noqa: E402
from tests.support.broker import RunningBroker, start_broker  # noqa: E402
from tests.support.settings import clean_env  # noqa: E402


# -- a publishing controller (a child process) ------------------------------------
def publisher(folder: str, port: int, count: int, per_message: int, sequence: str) -> None:
    from hub.controller import Controller

    c = Controller(os.environ["BENCH_KEY"], folder, port=port, max_buffer=0)
    c.connect(wait=20)
    ts = [c.timestamp() for _ in range(count)]  # made up front: the loop measures MQTT, not clocks
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    if per_message == 1:
        for i in range(count):
            c.update(sequence, float(i), ts[i])
    else:
        for i in range(0, count, per_message):
            c.update_values(sequence, [(float(j), ts[j]) for j in range(i, min(count, i + per_message))])
    ok = c.flush(300)
    print(json.dumps({"seconds": time.perf_counter() - t, "acked": ok}), flush=True)
    c.close()


class Publishers:
    """One process per controller, connected and waiting for `go`."""

    def __init__(self, world: World, count: int, per_message: int, sequence: str) -> None:
        self.procs = []
        for folder, key in world.controllers:
            p = subprocess.Popen([sys.executable, __file__, "--publish", folder, "--port", str(world.broker.port),
                                  "--count", str(count), "--values", str(per_message), "--sequence", sequence],
                                 env={**os.environ, "BENCH_KEY": key}, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            self.procs.append(p)
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def go(self) -> float:
        t = time.perf_counter()
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return t

    def wait(self) -> None:
        for p in self.procs:
            out, _ = p.communicate(timeout=300)
            assert json.loads(out.strip().splitlines()[-1])["acked"], "a publisher was not acknowledged"

    def run(self) -> None:
        self.go()
        self.wait()


# -- the set-up ---------------------------------------------------------------------
class World:
    def __init__(self, tmp: Path, url: str, n_controllers: int) -> None:
        self.tmp, self.url = tmp, url
        self.settings_path = write_settings_file(tmp / "config.py", {
            "DATA_DIR": str(tmp / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
            "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "LOG_LEVEL": "WARNING",
            # the raw baselines run without a persister, and "drain" queues while it is away
            "MQTT_REQUIRE_PERSISTER": False})
        migrate(url)
        self.db = Database(url)
        self.controllers: list[tuple[str, str]] = []
        with self.db.session() as s:
            users.create_organization(s, "bench")
            for i in range(n_controllers):
                path = f"bench/pi-{i}"
                resources.create(s, path, "controller")
                self.controllers.append((path, keys.create(s, controller_path=path)[1]))
        with self.db.session() as s:
            latest = changes.latest(s)
        self.broker: RunningBroker = start_broker(self.settings_path)
        self.persister: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 20
        while f"change {latest}" not in self.broker.log_text():  # "ready (... change N)" or "now at change N:"
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the broker did not load the keys:\n{self.broker.log_tail()}")
            time.sleep(0.05)

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Revision)) or 0)

    def latest(self, sequence: str) -> list[float | None]:
        """The latest value of each controller's `sequence` (two primary-key look-ups each)."""
        with self.db.session() as s:
            return [s.scalar(select(Revision.num).join(Resource, Resource.last_revision_id == Revision.id)
                             .where(Resource.path == f"{path}/{sequence}")) for path, _ in self.controllers]

    def wait_stored(self, sequence: str, count: int, total: int, before: int, timeout: float = 300) -> float:
        """Poll cheaply (a count(*) every few ms would load the database being measured):
        each controller sends 0..count-1 in order, so wait for every sequence's latest
        value to be the last one, then confirm with a count. Returns the time."""
        deadline = time.monotonic() + timeout
        while self.latest(sequence) != [float(count - 1)] * len(self.controllers) \
                or self.count() < before + total:
            assert time.monotonic() < deadline, f"stored {self.count() - before} of {total}"
            time.sleep(0.01)
        return time.perf_counter()

    def start_persister(self) -> float:
        """Start `run.py --persister`; the time it connected."""
        log_path = self.tmp / "persister.log"
        start = log_path.stat().st_size if log_path.exists() else 0
        # no hand-over on stop: "drain" measures the queue its session keeps while it is away
        env = clean_env(self.settings_path, HUB_PERSISTER_CLIENT_ID="bench", HUB_LOG_LEVEL="INFO",
                        HUB_PERSISTER_HANDOVER_ON_STOP="false")
        with open(log_path, "ab") as log:
            self.persister = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--persister"], env=env,
                                              stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while b"connected to the broker" not in log_path.read_bytes()[start:]:
            assert self.persister.poll() is None and time.monotonic() < deadline, "the persister did not start"
            time.sleep(0.002)
        t = time.perf_counter()
        while b"subscribed to" not in log_path.read_bytes()[start:]:
            time.sleep(0.01)
        return t

    def stop_persister(self) -> None:
        if self.persister is not None:
            self.persister.terminate()
            self.persister.wait(30)
            self.persister = None

    def close(self) -> None:
        self.stop_persister()
        self.broker.stop()
        self.db.dispose()


class RawSubscriber:
    """A plain paho client with the persister's credentials on `$share/bench/#`
    (with `fast`: the persister's own `FastClient` receive path, storing nothing)."""

    def __init__(self, world: World, total: int, keep_session: bool, fast: bool = False) -> None:
        self.world, self.total, self.keep, self.fast = world, total, keep_session, fast
        self.got, self.done, self.last, self.connected_at = 0, threading.Event(), 0.0, 0.0

    def connect(self) -> None:
        cls = FastClient if self.fast else mqtt.Client
        c = cls(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
        c.username_pw_set(credentials.PERSISTER_USERNAME, credentials.service_password(
            self.world.broker.settings.SECRET_KEY, credentials.PERSISTER_USERNAME))
        subscribed = threading.Event()

        def on_message(_c: Any, _u: Any, _m: Any) -> None:
            self.got += 1
            if self.got >= self.total:
                self.last = time.perf_counter()
                self.done.set()

        def on_connect(*_a: Any) -> None:
            self.connected_at = time.perf_counter()

        c.on_message, c.on_connect, c.on_subscribe = on_message, on_connect, lambda *_a: subscribed.set()
        if self.fast:  # this path acks nothing itself
            def on_fast(_t: str, _p: bytes, mid: int, _q: int) -> None:
                c.ack_many((mid,))
                on_message(None, None, None)
            c.on_fast_message = on_fast
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = 4000
        props.SessionExpiryInterval = 300 if self.keep else 0
        c.connect(self.world.broker.host, self.world.broker.port, clean_start=not self.keep, properties=props)
        c.subscribe("$share/bench/#", 1)
        c.loop_start()
        assert subscribed.wait(10)
        self.client = c

    def close(self, drop_session: bool = False) -> None:
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props if drop_session else None)
        self.client.loop_stop()


# -- the measurements ------------------------------------------------------------------
def raw_live(world: World, count: int, fast: bool = False) -> float:
    sub = RawSubscriber(world, count * len(world.controllers), keep_session=False, fast=fast)
    sub.connect()
    pubs = Publishers(world, count, 1, "raw")
    t0 = pubs.go()
    pubs.wait()
    assert sub.done.wait(120), f"raw subscriber got {sub.got} of {sub.total}"
    sub.close()
    return sub.total / (sub.last - t0)


def raw_drain(world: World, count: int) -> float:
    sub = RawSubscriber(world, count * len(world.controllers), keep_session=True)
    sub.connect()
    sub.close()  # away: Mosquitto queues for the session
    Publishers(world, count, 1, "raw").run()
    sub.connect()
    assert sub.done.wait(120), f"raw subscriber got {sub.got} of {sub.total}"
    sub.close(drop_session=True)
    return sub.total / (sub.last - sub.connected_at)


def persisted_live(world: World, count: int, per_message: int, sequence: str) -> float:
    before = world.count()
    world.start_persister()
    try:
        pubs = Publishers(world, count, per_message, sequence)
        t0 = pubs.go()
        t1 = world.wait_stored(sequence, count, count * len(world.controllers), before)
        pubs.wait()
        return count * len(world.controllers) / (t1 - t0)
    finally:
        world.stop_persister()


def persisted_drain(world: World, count: int, sequence: str) -> float:
    before = world.count()  # the persister's session exists (a live run came first) and queues
    Publishers(world, count, 1, sequence).run()
    t0 = world.start_persister()
    try:
        t1 = world.wait_stored(sequence, count, count * len(world.controllers), before)
        return count * len(world.controllers) / (t1 - t0)
    finally:
        world.stop_persister()


def run_db(label: str, url: str, args: argparse.Namespace, out: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"hub-bench-{label}-") as tmp:
        world = World(Path(tmp), url, args.controllers)
        try:
            if "raw_per_s" not in out:
                out["raw_per_s"] = raw_live(world, args.messages)
                print(f"live, raw MQTT (QoS 1, {args.controllers} controllers): {out['raw_per_s']:,.0f} updates/s")
                out["raw_drain_per_s"] = raw_drain(world, args.messages)
                print(f"drain, raw MQTT: {out['raw_drain_per_s']:,.0f} updates/s")
                out["raw_fast_per_s"] = raw_live(world, args.messages, fast=True)
                print(f"live, raw MQTT, the persister's receive path (FastClient): "
                      f"{out['raw_fast_per_s']:,.0f} updates/s")
            rate = out[f"{label}_per_s"] = persisted_live(world, args.messages, 1, "v1")
            print(f"live, {label}: single-value messages persisted: {rate:,.0f} updates/s "
                  f"(ratio {rate / out['raw_per_s']:.2f})")
            rate = out[f"{label}_batch_per_s"] = persisted_live(world, args.messages, args.values, "vn")
            print(f"live, {label}: {args.values}-value messages persisted: {rate:,.0f} updates/s")
            rate = out[f"{label}_drain_per_s"] = persisted_drain(world, args.messages, "vd")
            print(f"drain, {label}: single-value messages persisted: {rate:,.0f} updates/s "
                  f"(ratio {rate / out['raw_drain_per_s']:.2f})")
        finally:
            world.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=30_000, help="updates per controller")
    p.add_argument("--controllers", type=int, default=2)
    p.add_argument("--values", type=int, default=50, help="values per batch message")
    p.add_argument("--skip-pg", action="store_true")
    p.add_argument("--publish", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sequence", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.publish:
        publisher(args.publish, args.port, args.count, args.values, args.sequence)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-ups below
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-sqlite-") as d:
        run_db("sqlite", f"sqlite:///{d}/hub.db", args, out)
    if not args.skip_pg:
        bindir = find_pg_bindir()
        if bindir is None:
            print("PostgreSQL not found: skipping it")
        else:
            cluster = PgCluster(bindir, free_port())
            try:
                cluster.init()
                with open(cluster.datadir / "postgresql.conf", "a") as f:  # durable, as in production
                    f.write("fsync = on\nsynchronous_commit = on\n")
                cluster.start()
                run_db("pg", cluster.create_database("bench"), args, out)
            finally:
                cluster.destroy()
    for label in ("sqlite", "pg"):
        if f"{label}_per_s" in out:
            out[f"{label}_ratio"] = out[f"{label}_per_s"] / out["raw_per_s"]
            out[f"{label}_drain_ratio"] = out[f"{label}_drain_per_s"] / out["raw_drain_per_s"]
            out[f"{label}_vs_fast_ratio"] = out[f"{label}_per_s"] / out["raw_fast_per_s"]
    print(" ".join(f"{k}={v:.0f}" if v > 10 else f"{k}={v:.2f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
