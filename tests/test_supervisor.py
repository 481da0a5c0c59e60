"""`run.py` with every part (hub/supervisor.py), for real on free ports: a part killed
with -9 is started again and /health says so; values sent meanwhile are stored;
SIGTERM stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.controller import Controller
from hub.storage import keys, resources, revisions, users
from hub.storage.db import Database, migrate
from hub.supervisor_status import status_path
from tests.support.ports import free_port
from tests.support.settings import clean_env

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


def wait_until(fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := fn()):
        if time.monotonic() > deadline:
            return got
        time.sleep(0.1)
    return got


class Hub:
    def __init__(self, settings_factory: Any, tmp_path: Path) -> None:
        self.settings, self.path = settings_factory(
            MQTT_PORT=free_port(), MQTT_WS_PORT=free_port(), HTTP_PORT=free_port(), PASSWORD_HASH_ROUNDS=4,
            DATABASE_URL=f"sqlite:///{tmp_path / 'hub.db'}", PERSISTER_BATCH_MS=5)
        migrate(self.settings.database_url)
        self.db = Database(self.settings.database_url)
        with self.db.session() as s:
            users.create_organization(s, "acme")
            resources.create(s, "acme/pi", "controller")
            _row, self.key = keys.create(s, controller_path="acme/pi")
        self.log = tmp_path / "run.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=ROOT, env=clean_env(self.path),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> dict[str, Any] | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.settings.HTTP_PORT}/health", timeout=10).json()
        except requests.RequestException:
            return None

    def healthy(self, restarted: str | None = None) -> bool:
        """Every part up, the persister subscribed, and (if given) `restarted` in the detail."""
        body = self.health()
        if body is None or body["status"] != "ok" or "processes" not in body["checks"]:
            return False
        return restarted is None or restarted in body["checks"]["processes"]["detail"]

    def pids(self) -> dict[str, int]:
        parts = json.loads(status_path(self.settings).read_text())["parts"]
        return {name: part["pid"] for name, part in parts.items() if part["pid"]}

    def stored(self) -> list[float]:
        with self.db.session() as s:
            r = resources.find(s, "acme/pi/v")
            return [] if r is None else [rev.num for rev in revisions.history(s, r.id, newest_first=False)]


@pytest.fixture
def hub(settings_factory: Any, tmp_path: Path) -> Iterator[Hub]:
    h = Hub(settings_factory, tmp_path)
    try:
        yield h
    finally:
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait()
            for pid in h.pids().values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        h.db.dispose()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_killed_parts_come_back_and_sigterm_stops_all(hub: Hub) -> None:
    assert wait_until(hub.healthy), (hub.health(), hub.log_text()[-3000:])
    ctl = Controller(hub.key, "acme/pi", port=hub.settings.MQTT_PORT).connect(wait=30)
    try:
        ctl.update("v", 1.0)
        assert ctl.flush(30) and wait_until(lambda: hub.stored() == [1.0])
        first = hub.pids()
        os.kill(first["persister"], signal.SIGKILL)
        ctl.update("v", 2.0)  # while it is away: its session keeps the value
        assert ctl.flush(30)
        assert wait_until(lambda: hub.healthy("persister restarted 1x (last exit: killed by signal 9)")), \
            (hub.health(), hub.log_text()[-3000:])
        assert "persister exited unexpectedly (killed by signal 9); restarting it in 2 s" in hub.log_text()
        ctl.update("v", 3.0)
        assert ctl.flush(30) and wait_until(lambda: hub.stored() == [1.0, 2.0, 3.0]), hub.log_text()[-3000:]

        os.kill(hub.pids()["http"], signal.SIGKILL)
        assert wait_until(lambda: hub.healthy("http restarted 1x")), (hub.health(), hub.log_text()[-3000:])
        body = hub.health()
        assert body is not None and body["supervisor"]["parts"]["persister"]["restarts"] == 1
        ctl.update("v", 4.0)
        assert ctl.flush(30) and wait_until(lambda: hub.stored() == [1.0, 2.0, 3.0, 4.0])
    finally:
        ctl.close()
    children = hub.pids()
    assert children["broker"] == first["broker"] and children["persister"] != first["persister"]
    t = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    assert hub.proc.wait(30) == 0
    assert time.monotonic() - t < 15
    assert not [name for name, pid in children.items() if alive(pid)]
    assert not status_path(hub.settings).exists()
