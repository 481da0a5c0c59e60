"""Keep Mosquitto's tick callback registered only while it is useful.

Under load Mosquitto 2.0 ticks once per packet it reads, and each tick is a call into
Python (about as costly as an ACL check) that almost always finds nothing to do. So the
tick is unregistered while traffic flows (by the ACL path, never by the tick itself:
Mosquitto is iterating its tick list then) and registered again when there is work:
- by the ACL path, which looks at one flag (`attention`) when traffic flows;
- when the broker is idle (no ACL calls at all), by a "poke": the background thread opens
  a connection to the broker's own MQTT listener with a one-time secret as password, so
  the broker thread runs the basic-auth callback, which registers the tick (and refuses
  the poke). The startup poke proves the path works; until it has, the tick stays on
  (and it stays on for good if the listener at MQTT_HOST:MQTT_PORT never answers, e.g.
  when it is TLS-only: correct, only slower).

Every register/unregister runs on the broker's thread; the state is guarded by a lock
because the background thread requests work concurrently.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable

POKE_USERNAME = "hub-auth-wakeup"
STARTUP_POKES = 40  # until the listener answers, with backoff (about 5 minutes); then the tick stays on
STARTUP_BACKOFF = (0.25, 1.25, 15.0)  # first delay, factor, longest delay (seconds)


class TickGate:
    def __init__(self, register: Callable[[], None], unregister: Callable[[], None],
                 poke: Callable[[str], bool] | None = None) -> None:
        self._register, self._unregister, self._poke = register, unregister, poke
        self.nonce = secrets.token_urlsafe(32)
        self.on = True  # the plugin registers the tick at start
        self.pending = False  # work for the tick (new snapshot, log lines)
        self.poke_ok = False
        self.in_tick = False
        self.attention = [True]  # read on every ACL call: when True, call `hot()`
        self.pokes = 0
        self._next_startup_poke = 0.0
        self._lock = threading.Lock()

    # -- broker thread ----------------------------------------------------------
    def hot(self) -> None:
        """From the ACL path when `attention[0]`: register the tick for pending work,
        or unregister it when there is none (the traffic will bring us back)."""
        if self.in_tick:
            return
        with self._lock:
            if self.pending:
                if not self.on:
                    self._register()
                    self.on = True
                return  # keep attention: unregister once the tick has run
            if self.on and self.poke_ok:
                self._unregister()
                self.on = False
            self.attention[0] = False

    def is_poke(self, username: str | None, password: str | None) -> bool:
        """From basic-auth: True for our own poke (refuse it), after acting on it."""
        if username != POKE_USERNAME or not password:
            return False
        if not hmac.compare_digest(password.encode(), self.nonce.encode()):
            return False
        with self._lock:
            self.poke_ok = True
            if self.pending and not self.on:
                self._register()
                self.on = True
            self.attention[0] = True
        return True

    def tick_started(self) -> None:
        """From the tick, before it takes its work: newer work stays pending."""
        with self._lock:
            self.in_tick = True
            self.pending = False
            self.attention[0] = True

    def tick_done(self) -> None:
        self.in_tick = False

    # -- background thread -------------------------------------------------------
    def request(self) -> None:
        """There is work for the tick: make sure one comes soon."""
        with self._lock:
            self.pending = True
            self.attention[0] = True
            sleeping = not self.on
        if sleeping:
            self.poke()

    def nudge(self, now: float | None = None) -> None:
        """Called by the background thread a few times a second: poke again while work
        waits for a tick that is off (a lost poke), or until the first poke came through
        (the listener opens after the plugin starts, later on a big persistence file)."""
        if self.pending and not self.on:
            self.poke()
        elif not self.poke_ok and self.pokes < STARTUP_POKES:
            now = time.monotonic() if now is None else now
            if now >= self._next_startup_poke:
                first, factor, longest = STARTUP_BACKOFF
                self._next_startup_poke = now + min(longest, first * factor ** self.pokes)
                self.poke()

    def poke(self) -> bool:
        if self._poke is None:
            return False
        self.pokes += 1
        return self._poke(self.nonce)


def poke_broker(host: str, port: int, nonce: str, timeout: float = 2.0) -> bool:
    """Connect to the broker and send a CONNECT it will refuse; True if it answered."""
    def s(b: bytes) -> bytes:
        return struct.pack("!H", len(b)) + b

    body = (s(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10) + s(POKE_USERNAME.encode())
            + s(POKE_USERNAME.encode()) + s(nonce.encode()))
    packet = b"\x10" + bytes([len(body)]) + body  # < 128 bytes: one-byte length
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            return bool(sock.recv(4))
    except OSError:
        return False
