"""Controller status reporting: what the hub's controller page and watchdog show.

    reporter = StatusReporter(controller, interval=60).start()
    ...
    reporter.stop()

- On every (re)connect: a `connected` message `{"client_version": ...}` (the hub keeps
  the last connect time and the version).
- Every `interval` seconds while connected: the standard status sequences under
  `status/` (free_disk_space in MB, processor_usage in %, messages_sent, and
  messages_received when the client counts them) in one batch update, plus a `status`
  message with the same figures and the host name (kept as the controller's status).

Stdlib only; runs in its own daemon thread and never raises into the caller.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from typing import Any

from hub.errors import HubError

log = logging.getLogger("hub.controller")
CLIENT_VERSION = "hub-controller/1"


def free_disk_mb(path: str = "/") -> float:
    return round(shutil.disk_usage(path).free / 1_000_000, 1)


class CpuMeter:
    """Processor usage in % since the previous reading (/proc/stat; load average elsewhere)."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def percent(self) -> float:
        now = self._read()
        if now is None or self._last is None:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            return round(min(100.0, 100.0 * load / (os.cpu_count() or 1)), 1)
        total, idle = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return round(100.0 * (total - idle) / total, 1) if total > 0 else 0.0


class StatusReporter:
    def __init__(self, controller: Any, interval: float = 60.0, version: str = CLIENT_VERSION) -> None:
        self.controller, self.interval, self.version = controller, interval, version
        self.cpu = CpuMeter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-status", daemon=True)
        self.reports = 0

    def start(self) -> StatusReporter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        was_connected, next_report = False, 0.0
        while not self._stop.is_set():
            connected = self.controller.connected.is_set()
            try:
                if connected and not was_connected:
                    self.controller.send("connected", {"client_version": self.version})
                    next_report = 0.0
                if connected and time.monotonic() >= next_report:
                    self.report()
                    next_report = time.monotonic() + self.interval
            except (HubError, OSError) as e:
                log.warning("status report failed: %s", getattr(e, "message", e))
            was_connected = connected
            self._stop.wait(min(0.5, self.interval))

    def figures(self) -> dict[str, float]:
        out = {"free_disk_space": free_disk_mb(), "processor_usage": self.cpu.percent(),
               "messages_sent": float(self.controller.published)}
        received = getattr(self.controller, "received", None)
        if isinstance(received, int):
            out["messages_received"] = float(received)
        return out

    def report(self) -> None:
        figures = self.figures()
        self.controller.update_many([(f"status/{name}", value, None) for name, value in figures.items()])
        self.controller.send("status", {**figures, "host": socket.gethostname(), "client_version": self.version})
        self.reports += 1
