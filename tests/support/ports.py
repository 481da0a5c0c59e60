"""Free loopback ports, from a range of this test process's own.

The kernel's pick for port 0 comes from the ephemeral range, which every outgoing
connection also draws from, and which another test process (pytest-xdist's workers
run side by side) may be handed the same port from between our close and the
broker's bind. So ports come from below the ephemeral range (10000-31999), split
between the xdist workers, taken in turn from a cursor that does not come back to a
port for thousands of picks (a killed broker's lingering connections never meet the
next test's listener), and each checked free by binding it.
"""

from __future__ import annotations

import os
import socket
import threading

LOW, HIGH = 10000, 32000  # below Linux's default ip_local_port_range (32768-60999)

_lock = threading.Lock()
_cursor: int | None = None


def _share() -> tuple[int, int]:
    """This process's slice of [LOW, HIGH): one per xdist worker, the whole range alone."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (HIGH - LOW) // max(1, count)
    start = LOW + (index % max(1, count)) * size
    return start, start + size


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, from this process's share of the range."""
    global _cursor
    start, end = _share()
    with _lock:
        if _cursor is None or not start <= _cursor < end:
            # test processes started side by side (pids a few apart) start thousands apart
            _cursor = start + (os.getpid() * 7919) % (end - start)
        for _ in range(end - start):
            port = _cursor
            _cursor = start if _cursor + 1 >= end else _cursor + 1
            if _bindable(host, port):
                return port
    raise RuntimeError(f"no free loopback port in {start}-{end - 1}")


def free_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports (a local RabbitMQ cluster's layout)."""
    for _ in range(200):
        first = free_port(host)
        if first + count > _share()[1]:  # past this process's share: another worker's ports
            continue
        if all(_bindable(host, first + i) for i in range(1, count)):
            global _cursor
            with _lock:  # the next picks start past the block
                start, end = _share()
                if _cursor is not None and first <= _cursor < first + count:
                    _cursor = first + count if first + count < end else start
            return first
    raise RuntimeError(f"no {count} consecutive free loopback ports")
