"""The real rhizo-client (0.1.5, in .venv-rhizo/ from `make rhizo-client`) driven from a test:
tests/rhizo_client/drive.py run by the client's own Python in a scratch folder, one JSON line
per step. `_config(hub, key, mqtt=...)` is the client's configuration for a running hub (any
object with `url` and `settings`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent.parent
RHIZO_PYTHON = ROOT / ".venv-rhizo" / "bin" / "python"
DRIVE = ROOT / "tests" / "rhizo_client" / "drive.py"
STEP_TIMEOUT = 90.0


class Drive:
    """drive.py running in its own process; `next(event)` waits for that step's line;
    a failure ends with `diagnose()` (the hub's side)."""

    def __init__(self, workdir: Path, spec: dict[str, Any], diagnose: Callable[[], str] = str) -> None:
        self.diagnose = diagnose
        workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "RHIZO_", "PYTHON"))}
        env["RHIZO_DRIVE"] = json.dumps(spec)
        self.proc = subprocess.Popen([str(RHIZO_PYTHON), str(DRIVE)], cwd=workdir, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: Queue[dict[str, Any]] = Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip())

    def next(self, event: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.lines.get(timeout=0.1)
            except Empty:
                if time.monotonic() < deadline and self.proc.poll() is None:
                    continue
                raise AssertionError(f"no {event!r} from rhizo-client within {timeout:.0f} s (exit status "
                                     f"{self.proc.poll()}); its log:\n" + "\n".join(self.log[-40:])
                                     + self.diagnose()) from None
            assert got["event"] != "timeout", f"rhizo-client timed out waiting for {got['what']}:\n" + \
                "\n".join(self.log[-40:]) + self.diagnose()
            if got["event"] == event:
                return got

    def wait_log(self, pattern: str, timeout: float = STEP_TIMEOUT) -> re.Match[str]:
        """The first line of the client's log matching `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in list(self.log):
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.05)
        raise AssertionError(f"rhizo-client never logged {pattern!r}:\n" + "\n".join(self.log[-40:]))

    def stop(self) -> None:
        stop_process(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _config(hub: Any, key: str | None, *, mqtt: bool) -> dict[str, Any]:
    config: dict[str, Any] = {"server_name": hub.url.removeprefix("http://"), "enable_ws": not mqtt}
    if key is not None:
        config["secret_key"] = key
    if mqtt:
        config.update({"mqtt_host": hub.settings.MQTT_HOST, "mqtt_port": hub.settings.MQTT_WS_PORT,
                       "mqtt_tls": False})
    return config
