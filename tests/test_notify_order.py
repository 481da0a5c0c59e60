"""The notifier applies one controller's `connected` and `status` messages in the order the
controller sent them: many of them, published quickly through the real Mosquitto to a real
notifier, never leave an older report over a newer one, not even for a moment."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hub.storage.models import ControllerStatus, Resource
from tests.support.notify import World, notify_world, wait_for

CONTROLLERS = 4
MESSAGES = 150  # per controller


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with notify_world(tmp_path_factory.mktemp("notify-order"), controllers=CONTROLLERS) as w:
        yield w


def _rows(world: World) -> dict[str, tuple[int | None, int | None, bool]]:
    """Per controller path: the n of its stored status, of its client version, and whether
    the last connect is no older than the status (as the messages' order says)."""
    out = {}
    with world.db.session() as s:
        for path, st in s.execute(select(Resource.path, ControllerStatus)
                                  .join(ControllerStatus, ControllerStatus.controller_id == Resource.id)):
            status = json.loads(st.status)["n"] if st.status else None
            version = int(st.client_version) if st.client_version else None
            out[path] = (status, version, st.last_connect_at is not None)
    return out


def test_connect_and_status_are_applied_in_the_order_sent(world: World) -> None:
    names = sorted(world.keys)
    clients = {name: world.controller(name) for name in names}
    seen_backwards: list[str] = []
    done = threading.Event()

    def watch() -> None:  # what anyone reading the status meanwhile sees only moves forward
        last: dict[str, tuple[int, int]] = {}
        while not done.is_set():
            for path, (status, version, connected) in _rows(world).items():
                if status is None or version is None:
                    continue
                if not connected:
                    seen_backwards.append(f"{path}: status {status} stored before the first connect")
                before = last.get(path, (-1, -1))
                if status < before[0] or version < before[1]:
                    seen_backwards.append(f"{path}: status {before} then {(status, version)}")
                last[path] = (status, version)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # Every 10th message a `connected` (as after a reconnect), the rest status reports; the
        # client version counts up with every message, so it shows which message came last.
        infos = []
        for n in range(MESSAGES):
            for name in names:
                kind = "connected" if n % 10 == 0 else "status"
                params = {"client_version": str(n)} if kind == "connected" else {"n": n, "client_version": str(n)}
                infos.append(clients[name].paho.publish(f"acme/{name}", json.dumps(
                    {"type": kind, "parameters": params}), qos=1))
        for info in infos:
            info.wait_for_publish(10)
        last_status = max(n for n in range(MESSAGES) if n % 10)
        assert wait_for(lambda: all(v[0] == last_status and v[1] == MESSAGES - 1
                                    for v in _rows(world).values()) and len(_rows(world)) == CONTROLLERS,
                        timeout=30), _rows(world)
        assert world.notifier.wait_idle(10)
    finally:
        done.set()
        watcher.join(10)
        for c in clients.values():
            c.close()
    assert not seen_backwards, seen_backwards[:5]
    assert _rows(world) == {f"acme/{name}": (last_status, MESSAGES - 1, True) for name in names}



def test_acknowledgements_go_out_in_the_order_the_messages_came() -> None:
    from hub.notify.acks import InOrderAcks

    sent: list[int] = []
    acks = InOrderAcks(sent.append)
    first, second, third = acks.take(1, 1), acks.take(2, 1), acks.take(3, 1)
    assert acks.take(4, 0) is None  # QoS 0: nothing to acknowledge
    acks.done(third)
    acks.done(second)
    assert sent == []  # the first is still being handled
    acks.done(first)
    assert sent == [1, 2, 3]
    stale = acks.take(5, 1)
    acks.reset()  # a new connection: the old one's mids are never acknowledged on it
    fresh = acks.take(1, 1)
    acks.done(stale)
    acks.done(fresh)
    assert sent == [1, 2, 3, 1]
