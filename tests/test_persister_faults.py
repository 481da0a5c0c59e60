"""Fault tests: the persister, the broker or the database fails in the middle of a
stream, and every update is still stored exactly once (counted and compared)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.controller import Controller
from hub.persister.stats import read_stats
from hub.storage.db import Database
from tests.fixtures.persister import controller_key
from tests.test_persister_e2e import count, diagnose, history, wait_count, wait_for


def expect_all(db: Database, path: str, n: int) -> None:
    got = [v for _, v in history(db, path)]
    assert len(got) == n and sorted(got) == [float(i) for i in range(n)]


def test_kill_9_mid_stream_then_restart_stores_every_update_once(broker, persister):
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    n = 20_000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
            if i == n // 4:
                assert wait_for(lambda: count(db) > 0, timeout=20), diagnose(broker, db, persister)
                persister.kill()
            elif i == n // 2:
                stored_while_down = count(db)
                persister.start()
        assert c.flush(60)
    assert 0 < stored_while_down < n
    assert wait_count(db, n, timeout=90) == n, diagnose(broker, db, persister)
    expect_all(db, f"{folder}/v", n)
    db.dispose()


def test_broker_restart_mid_stream_loses_nothing(broker, persister):
    db = Database(broker.settings.database_url)
    folder, key = controller_key(broker)
    n = 6000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n):
            c.update("v", float(i))
            if i == n // 2:
                assert wait_for(lambda: count(db) > 0, timeout=20)
                broker.stop()  # SIGTERM: Mosquitto saves its persistence file (sessions, queues)
            elif i == 2 * n // 3:  # these were buffered by the client while the broker was down
                broker.start()
        assert c.flush(60), f"{c.pending} updates not acknowledged"
    assert wait_count(db, n, timeout=60) == n, diagnose(broker, db, persister)
    expect_all(db, f"{folder}/v", n)
    assert "lost the broker connection" in persister.log_text()
    db.dispose()


@pytest.mark.pg
def test_postgresql_down_10s_persister_waits_and_catches_up(broker_factory, persister_factory, pg_cluster,
                                                            pg_database_url):
    broker = broker_factory(DATABASE_URL=pg_database_url)
    p = persister_factory(broker)
    db = Database(pg_database_url)
    folder, key = controller_key(broker)
    n = 6000
    with Controller(key, folder, port=broker.port) as c:
        for i in range(n // 2):
            c.update("v", float(i))
        assert wait_for(lambda: count(db) > 0, timeout=20)
        db.dispose()
        pg_cluster.stop()
        down_at = time.monotonic()
        try:
            for i in range(n // 2, n):
                c.update("v", float(i))
            assert c.flush(30)  # the broker takes updates while the database is down
            assert p.wait_log("unreachable or failing", timeout=10), p.log_tail()
            stats = wait_for(lambda: (s := read_stats(broker.settings)) and s["database_ok"] is False and s,
                             timeout=5)
            assert stats and stats["persisters"][0]["database_error"], stats
            time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        finally:
            pg_cluster.start()
    assert wait_count(db, n, timeout=60) == n, diagnose(broker, db, p)
    expect_all(db, f"{folder}/v", n)
    assert p.wait_log("database is back after", timeout=5)
    assert p.is_running()
    db.dispose()


def test_a_stop_that_hangs_still_ends_the_process() -> None:
    """The guard a stop signal starts: whatever hangs, the process ends (status 1) and
    says where each thread was."""
    code = ("import threading, time\n"
            "from hub.persister import daemon\n"
            "daemon.STOP_GUARD_SECONDS = 0.3\n"
            "threading.Thread(target=daemon._exit_if_still_running, daemon=True).start()\n"
            "threading.Event().wait()  # a shutdown that never completes\n")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       cwd=str(Path(__file__).resolve().parent.parent))
    assert r.returncode == 1 and time.monotonic() - t < 20
    assert "still not stopped" in r.stderr and "Thread" in r.stderr and "wait" in r.stderr, r.stderr


def test_a_stop_signal_during_a_batch_wait_does_not_hang_it() -> None:
    """CPython 3.11's SimpleQueue.get(timeout=...) waits forever once a signal handler in
    that thread outlasts the timeout; the persister takes its stop signals in a thread of
    their own (hub/stopsignals.py), so the main thread's short batch waits keep ending. Here a stop that takes
    50 ms lands during 5 ms waits: with a handler in the main thread this loop never ends."""
    code = ("import os, queue, signal, threading, time\n"
            "from hub.persister.batcher import next_batch\n"
            "from hub.stopsignals import take_stop_signals\n"
            "stopped = threading.Event()\n"
            "def request_stop(signum):\n"
            "    time.sleep(0.05); stopped.set()\n"
            "take_stop_signals(request_stop, 'signals')\n"
            "threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
            "q = queue.SimpleQueue()\n"
            "t = time.monotonic()\n"
            "while time.monotonic() - t < 1.5:\n"
            "    next_batch(q, 10, 0.005, idle_wait=0.005)\n"
            "print('stop seen' if stopped.is_set() else 'no stop')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       cwd=str(Path(__file__).resolve().parent.parent))
    assert r.returncode == 0 and r.stdout.strip() == "stop seen", r.stdout + r.stderr
