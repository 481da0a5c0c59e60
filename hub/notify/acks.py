"""Acknowledgements in the order the messages came, whenever each is done.

MQTT requires a client to send its PUBACKs in the order the PUBLISH packets arrived
[MQTT-4.6.0-2]. The notifier finishes messages out of order (four workers, slow emails
beside quick status writes), and Mosquitto 2.0.11 (Debian 12's) answers acknowledgements
out of order by sending later messages ahead of the ones it queued for the notifier once
its in-flight window is full: the notifier then hears one controller's reports out of
order. So each QoS 1 message gets a ticket on arrival (paho's thread), and a ticket
marked done is acknowledged only once every earlier ticket is done too.

A reconnect drops the tickets of the old connection: Mosquitto sends those messages
again, and a mid of the old connection must never be acknowledged on the new one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Ticket:
    __slots__ = ("mid", "done")

    def __init__(self, mid: int) -> None:
        self.mid, self.done = mid, False


class InOrderAcks:
    def __init__(self, send: Callable[[int], object]) -> None:
        self._send = send  # sends the PUBACK of one mid
        self._pending: deque[Ticket] = deque()
        self._lock = threading.Lock()

    def take(self, mid: int, qos: int) -> Ticket | None:
        """A ticket for a message that just arrived (None for QoS 0: nothing to acknowledge)."""
        if qos != 1:
            return None
        t = Ticket(mid)
        with self._lock:
            self._pending.append(t)
        return t

    def done(self, ticket: Ticket | None) -> None:
        """`ticket`'s message is handled: acknowledge it and every done one after it, up to
        the first that is not."""
        if ticket is None:
            return
        with self._lock:
            ticket.done = True
            while self._pending and self._pending[0].done:
                self._send(self._pending.popleft().mid)

    def reset(self) -> None:
        """A new connection: forget the old one's messages (they come again)."""
        with self._lock:
            self._pending.clear()
