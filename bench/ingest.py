"""Ingest throughput: MQTT alone vs. MQTT + persister, on SQLite and PostgreSQL.

    .venv/bin/python bench/ingest.py [--messages 60000] [--controllers 2] [--skip-pg]

Everything is real and on this machine: Mosquitto with the hub plugin, N
controller processes (`hub.controller.Controller`, QoS 1, each update
timestamped), the persister (`run.py --persister`) and the database.

(a) raw: a bare paho subscriber (the persister's credentials and shared
    subscription, automatic acks, stores nothing) receives the controllers'
    single-value updates; updates/s from "go" to the last one received.
(b) persisted: the same stream with the persister running instead of (a)'s
    subscriber; updates/s from "go" until the last revision is committed.
    On SQLite and on PostgreSQL (a throw-away cluster, fsync on), single-value
    messages and batch messages (`--values` values of one sequence each).

The ratio (b)/(a) says whether persistence is the bottleneck (1.0: it is not).
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

from sqlalchemy import func, select  # noqa: E402

from hub import credentials  # noqa: E402
from hub.storage import changes, keys, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Revision  # noqa: E402
from tests.support import PgCluster, find_pg_bindir, free_port, write_settings_file  # noqa: E402
from tests.support.broker import RunningBroker, start_broker  # noqa: E402
from tests.support.settings import clean_env  # noqa: E402


# -- a publishing controller (a child process) ------------------------------------
def publisher(folder: str, port: int, count: int, per_message: int) -> None:
    from hub.controller import Controller

    c = Controller(os.environ["BENCH_KEY"], folder, port=port, max_buffer=0)
    c.connect(wait=20)
    ts = [c.timestamp() for _ in range(count)]  # made up front: the loop measures MQTT, not clocks
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    if per_message == 1:
        for i in range(count):
            c.update("v", float(i), ts[i])
    else:
        for i in range(0, count, per_message):
            c.update_values("v", [(float(j), ts[j]) for j in range(i, min(count, i + per_message))])
    ok = c.flush(120)
    print(json.dumps({"seconds": time.perf_counter() - t, "acked": ok}), flush=True)
    c.close()


class Publishers:
    def __init__(self, world: World, count: int, per_message: int) -> None:
        self.procs = []
        for folder, key in world.controllers:
            p = subprocess.Popen([sys.executable, __file__, "--publish", folder, "--port", str(world.broker.port),
                                  "--count", str(count), "--values", str(per_message)],
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


# -- the set-up ---------------------------------------------------------------------
class World:
    def __init__(self, tmp: Path, url: str, n_controllers: int) -> None:
        self.tmp, self.url = tmp, url
        self.settings_path = write_settings_file(tmp / "config.py", {
            "DATA_DIR": str(tmp / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
            "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "LOG_LEVEL": "WARNING"})
        migrate(url)
        self.db = Database(url)
        self.controllers: list[tuple[str, str]] = []
        with self.db.session() as s:
            users.create_organization(s, "bench")
            for i in range(n_controllers):
                path = f"bench/pi-{i}"
                resources.create(s, path, "controller")
                resources.create(s, f"{path}/v", "sequence")
                self.controllers.append((path, keys.create(s, controller_path=path)[1]))
        with self.db.session() as s:
            latest = changes.latest(s)
        self.broker: RunningBroker = start_broker(self.settings_path)
        deadline = time.monotonic() + 20
        while f"change {latest}" not in self.broker.log_text():  # "ready (... change N)" or "now at change N:"
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the broker did not load the keys:\n{self.broker.log_tail()}")
            time.sleep(0.05)

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Revision)) or 0)

    def close(self) -> None:
        self.broker.stop()
        self.db.dispose()


def raw_rate(world: World, count: int) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    total = count * len(world.controllers)
    got, done, last = [0], threading.Event(), [0.0]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    c.username_pw_set(credentials.PERSISTER_USERNAME, credentials.service_password(
        world.broker.settings.SECRET_KEY, credentials.PERSISTER_USERNAME))

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        got[0] += 1
        if got[0] >= total:
            last[0] = time.perf_counter()
            done.set()

    subscribed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 4000
    c.connect(world.broker.host, world.broker.port, properties=props)
    c.subscribe("$share/bench/#", 1)
    c.loop_start()
    assert subscribed.wait(10)
    pubs = Publishers(world, count, 1)
    t0 = pubs.go()
    pubs.wait()
    assert done.wait(120), f"raw subscriber got {got[0]} of {total}"
    c.disconnect()
    c.loop_stop()
    return total / (last[0] - t0)


def persisted_rate(world: World, count: int, per_message: int, client_id: str) -> float:
    total = count * len(world.controllers)
    before = world.count()
    log = open(world.tmp / f"persister-{client_id}.log", "ab")
    env = clean_env(world.settings_path, HUB_PERSISTER_CLIENT_ID=client_id, HUB_LOG_LEVEL="INFO")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--persister"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        start = log.tell()
        while b"subscribed to" not in (world.tmp / f"persister-{client_id}.log").read_bytes()[start:]:
            assert proc.poll() is None and time.monotonic() < deadline, "the persister did not start"
            time.sleep(0.05)
        pubs = Publishers(world, count, per_message)
        t0 = pubs.go()
        deadline = time.monotonic() + 300
        while world.count() < before + total:
            assert time.monotonic() < deadline, f"stored {world.count() - before} of {total}"
            time.sleep(0.02)
        t1 = time.perf_counter()
        pubs.wait()
        return total / (t1 - t0)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def run_db(label: str, url: str, args: argparse.Namespace, out: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"hub-bench-{label}-") as tmp:
        world = World(Path(tmp), url, args.controllers)
        try:
            if "raw_per_s" not in out:
                out["raw_per_s"] = raw_rate(world, args.messages)
                print(f"raw MQTT (QoS 1, {args.controllers} controllers): {out['raw_per_s']:,.0f} updates/s")
            # one client id for both runs: a second id would leave the first one's session in the
            # shared group, and Mosquitto would queue half of the stream for it
            rate = persisted_rate(world, args.messages, 1, f"bench-{label}")
            out[f"{label}_per_s"] = rate
            print(f"{label}: single-value messages persisted: {rate:,.0f} updates/s "
                  f"(ratio {rate / out['raw_per_s']:.2f})")
            rate = persisted_rate(world, args.messages, args.values, f"bench-{label}")
            out[f"{label}_batch_per_s"] = rate
            print(f"{label}: {args.values}-value messages persisted: {rate:,.0f} updates/s")
        finally:
            world.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=60_000, help="updates per controller")
    p.add_argument("--controllers", type=int, default=2)
    p.add_argument("--values", type=int, default=50, help="values per batch message")
    p.add_argument("--skip-pg", action="store_true")
    p.add_argument("--publish", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.publish:
        publisher(args.publish, args.port, args.count, args.values)
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
    if "pg_per_s" in out:
        out["pg_ratio"] = out["pg_per_s"] / out["raw_per_s"]
    out["sqlite_ratio"] = out["sqlite_per_s"] / out["raw_per_s"]
    print(" ".join(f"{k}={v:.0f}" if v > 10 else f"{k}={v:.2f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
