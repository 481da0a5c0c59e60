"""Chaos: no acknowledged value is lost while each part of the hub restarts under load.

    .venv/bin/python bench/chaos.py [--seconds 120] [--controllers 20] [--rate 5] [--restarts 10]
                                    [--pg-down 10] [--kill-seconds 20] [--rhizo-controllers 3] [--seed N]

Everything is real and on this machine: PostgreSQL (a throw-away cluster), Mosquitto with
the hub plugin and persistence on, two persisters, the notifier and the HTTP server (`run.py
--persister / --notifier / --http`, restarted 2 s after they die, as the systemd units'
Restart=on-failure / RestartSec=2s do). `--controllers` controllers (a third each: the hub's
client, plain paho MQTT 5, plain paho MQTT 3.1.1; QoS 1) publish numbered values `--rate`
times a second each, a browser-like token client watches every folder over websockets, and
/health is polled. Beside them, `--rhizo-controllers` real rhizo-client controllers
(0.1.5, from .venv-rhizo/) send numbered values `--rate` times a second at QoS 0, as that
client does, over MQTT on websockets. At random moments, each part in turn:
  mosquitto  stopped with SIGTERM (as systemd stops it) and started again,
  persister  one of the two killed with -9, the next time the other stopped with SIGTERM,
  http       killed with -9,
  postgres   stopped for --pg-down seconds,
  notifier   killed with -9.
After each one the bench waits until the part is back and every controller got an
acknowledgement again, and prints what happened. Then every value a controller got a
(successful) PUBACK for must be in the database exactly once: lost, duplicated.

Then, separately, Mosquitto itself is killed with -9 under the same load: it acknowledges a
publish before its persistence file (written every autosave_interval seconds) holds it, so
what was acknowledged but not yet stored by a persister can go: broker_kill_lost.

QoS 0 has no acknowledgement: every value a rhizo-client was asked to send counts (qos0_sent),
also one sent while its connection was down (qos0_stored: how many of them are stored). It
may be lost only while Mosquitto restarts (SIGTERM and kill -9): from the newest value of
that controller stored when the broker goes down until the first it sends with its
connection up after the broker is back and both persisters have subscribed again
(qos0_sent_during_broker_restarts values in all). qos0_lost_during_broker_restarts is that
loss (the bound); qos0_lost_outside_broker_restarts (persister kills, PostgreSQL, HTTP,
notifier) must be 0.

max_gap_s: the longest time any controller went without an acknowledgement. The last line is
`acked=… stored=… lost=… duplicated=… restarts=… max_gap_s=… broker_kill_lost=… qos0_sent=…
qos0_stored=… qos0_lost=… qos0_duplicated=… qos0_sent_during_broker_restarts=…
qos0_lost_during_broker_restarts=… qos0_lost_outside_broker_restarts=…`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import random
import secrets
import signal
import subprocess
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

import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

from sqlalchemy import select  # noqa: E402

from hub import credentials  # noqa: E402
from hub.storage import changes, keys, permissions, resources, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Level, Resource, Revision  # noqa: E402
from tests.support import PgCluster, find_pg_bindir, free_port, write_settings_file  # noqa: E402
from tests.support.broker import RunningBroker, start_broker  # noqa: E402
from tests.support.settings import clean_env  # noqa: E402

_spec = importlib.util.spec_from_file_location("chaos_clients", ROOT / "bench" / "chaos_clients.py")
assert _spec is not None and _spec.loader is not None
_clients = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_clients)
Controllers, Watcher = _clients.Controllers, _clients.Watcher
RhizoControllers, RHIZO_PYTHON = _clients.RhizoControllers, _clients.RHIZO_PYTHON

RESTART_SEC = 2.0  # the units' RestartSec
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"{time.monotonic() - T0:7.1f} s  {msg}", flush=True)


def wait(cond: Any, timeout: float, what: str) -> float:
    """Seconds until `cond()` held (polling); raises after `timeout`."""
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - t


class Service:
    """A `run.py --<part>` child as a systemd unit runs it: started again RESTART_SEC after
    it dies."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.name, self.argv, self.env, self.log, self.ready = name, argv, env, log, ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT)
        if not self._thread.is_alive():
            self._thread.start()

    def is_ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                return self.ready.encode() in f.read()
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM; the watcher starts it again once it has exited."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            p = self.proc
            if p is not None and p.poll() is not None:
                self.exits.append(p.returncode)
                self._stop.wait(RESTART_SEC)
                if not self._stop.is_set():
                    self.start()

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Health:
    """Polls /health; `seen(since)`: the failing parts it named since then."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/health"
        self.log: list[tuple[float, str]] = []
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.log.append((time.monotonic(), self.poll()))

    def poll(self) -> str:
        try:
            with urllib.request.urlopen(self.url, timeout=3) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        except OSError:
            return "unreachable"
        failing = [name for name, c in body.get("checks", {}).items() if not c.get("ok")]
        return body.get("status", "?") + (f" ({', '.join(failing)})" if failing else "")

    def seen(self, since: float) -> str:
        states = [s for t, s in self.log if t >= since]
        out: list[str] = []
        for s in states:
            if s not in out:
                out.append(s)
        return " -> ".join(out) or "(no answer)"

    def stop(self) -> None:
        self._stop.set()


class Hub:
    def __init__(self, tmp: Path, url: str, n_controllers: int, n_rhizo: int) -> None:
        self.tmp, self.url = tmp, url
        self.http_port = free_port()
        self.settings_path = write_settings_file(tmp / "config.py", {
            "DATA_DIR": str(tmp / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
            "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "HTTP_PORT": self.http_port,
            "PASSWORD_HASH_ROUNDS": 4})
        migrate(url)
        self.db = Database(url)
        self.controllers: list[tuple[str, str]] = []
        with self.db.session() as s:
            users.create_organization(s, "acme")
            for i in range(n_controllers):
                path = f"acme/c{i:02d}"
                resources.create(s, path, "controller")
                resources.create(s, f"{path}/n", "sequence")
                self.controllers.append((path, keys.create(s, controller_path=path)[1]))
            self.rhizo: list[tuple[str, str]] = []
            for i in range(n_rhizo):  # the client creates its sequence itself
                path = f"acme/r{i:02d}"
                resources.create(s, path, "controller")
                self.rhizo.append((path, keys.create(s, controller_path=path)[1]))
            watcher = users.create_user(s, "watcher@example.com", "correct horse battery", rounds=4)
            s.flush()
            permissions.grant(s, "acme", Level.READ, user_id=watcher.id)
            self.watcher_id = watcher.id
        self.broker: RunningBroker = start_broker(self.settings_path)
        with self.db.session() as s:
            latest = changes.latest(s)
        wait(lambda: self.broker.plugin_change_id() >= latest, 30, "the plugin loading the keys")
        self.token = credentials.issue_token(self.broker.settings.SECRET_KEY, self.watcher_id, 24 * 3600)

        def service(name: str, part: str, ready: str, **env: str) -> Service:
            return Service(name, [sys.executable, str(ROOT / "run.py"), f"--{part}"],
                           clean_env(self.settings_path, **env), tmp / f"{name}.log", ready)

        self.persisters = [service(f"persister-{i}", "persister", "subscribed to $share/",
                                   HUB_PERSISTER_CLIENT_ID=f"chaos-persister-{i}") for i in (1, 2)]
        self.http = service("http", "http", "")
        self.notifier = service("notifier", "notifier", "subscribed")
        self.services = [*self.persisters, self.http, self.notifier]
        for s in self.services:
            s.start()
        for p in self.persisters:
            wait(p.is_ready, 60, f"{p.name} subscribing")
        self.health = Health(self.http_port)
        wait(lambda: self.health.poll().startswith("ok"), 60, "/health saying ok")

    def broker_back(self, since_log: int) -> bool:
        text = self.broker.log_text()[since_log:]
        return self.broker.is_running() and text.count("persister 'chaos-persister-") >= 2 \
            and "storage gate open" in text

    def stored(self, folders: list[str], like: str = "acme/c%/n") -> dict[str, Counter[int]]:
        out: dict[str, Counter[int]] = {f: Counter() for f in folders}
        with self.db.session() as s:
            for path, num in s.execute(select(Resource.path, Revision.num)
                                       .join(Resource, Resource.id == Revision.resource_id)
                                       .where(Resource.path.like(like))):
                out[path.rsplit("/", 1)[0]][int(num)] += 1
        return out

    def close(self) -> None:
        self.health.stop()
        for s in self.services:
            s.stop()
        self.broker.stop()
        self.db.dispose()


class BrokerRestarts:
    """Per rhizo-client folder, the numbers sent while Mosquitto restarted: (lo, hi]."""

    def __init__(self, hub: Hub, rz: Any) -> None:
        self.hub, self.rz = hub, rz
        self.windows: list[dict[str, tuple[int, int]]] = []
        self.labels: list[str] = []
        self._lo: dict[str, int] = {}

    def going_down(self, how: str) -> None:
        self.labels.append(how)
        stored = self.hub.stored([c.folder for c in self.rz.all], like="acme/r%/n")
        self._lo = {f: max(c, default=-1) for f, c in stored.items()}

    def back(self) -> float:
        """Once the broker is back: wait until every rhizo-client sends with its connection up."""
        t = time.monotonic()
        took = wait(lambda: self.rz.all_up_since(t), 180, "every rhizo-client connected again")
        hi = self.rz.last_sent()
        self.windows.append({f: (lo, hi[f]) for f, lo in self._lo.items()})
        return took

    def covers(self, folder: str, n: int) -> bool:
        return any(w[folder][0] < n <= w[folder][1] for w in self.windows)


def fault(hub: Hub, part: str, n: int, ctls: Any, pg: PgCluster, pg_down: float, restarts: BrokerRestarts) -> str:
    """Do one fault; wait until the part is back and every controller publishes again."""
    t = time.monotonic()
    log_at = len(hub.broker.log_text())
    rz = ""
    if part == "mosquitto":
        restarts.going_down("SIGTERM")
        hub.broker.stop()  # SIGTERM, as systemd stops it; persistence is written on the way out
        hub.broker.start()
        what = "SIGTERM, started again"
        back = wait(lambda: hub.broker_back(log_at), 120, "both persisters subscribed again")
        rz = f"; every rhizo-client connected again {restarts.back():.1f} s after that"
    elif part == "persister":  # in turn: a crash, and a stop as `systemctl restart` does it
        p = hub.persisters[n % 2]
        old = p.proc
        if n % 2 == 0:
            p.kill()
            what = f"kill -9 {p.name}"
        else:
            p.terminate()  # it stores what it holds, hands its share over and exits
            what = f"SIGTERM {p.name}"
        back = wait(lambda: p.proc is not old and p.is_ready(), 120, f"{p.name} back")
    elif part == "postgres":
        pg.stop("fast")
        time.sleep(pg_down)
        pg.start()
        what = f"stopped {pg_down:.0f} s"
        back = time.monotonic() - t
    else:
        svc = hub.http if part == "http" else hub.notifier
        svc.kill()
        what = "kill -9"
        time.sleep(0.3)
        if part == "http":
            back = wait(lambda: hub.health.poll() != "unreachable", 120, "HTTP back") + 0.3
        else:
            back = wait(svc.is_ready, 120, "notifier back") + 0.3
    resumed = wait(lambda: ctls.all_acked_since(t), 180, "every controller acknowledged again")
    time.sleep(1.0)  # let /health catch up before saying what it said
    return (f"{part:9s} {what}: back after {back:.1f} s, every controller acknowledged again after "
            f"{resumed:.1f} s; /health: {hub.health.seen(t)}{rz}")


def account(hub: Hub, ctls: Any, since: dict[str, set[int]] | None = None) -> tuple[int, int, int, int]:
    """(acked, stored, lost, duplicated), over the values acknowledged after `since`."""
    acked_sets = ctls.acked()
    expected = sum(len(v - (since or {}).get(f, set())) for f, v in acked_sets.items())
    deadline = time.monotonic() + 180
    while True:
        stored = hub.stored(list(acked_sets))
        lost = sum(len(v - (since or {}).get(f, set()) - set(stored[f])) for f, v in acked_sets.items())
        if lost == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    total = sum(sum(c.values()) for c in stored.values())
    dup = sum(n - 1 for c in stored.values() for n in c.values() if n > 1)
    return expected, total, lost, dup


def account_qos0(hub: Hub, rz: Any, restarts: BrokerRestarts) -> dict[str, int]:
    """The QoS 0 figures, once what the persisters still hold is stored (the stored count
    stays the same for 3 s)."""
    sent = rz.sent()
    folders = list(sent)
    last, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 120
    while time.monotonic() < deadline:
        stored = hub.stored(folders, like="acme/r%/n")
        total = sum(n for c in stored.values() for v, n in c.items() if v >= 0)
        if total != last:
            last, steady_since = total, time.monotonic()
        elif time.monotonic() - steady_since >= 3:
            break
        time.sleep(0.5)
    lost = [(f, v) for f, vs in sent.items() for v in vs if v not in stored[f]]
    during = sum(1 for f, v in lost if restarts.covers(f, v))
    for how, w in zip(restarts.labels, restarts.windows, strict=True):
        in_w = [(f, v) for f, vs in sent.items() for v in vs if w[f][0] < v <= w[f][1]]
        say(f"QoS 0 across the mosquitto {how}: {sum(1 for f, v in in_w if v not in stored[f])} lost of "
            f"{len(in_w)} sent ({len(sent)} rhizo-clients)")
    n_sent = sum(len(v) for v in sent.values())
    return {"qos0_sent": n_sent, "qos0_stored": n_sent - len(lost), "qos0_lost": len(lost),
            "qos0_duplicated": sum(n - 1 for f, vs in sent.items() for v in vs if (n := stored[f][v]) > 1),
            "qos0_sent_during_broker_restarts": sum(1 for f, vs in sent.items() for v in vs if restarts.covers(f, v)),
            "qos0_lost_during_broker_restarts": during, "qos0_lost_outside_broker_restarts": len(lost) - during}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="length of the restart phase")
    ap.add_argument("--controllers", type=int, default=20)
    ap.add_argument("--rate", type=float, default=5.0, help="values per second per controller")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--pg-down", type=float, default=10.0)
    ap.add_argument("--kill-seconds", type=float, default=20.0, help="length of the broker kill -9 phase")
    ap.add_argument("--rhizo-controllers", type=int, default=3, help="rhizo-client controllers (QoS 0)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    # the hub client's own log lines (a refusal is logged once per outage, not per attempt)
    logging.basicConfig(level=logging.WARNING, format="           %(name)s: %(message)s")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    bindir = find_pg_bindir()
    if bindir is None:
        print("PostgreSQL is not installed: `make setup` installs Debian's package", file=sys.stderr)
        return 2
    if args.rhizo_controllers and not RHIZO_PYTHON.exists():
        print("rhizo-client's environment is missing: run `make rhizo-client` (or --rhizo-controllers 0)",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hub-chaos-"))
    pg = PgCluster(bindir, free_port())
    pg.init()
    pg.start()
    hub: Hub | None = None
    ctls: Any = None
    watcher: Any = None
    rz: Any = None
    try:
        hub = Hub(tmp, pg.create_database("chaos"), args.controllers, args.rhizo_controllers)
        say(f"seed {seed}: {args.controllers} controllers x {args.rate:g}/s, 2 persisters, notifier, HTTP, "
            f"PostgreSQL, Mosquitto (persistence on); a watcher on acme/#; "
            f"{args.rhizo_controllers} rhizo-client controllers x {args.rate:g}/s at QoS 0")
        watcher = Watcher(hub.broker, hub.token)
        ctls = Controllers(hub.controllers, hub.broker.port, args.rate)
        ctls.start()
        rz = RhizoControllers(hub.rhizo, tmp / "rhizo", hub.broker, hub.http_port, args.rate)
        rz.wait_streaming()
        restarts = BrokerRestarts(hub, rz)
        wait(lambda: ctls.all_acked_since(time.monotonic() - 0.5), 60, "every controller publishing")
        parts = ["mosquitto", "persister", "http", "postgres", "notifier"]
        slot = args.seconds / max(1, args.restarts)
        start = time.monotonic()
        for i in range(args.restarts):
            at = start + slot * (i + rnd.uniform(0.2, 0.8))
            time.sleep(max(0.0, at - time.monotonic()))
            say(fault(hub, parts[i % len(parts)], i // len(parts), ctls, pg, args.pg_down, restarts))
        time.sleep(max(0.0, start + args.seconds - time.monotonic()))
        max_gap = ctls.max_gap
        ctls.pause()
        say(f"publishing paused: {ctls.published} values sent; waiting for every acknowledgement")
        acked, stored, lost, dup = account(hub, ctls)
        unacked = ctls.unacked()
        say(f"restart phase: acked={acked} stored={stored} lost={lost} duplicated={dup} "
            f"(sent but never acknowledged: {unacked}); watcher saw {watcher.received}; "
            f"service exits: " + ", ".join(f"{s.name} {s.exits}" for s in hub.services))
        # -- Mosquitto killed with -9 ---------------------------------------------------------
        before = ctls.acked()
        ctls.resume()
        time.sleep(args.kill_seconds * rnd.uniform(0.3, 0.7))
        log_at = len(hub.broker.log_text())
        assert hub.broker.proc is not None
        restarts.going_down("kill -9")
        hub.broker.proc.kill()  # kill -9: what was acknowledged but not yet saved is gone
        hub.broker.proc.wait()
        hub.broker.proc = None
        time.sleep(RESTART_SEC)
        hub.broker.start()
        back = wait(lambda: hub.broker_back(log_at), 120, "both persisters subscribed again")
        rz_up = restarts.back()
        say(f"mosquitto kill -9: back after {back + RESTART_SEC:.1f} s, every rhizo-client connected again "
            f"{rz_up:.1f} s after")
        time.sleep(args.kill_seconds / 2)
        ctls.pause()
        k_acked, _, k_lost, k_dup = account(hub, ctls, since=before)
        say(f"broker kill -9 phase: acked={k_acked} lost={k_lost} duplicated={k_dup}")
        rz.close()  # sends nothing more; then what it sent is counted
        q0 = account_qos0(hub, rz, restarts)
        say("rhizo-client at QoS 0, both phases: " + " ".join(f"{k}={v}" for k, v in q0.items()))
        print(f"acked={acked} stored={stored} lost={lost} duplicated={dup} restarts={args.restarts} "
              f"max_gap_s={max_gap:.1f} broker_kill_lost={k_lost} "
              + " ".join(f"{k}={v}" for k, v in q0.items()), flush=True)
        return 0
    finally:
        if rz is not None:
            rz.close()
        if ctls is not None:
            ctls.close()
        if watcher is not None:
            watcher.close()
        if hub is not None:
            hub.close()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
