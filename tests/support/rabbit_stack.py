"""The hub on a real 3-node RabbitMQ cluster (BROKER=rabbitmq), on free loopback ports.

`rabbit_hub(root, seed)` starts, in this order: the broker-auth service (`run.py
--broker-auth`, a child process, ready when its /health answers), the local cluster (in this
process, so a test can kill a node with -9), the hub's queues (`topology.declare`), and
the persisters (`run.py --persister`, ready when they log that they consume). `seed(db)`
fills the database before anything starts. Everything stops at the end, and no RabbitMQ
or epmd process is left behind.

`RabbitHub` has `host`, `port`, `ws_port` and `ws_path`, so `tests.support.broker.mqtt_client`
connects to it as to a Mosquitto; `on_node(i)` gives the same for node i.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.rabbitmq import topology
from hub.rabbitmq.cluster import LocalCluster
from hub.settings import Settings, load
from hub.storage.db import Database, migrate
from tests.support.ports import free_block, free_port
from tests.support.processes import log_since, log_size, stop_process, wait_log
from tests.support.settings import clean_env, write_settings_file

ROOT = Path(__file__).resolve().parent.parent.parent
CONSUMING = "subscribed to RabbitMQ queue "  # an AMQP consumer registered (hub/rabbitmq/feed.py)
NOTIFIER_CONSUMING = "notifier subscribed to RabbitMQ queue "
READY_TIMEOUT = 30.0


@dataclass
class NodeAddress:
    host: str
    port: int
    ws_port: int
    ws_path: str = "/mqtt"


@dataclass
class RabbitHub:
    settings: Settings
    settings_path: Path
    root: Path
    cluster: LocalCluster
    auth: subprocess.Popen[bytes]
    auth_log: Path
    people: Any  # tests.fixtures.http.People
    http: Any = None  # tests.fixtures.http.RunningHttp, with http=True
    persisters: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ws_path: str = "/mqtt"
    notifiers: int = 0

    def wait_counted(self, timeout: float = 20.0) -> None:
        """Until the management API counts every persister and notifier as its queue's
        consumer: it does at the node's next statistics emission, 0.5-5 s after they
        subscribed (and /health and --check read it)."""
        want = {"hub.persist": len(self.persisters), "hub.notify": self.notifiers}
        deadline = time.monotonic() + timeout
        while True:
            queues = topology.describe(self.settings)
            got = {name: queues.get(name, {}).get("consumers", 0) for name in want}
            if all(got[name] >= n for name, n in want.items()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the management API counts {got} consumers, not {want}, after {timeout:.0f} s")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return str(self.http.url)

    @property
    def port(self) -> int:
        return self.settings.MQTT_PORT

    @property
    def ws_port(self) -> int:
        return self.settings.MQTT_WS_PORT

    def on_node(self, i: int) -> NodeAddress:
        n = self.cluster.nodes[i]
        return NodeAddress(n.host, n.mqtt, n.web_mqtt)

    def db(self) -> Database:
        return Database(self.settings.database_url)

    def start_persister(self, name: str = "p0") -> subprocess.Popen[bytes]:
        log = self.root / f"persister-{name}.log"
        offset = log_size(log)
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--persister"], cwd=ROOT,
                                    env=clean_env(self.settings_path, HUB_PERSISTER_CLIENT_ID=f"hub-persister-{name}"),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.persisters[name] = (proc, log)
        if not wait_log(log, CONSUMING, READY_TIMEOUT, offset, proc):
            raise RuntimeError(f"persister {name} did not start consuming:\n{log_since(log, offset)[-3000:]}\n"
                               f"--- broker-auth ---\n{self.auth_log_tail()}")
        return proc

    def stop_persister(self, name: str = "p0") -> None:
        proc, _log = self.persisters.pop(name)
        stop_process(proc, 25)

    def restart_auth(self) -> None:
        """Stop the broker-auth service (SIGTERM) and start it again; back once /health answers."""
        stop_process(self.auth)
        self.auth = _start_auth(self.settings_path, self.auth_log)
        _wait_health(self)

    def auth_log_tail(self, chars: int = 3000) -> str:
        return log_since(self.auth_log)[-chars:]

    def auth_stats(self) -> dict[str, Any]:
        import json

        url = f"http://{self.settings.BROKER_AUTH_HOST}:{self.settings.BROKER_AUTH_PORT}/health"
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - the test's own service
            return dict(json.loads(r.read()))


def _start_auth(settings_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--broker-auth"], cwd=ROOT,
                                env=clean_env(settings_path), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_health(hub: RabbitHub, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.auth.poll() is not None:
            break
        try:
            hub.auth_stats()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the broker-auth service did not answer /health:\n{hub.auth_log_tail()}")


@contextmanager
def rabbit_hub(root: Path, seed: Callable[[Database], Any] | None = None, *, persisters: int = 1,
               http: bool = False, notifier: bool = False, **overrides: Any) -> Iterator[RabbitHub]:
    """The people of `seed_people` are there; `seed(db)` adds to them; `http`: the HTTP
    server too (in a thread); `notifier`: `run.py --notifier` too."""
    from tests.fixtures.http import seed_people, start_http_server

    values: dict[str, Any] = {
        "DATA_DIR": str(root / "data"),
        "SECRET_KEY": secrets.token_hex(24),
        "DATABASE_URL": f"sqlite:///{root / 'hub.db'}",
        "BROKER": "rabbitmq",
        "RABBITMQ_BASE_PORT": free_block(30),
        "MQTT_PORT": free_port(),
        "MQTT_WS_PORT": free_port(),
        "HTTP_PORT": free_port(),
        "BROKER_AUTH_PORT": free_port(),
        "PASSWORD_HASH_ROUNDS": 4,
        "PERSISTER_BATCH_MS": 5,
    }
    values.update(overrides)
    settings_path = write_settings_file(root / "config.py", values)
    settings = load(settings_path, env={})
    migrate(settings.database_url)
    people = seed_people(settings)
    if seed is not None:
        db = Database(settings.database_url)
        try:
            seed(db)
        finally:
            db.dispose()
    with ExitStack() as stack:
        auth_log = root / "broker-auth.log"
        auth = _start_auth(settings_path, auth_log)
        cluster = LocalCluster(settings)
        hub = RabbitHub(settings, settings_path, root, cluster, auth, auth_log, people)
        stack.callback(lambda: stop_process(hub.auth))  # the one running at the end
        _wait_health(hub)
        stack.callback(cluster.stop)
        cluster.start()
        topology.declare(settings)
        stack.callback(lambda: [stop_process(p, 25) for p, _ in list(hub.persisters.values())])
        for i in range(persisters):
            hub.start_persister(f"p{i}")
        if notifier:
            log = root / "notifier.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--notifier"], cwd=ROOT,
                                        env=clean_env(settings_path), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT)
            stack.callback(stop_process, proc)
            if not wait_log(log, NOTIFIER_CONSUMING, READY_TIMEOUT, 0, proc):
                raise RuntimeError(f"the notifier did not start consuming:\n{log_since(log)[-3000:]}")
            hub.notifiers = 1
        hub.wait_counted()
        if http:
            hub.http = stack.enter_context(start_http_server(settings, settings_path, migrate_db=False))
        yield hub
