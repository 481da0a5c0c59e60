"""Plain `run.py`: Mosquitto, the persister, the notifier and the HTTP server as child
processes, for development and single-box installs. Ctrl-C or SIGTERM stops
them all; if one dies, the others are stopped too and the exit says which.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.settings import Settings

log = logging.getLogger("hub.supervisor")
RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
ORDER = ("broker", "persister", "notifier", "http")


def run_one(s: Settings, name: str) -> int:
    """Run one component in this process (what the systemd units call)."""
    if name == "broker":
        from hub.broker_auth import runner

        return runner.exec_broker(s)
    if name == "persister":
        from hub import persister

        return persister.main(s) or 0
    if name == "notifier":
        from hub import notify

        return notify.main(s) or 0
    if name == "http":
        from hub import http

        return http.main(s) or 0
    raise ValueError(name)


def run_all(s: Settings) -> int:
    from hub.storage.db import migrate

    migrate(s.database_url)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for name in ORDER:
            children[name] = subprocess.Popen([sys.executable, str(RUN_PY), f"--{name}"], env=os.environ.copy())
            if name == "broker":
                _wait_port(s.MQTT_HOST, s.MQTT_PORT, children[name])
        print(f"hub running: http://{s.HTTP_HOST}:{s.HTTP_PORT}/  mqtt://{s.MQTT_HOST}:{s.MQTT_PORT}  "
              f"ws://{s.MQTT_HOST}:{s.MQTT_WS_PORT}  (Ctrl-C stops all)", flush=True)
        while not stopping:
            for name, p in children.items():
                if p.poll() is not None:
                    log.error("%s exited with status %s; stopping the others", name, p.returncode)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        for name in reversed(ORDER):
            child = children.get(name)
            if child is not None and child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for p in children.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the broker exited with status {proc.returncode}: see its log above")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the broker did not open {host}:{port} within {timeout:.0f} s")
