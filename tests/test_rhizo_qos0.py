"""The real rhizo-client publishing at QoS 0 (as it does) while the persister is restarted,
with SIGTERM and with kill -9: every value is stored, once. The last persister keeps its
session (the storage gate refuses its unsubscribe) and Mosquitto delivers to it at QoS 1
(mosquitto/hub.conf.template: upgrade_outgoing_qos), so what arrives while it is away
waits for it, and what it held unstored at a kill is delivered again."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.storage import resources, revisions
from hub.storage.db import Database
from tests.support.console_stack import HubStack, _start_persister, _wait_persister, hub_stack
from tests.support.processes import log_size, stop_process
from tests.support.rhizo_drive import RHIZO_PYTHON, Drive, _config
from tests.test_rhizo_client import hub_logs

COUNT = 150
INTERVAL = 0.05

pytestmark = pytest.mark.skipif(not RHIZO_PYTHON.exists(),
                                reason="rhizo-client's environment is missing: run `make rhizo-client`")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[HubStack]:
    with hub_stack(tmp_path / "hub") as hub:
        try:
            yield hub
        finally:  # the stack stops the persister it started; this one's successors are ours
            stop_process(hub.persister)


def stored(hub: HubStack, path: str) -> list[float]:
    db = Database(hub.settings.database_url)
    try:
        with db.session() as s:
            r = resources.find(s, path)
            return [] if r is None else [v.num for v in revisions.history(s, r.id, newest_first=False, count=10_000)]
    finally:
        db.dispose()


def restart_persister(hub: HubStack, how: signal.Signals) -> None:
    """Stop the persister (SIGTERM: it must exit 0; SIGKILL), then start it again and wait
    until it has subscribed."""
    hub.persister.send_signal(how)
    rc = hub.persister.wait(30)
    assert rc == (0 if how == signal.SIGTERM else -signal.SIGKILL), hub.persister_log_tail()
    offset = log_size(hub.persister_log)
    hub.persister = _start_persister(hub.settings_path, hub.persister_log)
    _wait_persister(hub, offset)


def sent_until(drive: Drive, n: int) -> None:
    while drive.next("sent")["n"] < n:
        pass


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_qos0_values_survive_persister_restarts(stack: HubStack, tmp_path: Path, how: signal.Signals) -> None:
    people = stack.people
    drive = Drive(tmp_path / "client", {"scenario": "stream", "count": COUNT, "interval": INTERVAL,
                                        "config": _config(stack, people.keys["controller"], mqtt=True)},
                  lambda: hub_logs(stack))
    try:
        drive.next("streaming")
        for at in (20, 80):  # twice: a restarted persister is restarted again
            sent_until(drive, at)
            restart_persister(stack, how)
        drive.next("done")
    finally:
        drive.stop()
    path = f"{people.controller}/n"
    expected = [-1.0] + [float(i) for i in range(COUNT)]

    def complete() -> bool:
        return len(stored(stack, path)) >= len(expected)

    assert _wait(complete), hub_logs(stack)
    got = stored(stack, path)
    assert got == expected, (sorted(set(expected) - set(got)), hub_logs(stack))
    assert "storage gate closed" not in stack.broker.log_text()


def _wait(fn, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
