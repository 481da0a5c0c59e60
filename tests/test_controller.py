"""The controller client and `python -m hub.controller`, against the real broker (and the
persister where something must be stored)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from hub import credentials
from hub.controller import Controller
from hub.errors import Unauthenticated, Unavailable
from hub.storage.db import Database
from tests.fixtures.persister import controller_key
from tests.support import free_port
from tests.support.broker import mqtt_client
from tests.test_persister_e2e import history, wait_count, wait_for


def cli(broker, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.controller", "--port", str(broker.port), *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_cli_value_and_sine_demo_are_stored(broker, persister):
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    r = cli(broker, "--key", key, "--folder", folder, "--sequence", "temp", "--value", "21.5",
            "--timestamp", "2024-05-01T12:00:00Z")
    assert r.returncode == 0, r.stderr
    r = cli(broker, "--key", key, "--folder", folder, "--sequence", "note", "--value", "hello")
    assert r.returncode == 0, r.stderr
    r = cli(broker, "--key", key, "--folder", folder, "--demo", "sine", "--count", "5", "--interval", "0.02",
            "--period", "0.1")
    assert r.returncode == 0 and "published 5 values" in r.stdout, r.stderr
    assert wait_count(db, 7) == 7
    assert history(db, f"{folder}/temp") == [(1_714_564_800_000_000, 21.5)]
    assert [v for _, v in history(db, f"{folder}/note")] == ["hello"]
    sine = [v for _, v in history(db, f"{folder}/sine")]
    assert len(sine) == 5 and all(10 <= v <= 30 for v in sine) and len(set(sine)) > 1
    db.dispose()


def test_cli_says_what_is_wrong(broker):
    folder, key = controller_key(broker)
    r = cli(broker, "--key", key[:-4] + "AAAA", "--folder", folder, "--sequence", "t", "--value", "1")
    assert r.returncode == 2 and "the broker refused the key for acme/pi" in r.stderr
    r = cli(broker, "--folder", folder, "--sequence", "t", "--value", "1")
    assert r.returncode == 2 and "--key" in r.stderr
    r = cli(broker, "--key", key, "--folder", folder)
    assert r.returncode == 2 and "--sequence and --value" in r.stderr
    r = subprocess.run([sys.executable, "-m", "hub.controller", "--key", key, "--folder", folder,
                        "--port", "1", "--sequence", "t", "--value", "1", "--timeout", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "cannot reach the broker at 127.0.0.1:1" in r.stderr


def test_wrong_key_raises_unauthenticated(broker):
    folder, key = controller_key(broker)
    with pytest.raises(Unauthenticated, match="refused the key"):
        Controller(key + "x", folder, port=broker.port).connect(wait=10)
    with pytest.raises(Unavailable):
        Controller(key, folder, port=1).connect(wait=0.3)


def test_commands_reach_the_callback_and_own_updates_do_not(broker):
    folder, key = controller_key(broker)
    got: list[tuple[str, dict, str]] = []
    arrived = threading.Event()

    def on_command(kind: str, params: dict, topic: str) -> None:
        got.append((kind, params, topic))
        arrived.set()

    service = mqtt_client(broker, credentials.service_password(broker.settings.SECRET_KEY, "hub-service"),
                          username=credentials.SERVICE_USERNAME)
    with Controller(key, folder, port=broker.port, on_command=on_command) as c:
        assert c.listening.wait(5)  # the broker acknowledged the subscription to commands
        c.update("temp", 1.0)
        assert wait_for(lambda: c.pending == 0, timeout=5)  # its PUBACK: the broker has routed it
        service.publish(folder, b"not json")
        service.publish(folder, b'{"type": "set_relay", "parameters": {"on": true}}')
        assert arrived.wait(5)  # delivered in order: the update and the bad message came before it
    service.close()
    assert got == [("set_relay", {"on": True}, folder)]


def test_unrouted_updates_are_sent_again_until_a_persister_takes_them(broker_factory, persister_factory):
    """The client's second line, on a relay-only broker (no storage gate): no persister
    subscribed, the broker answers "no matching subscribers", the client keeps the updates
    and sends them again until one is there."""
    broker = broker_factory(MQTT_REQUIRE_PERSISTER=False)
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    with Controller(key, folder, port=broker.port) as c:
        for i in range(10):
            c.update("v", float(i))
        assert not c.flush(1.5)
        persister_factory(broker)
        assert c.flush(15)
    assert wait_count(db, 10) == 10
    assert [v for _, v in history(db, f"{folder}/v")] == [float(i) for i in range(10)]
    db.dispose()


def test_offline_updates_are_buffered_and_sent_on_reconnect(broker, persister):
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    with Controller(key, folder, port=broker.port) as c:
        c.update("v", -1.0)
        assert c.flush(5)
        broker.stop()
        assert wait_for(lambda: not c.connected.is_set(), timeout=5)
        for i in range(200):
            c.update("v", float(i))
        assert c.pending == 200
        broker.start()
        assert c.flush(30)
    assert wait_count(db, 201, timeout=30) == 201
    db.dispose()


def test_a_node_that_cannot_be_reached_is_passed_over_for_the_next(broker, persister):
    """`brokers`: the nodes of a cluster. The first refuses connections (nothing listens on
    its port); the client goes on to the next within a second or so. A wrong key is not
    tried on every node in turn: it is refused once and stays refused."""
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    dead = free_port()
    with Controller(key, folder, port=dead, brokers=[("127.0.0.1", broker.port)]) as c:
        assert c.port == broker.port
        c.update("v", 1.0)
        assert c.flush(5)
    assert wait_count(db, 1) == 1
    with pytest.raises(Unauthenticated, match="refused the key"):
        Controller(key + "x", folder, port=broker.port, brokers=[("127.0.0.1", dead)]).connect(wait=10)
    r = cli(broker, "--key", key, "--folder", folder, "--host", f"127.0.0.1:{dead},127.0.0.1",
            "--sequence", "v", "--value", "2")  # the second node takes --port
    assert r.returncode == 0, r.stderr
    assert wait_count(db, 2) == 2
    r = cli(broker, "--key", key, "--folder", folder, "--host", "127.0.0.1:x", "--sequence", "v", "--value", "3")
    assert r.returncode == 2 and "'127.0.0.1:x' is not HOST or HOST:PORT" in r.stderr
    db.dispose()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_listening_stops_cleanly_on_a_signal(broker, signum):
    """Ctrl-C or SIGTERM ends `--listen` with status 0 (taken on a thread of its own:
    hub/stopsignals.py)."""
    folder, key = controller_key(broker)
    proc = subprocess.Popen([sys.executable, "-m", "hub.controller", "--port", str(broker.port), "--key", key,
                             "--folder", folder, "--listen"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening for commands"), line + (proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signum)
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
