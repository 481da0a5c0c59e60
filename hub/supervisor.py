"""Plain `run.py`: Mosquitto, the persister, the notifier and the HTTP server as child
processes, for development and single-box installs.

A part that exits unexpectedly is started again, as systemd's units do in production
(Restart=on-failure, RestartSec=2s, at most 5 starts in 120 s): after RESTART_DELAY,
doubling for each restart within RESTART_WINDOW; the RESTART_LIMIT-th crash within that
window stops everything (rc 1) with a message saying which part and why. Each exit and
restart is logged, and written to DATA_DIR/supervisor.json for the HTTP server's /health
(hub/supervisor_status.py). Ctrl-C or SIGTERM stops them all: the children run in their
own process groups, so the supervisor stops them itself, the HTTP server, notifier and
persister first (the persister stores what it holds while the broker still runs), then
the broker; a second Ctrl-C kills what is left.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from hub.settings import Settings
from hub.supervisor_status import WRITE_INTERVAL, exit_text, status_path, write_status

log = logging.getLogger("hub.supervisor")
RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
ORDER = ("broker", "persister", "notifier", "http")
RABBITMQ_ORDER = ("broker-auth", "broker", "persister", "notifier", "http")
BROKERS = ("broker", "broker-auth")  # stopped last, after their clients
RESTART_DELAY = 2.0  # seconds before the first restart (the units' RestartSec)
MAX_DELAY = 30.0
RESTART_LIMIT = 5  # restarts of one part within RESTART_WINDOW (the units' StartLimitBurst)
RESTART_WINDOW = 120.0  # seconds (the units' StartLimitIntervalSec)
STOP_TIMEOUT = 25.0  # the persister ends within 20 s of SIGTERM (its stop guard)


def run_one(s: Settings, name: str) -> int:
    """Run one component in this process (what the systemd units call)."""
    if name == "broker" and s.BROKER == "rabbitmq":
        from hub.rabbitmq import runner as rabbitmq_runner

        return rabbitmq_runner.run(s)
    if name == "broker":
        from hub.broker_auth import runner

        return runner.exec_broker(s)
    if name == "broker-auth":
        from hub.rabbitmq import authservice

        return authservice.run(s)
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


class Part:
    """One child process and its restart history."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.recent: deque[float] = deque()  # monotonic times of restarts within RESTART_WINDOW
        self.restarts = 0
        self.last_exit: int | None = None
        self.restart_at: float | None = None  # monotonic time of the pending restart

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(RUN_PY), f"--{self.name}"], env=os.environ.copy(),
                                     process_group=0)
        self.restart_at = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self, rc: int, now: float) -> bool:
        """Note an unexpected exit and schedule the restart; False past the limit."""
        self.last_exit, self.proc = rc, None
        while self.recent and now - self.recent[0] > RESTART_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= RESTART_LIMIT:
            return False
        delay = min(MAX_DELAY, RESTART_DELAY * 2 ** len(self.recent))
        self.recent.append(now + delay)
        self.restarts += 1
        self.restart_at = now + delay
        log.error("%s exited unexpectedly (%s); restarting it in %.0f s (restart %d of at most %d within "
                  "%.0f s)", self.name, exit_text(rc), delay, len(self.recent), RESTART_LIMIT, RESTART_WINDOW)
        return True

    def status(self) -> dict[str, Any]:
        return {"running": self.running(), "pid": self.proc.pid if self.proc is not None else None,
                "restarts": self.restarts, "last_exit": self.last_exit}


def order(s: Settings) -> tuple[str, ...]:
    """The parts, in the order they start (the broker-auth service before the nodes ask it)."""
    return RABBITMQ_ORDER if s.BROKER == "rabbitmq" else ORDER


def run_all(s: Settings) -> int:
    from hub.storage.db import migrate

    migrate(s.database_url)
    parts = {name: Part(name) for name in order(s)}
    signals: list[int] = []
    status_file = status_path(s)
    written = 0.0

    def stop(signum: int, _frame: object) -> None:
        signals.append(signum)
        if len(signals) > 1:  # asked twice: do not wait for anyone
            for part in parts.values():
                if part.running():
                    assert part.proc is not None
                    part.proc.kill()

    def report() -> None:
        nonlocal written
        written = time.monotonic()
        try:
            write_status(status_file, {name: part.status() for name, part in parts.items()})
        except OSError as e:
            log.warning("cannot write %s (%s): /health will not report the processes", status_file, e)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for name in parts:
            parts[name].start()
            if name == "broker":  # a local RabbitMQ cluster takes 20-60 s
                _wait_port(s.MQTT_HOST, s.MQTT_PORT, parts[name].proc, signals,  # type: ignore[arg-type]
                           timeout=15 if s.BROKER == "mosquitto" else 180)
        report()
        print(f"hub running: http://{s.HTTP_HOST}:{s.HTTP_PORT}/  mqtt://{s.MQTT_HOST}:{s.MQTT_PORT}  "
              f"{s.mqtt_ws_url}  (Ctrl-C stops all)", flush=True)
        while not signals:
            now, changed = time.monotonic(), False
            for part in parts.values():
                if part.restart_at is not None:
                    if now >= part.restart_at:
                        part.start()
                        log.warning("%s started again (pid %d)", part.name, part.proc.pid)  # type: ignore[union-attr]
                        changed = True
                    continue
                rc = part.proc.poll() if part.proc is not None else None
                if rc is None or signals:
                    continue
                changed = True
                if not part.exited(rc, now):
                    report()
                    log.error("%s exited %d times within %.0f s (last: %s): not starting it again; stopping "
                              "the others. See its log above; under systemd it would stop the same way",
                              part.name, RESTART_LIMIT + 1, RESTART_WINDOW, exit_text(rc))
                    return 1
            if changed or now - written >= WRITE_INTERVAL:
                report()
            time.sleep(0.1)
        return 0
    finally:
        _stop_all(parts)
        try:
            status_file.unlink()
        except OSError:
            pass


def _stop_all(parts: dict[str, Part]) -> None:
    """SIGTERM the broker's clients and wait for them, then the broker; kill what hangs."""
    for names in ([n for n in reversed(parts) if n not in BROKERS], [n for n in BROKERS if n in parts]):
        procs = [p.proc for n in names if (p := parts[n]).proc is not None and p.running()]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], signals: list[int],
               timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not signals:
        if proc.poll() is not None:
            raise SystemExit(f"the broker exited with status {proc.returncode}: see its log above")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    if signals:
        return  # stopping before it was up: the caller stops it
    raise SystemExit(f"the broker did not open {host}:{port} within {timeout:.0f} s")
