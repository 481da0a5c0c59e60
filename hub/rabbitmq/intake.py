"""The persister's intake on RabbitMQ: the `PREFIX.persist` quorum queue over AMQP (`feed.py`).

The same surface as the Mosquitto `Intake` (hub/persister/intake.py), so the persister daemon
does not know which broker it runs on:
- every persister consumes the one durable queue: RabbitMQ splits its messages between them
  and keeps them while none runs, so there is no session to hand over on a stop;
  `unsubscribe` answers None ("keeps its share"), the daemon stores what has arrived, acks it
  and closes: what it held unacknowledged goes back to the queue for the others;
- prefetch = `receive_maximum` (unacknowledged messages held at most);
- `ack(batch)` after commit, only for the messages of the current connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

from hub.persister.batcher import Incoming
from hub.rabbitmq import nodes
from hub.rabbitmq.feed import Feed
from hub.settings import Settings

log = logging.getLogger("hub.persister.amqp")


class AmqpIntake:
    def __init__(self, settings: Settings, q: queue.SimpleQueue[Incoming], client_id: str,
                 receive_maximum: int) -> None:
        self.settings, self.q, self.client_id = settings, q, client_id
        self.topic = nodes.queue_names(settings)["persist"]
        self.received = 0
        self.last_received = 0.0
        self.feed = Feed(settings, self.topic, self._on_delivery, prefetch=max(20, receive_maximum),
                         name=f"persister {client_id}")

    @property
    def connected(self) -> threading.Event:
        return self.feed.connected

    @property
    def subscribed(self) -> threading.Event:
        return self.feed.subscribed

    @property
    def generation(self) -> int:
        return self.feed.generation

    @property
    def where(self) -> str:
        return f"RabbitMQ {self.feed.where}"

    def start(self) -> None:
        log.info("consuming RabbitMQ queue %s at %s (client id %s)", self.topic, self.where, self.client_id)
        self.feed.start()

    def _on_delivery(self, topic: str, payload: bytes, tag: int, generation: int) -> None:
        self.received += 1
        self.last_received = time.monotonic()
        self.q.put(Incoming(topic, payload, tag, 1, generation))

    def ack(self, batch: Iterable[Incoming]) -> int:
        gen = self.feed.generation
        return self.feed.ack([m.mid for m in batch if m.generation == gen], gen)

    def unsubscribe(self, timeout: float = 5.0) -> bool | None:
        """No hand-over on RabbitMQ: the queue is shared and durable. None: keeps its share."""
        log.info("RabbitMQ queue %s is shared and durable: no hand-over; what this persister holds "
                 "unacknowledged goes back to the queue when it disconnects", self.topic)
        return None

    def stop(self, timeout: float = 5.0) -> None:
        self.feed.stop(timeout)


class AmqpNotifyFeed:
    """The notifier's feed on RabbitMQ: the `PREFIX.notify` quorum queue, the surface of
    `hub.notify.mqttfeed.MqttFeed`. Several notifiers share the queue as one group."""

    def __init__(self, settings: Settings, client_id: str,
                 on_message: Callable[[str | None, bytes, int, int], None],
                 on_connect: Callable[[], None], max_unacked: int) -> None:
        self.client_id = client_id
        self.topic = nodes.queue_names(settings)["notify"]
        self.feed = Feed(settings, self.topic, lambda topic, payload, tag, _gen: on_message(topic, payload, tag, 1),
                         prefetch=max_unacked, name="notifier", on_connect=on_connect)
        self.connected, self.subscribed = self.feed.connected, self.feed.subscribed

    def start(self) -> None:
        log.info("notifier consuming RabbitMQ queue %s at %s (client id %s)", self.topic, self.feed.where,
                 self.client_id)
        self.feed.start()

    def ack(self, mid: int) -> None:
        """On the current connection: the notifier forgets the older ones' tickets in
        `on_connect`, which runs before the generation changes."""
        self.feed.ack([mid], self.feed.generation)

    def stop(self, timeout: float = 5.0) -> None:
        self.feed.stop(timeout)
