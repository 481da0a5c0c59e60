"""The whole hub for browser tests and the console bench: Mosquitto with the plugin,
the persister (`run.py --persister`, a child process) and the HTTP server (in a thread),
on free loopback ports, with the people of `tests.fixtures.http.seed_people`.

`hub_stack(root)` is a context manager yielding a `HubStack` once the persister has
subscribed; everything is stopped at the end. `HubStack.restart_broker()` restarts Mosquitto
and waits until the persister has subscribed again (Mosquitto 2.0 does not restore its
shared subscription). The console must be built (`make console`); `ensure_console_built()` runs it.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.settings import Settings, load
from hub.storage.db import migrate
from tests.support.broker import RunningBroker, start_broker
from tests.support.ports import free_port
from tests.support.processes import PERSISTER_READY, log_size, stop_process, wait_log
from tests.support.settings import clean_env, write_settings_file

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC_INDEX = ROOT / "hub" / "http" / "static" / "index.html"
PERSISTER_READY_TIMEOUT = 20.0


class ConsoleNotBuilt(RuntimeError):
    pass


def ensure_console_built() -> None:
    """`make console` (quick when nothing changed: it is stamped); raise with what to do."""
    if shutil.which("npm") is None or shutil.which("make") is None:
        if STATIC_INDEX.is_file():
            return
        raise ConsoleNotBuilt("the console is not built and npm or make is missing: install Node.js "
                              "and npm (Debian: nodejs npm), then run `make console`")
    r = subprocess.run(["make", "-s", "console"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not STATIC_INDEX.is_file():
        raise ConsoleNotBuilt(f"`make console` failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")


@dataclass
class HubStack:
    settings: Settings
    settings_path: Path
    broker: RunningBroker
    http: Any  # tests.fixtures.http.RunningHttp
    people: Any  # tests.fixtures.http.People
    persister: subprocess.Popen[bytes]
    persister_log: Path

    @property
    def url(self) -> str:
        return str(self.http.url)

    def persister_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.persister_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def restart_broker(self) -> None:
        offset = log_size(self.persister_log)
        self.broker.restart()
        _wait_persister(self, offset)


def _start_persister(settings_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--persister"], cwd=ROOT,
                                env=clean_env(settings_path), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)


@contextmanager
def hub_stack(root: Path, **overrides: Any) -> Iterator[HubStack]:
    """Start the hub with its data under `root` (an empty folder)."""
    from tests.fixtures.http import seed_people, start_http_server

    values: dict[str, Any] = {
        "DATA_DIR": str(root / "data"),
        "SECRET_KEY": secrets.token_hex(24),
        "DATABASE_URL": f"sqlite:///{root / 'hub.db'}",
        "MQTT_PORT": free_port(),
        "MQTT_WS_PORT": free_port(),
        "HTTP_PORT": free_port(),
        "PASSWORD_HASH_ROUNDS": 4,
        "PERSISTER_BATCH_MS": 5,
    }
    values.update(overrides)
    settings_path = write_settings_file(root / "config.py", values)
    settings = load(settings_path, env={})
    migrate(settings.database_url)
    people = seed_people(settings)
    with ExitStack() as stack:
        broker = start_broker(settings_path)
        stack.callback(broker.stop)
        log_path = root / "persister.log"
        persister = _start_persister(settings_path, log_path)
        stack.callback(stop_process, persister)
        http = stack.enter_context(start_http_server(settings, settings_path, migrate_db=False))
        hub = HubStack(settings, settings_path, broker, http, people, persister, log_path)
        _wait_persister(hub)
        yield hub


def _wait_persister(hub: HubStack, offset: int = 0) -> None:
    """Until the persister has subscribed (it logs the broker's SUBACK) after `offset` in its log:
    a value published before then would reach a watching browser and never be stored."""
    if wait_log(hub.persister_log, PERSISTER_READY, PERSISTER_READY_TIMEOUT, offset, hub.persister):
        return
    state = f"exited with status {hub.persister.returncode}" if hub.persister.poll() is not None else \
        f"did not subscribe within {PERSISTER_READY_TIMEOUT:.0f} s"
    raise RuntimeError(f"the persister {state}:\n{hub.persister_log_tail()}\n--- broker ---\n"
                       f"{hub.broker.log_tail()}")

