"""One AMQP consumer of one of the hub's quorum queues, on a thread of its own.

- pika's BlockingConnection, which is not thread-safe: only the feed's thread touches the
  connection and its channel; `ack` (any thread) hands the acknowledgements to that thread
  with `connection.add_callback_threadsafe`.
- It connects to the nodes in turn (round robin: a quorum queue can be consumed from any node),
  retrying with backoff from 0.25 s to 10 s, as the service user `hub-persister` with the
  password derived from SECRET_KEY (`nodes.amqp_url`).
- `basic_qos(prefetch)` bounds the unacknowledged messages it holds; manual acknowledgement:
  each delivery goes to `on_message(topic, payload, delivery_tag, generation)`, where `topic`
  is the routing key mapped back to the MQTT topic (`a.b.c` -> `a/b/c`) and `generation`
  counts the connections: a delivery tag is only valid on the channel it came on, so `ack`
  drops the tags of an older generation (RabbitMQ redelivers those messages: each consumer's
  write must be idempotent).
- If `on_message` raises, the delivery is rejected (requeued); a message that is rejected, or
  whose consumer dies holding it, RABBITMQ_DELIVERY_LIMIT times is dead-lettered by the queue
  (topology.py).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pika
import pika.exceptions

from hub import credentials
from hub.rabbitmq import nodes
from hub.settings import Settings

log = logging.getLogger("hub.rabbitmq.feed")
# pika logs each failed connection attempt at ERROR, with a traceback, from three modules: the
# feed says it once, in a line of its own (`_failed`)
for _name in ("pika.adapters.utils.io_services_utils", "pika.adapters.utils.connection_workflow",
              "pika.adapters.blocking_connection"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

MIN_DELAY, MAX_DELAY = 0.25, 10.0
POLL = 0.25  # s between looks at the stop flag (pending acks run at once: they wake the loop)
MAX_PREFETCH = 65535
_BACK = str.maketrans("./", "/.")  # RabbitMQ's MQTT plugin swaps them on the way in

OnMessage = Callable[[str, bytes, int, int], None]


def topic_of(routing_key: str) -> str:
    return routing_key.translate(_BACK)


class Feed:
    def __init__(self, settings: Settings, queue: str, on_message: OnMessage, *, prefetch: int,
                 name: str = "persister", username: str = credentials.PERSISTER_USERNAME,
                 on_connect: Callable[[], None] | None = None) -> None:
        """`on_connect` runs on the feed's thread on each new connection, before the generation
        changes and before its first delivery (the notifier forgets its old tickets there)."""
        self.settings, self.queue, self.on_message, self.name = settings, queue, on_message, name
        self.username, self.on_connect = username, on_connect
        self.prefetch = max(1, min(MAX_PREFETCH, prefetch))
        self.nodes = nodes.nodes(settings)
        self.generation = 0
        self.node: nodes.Node | None = None  # the one connected to
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._thread: threading.Thread | None = None
        self._failures: dict[int, int] = {}  # node index -> attempts failed in a row

    @property
    def where(self) -> str:
        n = self.node
        if n is not None:
            return f"{n.host}:{n.amqp}"
        return ",".join(f"{n.host}:{n.amqp}" for n in self.nodes)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"hub-amqp-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send the acks handed over so far, then close (unacknowledged messages go back to
        the queue, for the other consumers or the next run)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- any thread -------------------------------------------------------------------
    def ack(self, tags: Iterable[int], generation: int) -> int:
        """Acknowledge `tags` of connection `generation`; returns how many were handed to the
        feed's thread (0 if that connection is gone: the messages come again)."""
        with self._lock:
            conn, ch = self._conn, self._channel
            if conn is None or generation != self.generation:
                return 0
        tags = list(tags)
        if not tags:
            return 0

        def send() -> None:  # on the feed's thread
            if self.generation != generation or not ch.is_open:
                return
            for tag in tags:
                ch.basic_ack(tag)

        try:
            conn.add_callback_threadsafe(send)
        except (pika.exceptions.AMQPError, RuntimeError, OSError):
            return 0
        return len(tags)

    # -- the feed's thread -------------------------------------------------------------
    def _run(self) -> None:
        turn, delay = 0, MIN_DELAY
        while not self._stopping.is_set():
            node = self.nodes[turn % len(self.nodes)]
            turn += 1
            conn = self._connect(node)
            if conn is None:
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_DELAY)
                continue
            delay = MIN_DELAY
            try:
                self._serve(conn, node)
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    log.error("RabbitMQ queue %s does not exist on %s:%d: the broker component declares "
                              "it (hub.rabbitmq.topology.declare, run by run.py --broker); retrying",
                              self.queue, node.host, node.amqp)
                    delay = 2.0
                else:
                    log.error("RabbitMQ closed the %s's channel on %s:%d: %s; reconnecting", self.name,
                              node.host, node.amqp, e)
            except (pika.exceptions.AMQPError, OSError) as e:
                if not self._stopping.is_set():
                    log.warning("%s lost RabbitMQ node %s:%d (%s: %s); reconnecting, unacknowledged "
                                "messages will be redelivered", self.name, node.host, node.amqp,
                                type(e).__name__, e)
            finally:
                with self._lock:
                    self._conn = self._channel = None
                    self.node = None
                self.connected.clear()
                self.subscribed.clear()
                if conn.is_open:
                    try:
                        conn.close()
                    except (pika.exceptions.AMQPError, OSError):
                        pass
            if not self._stopping.is_set():
                self._stopping.wait(delay)

    def _connect(self, node: nodes.Node) -> pika.BlockingConnection | None:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(nodes.amqp_url(self.settings, node, self.username)))
        except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError) as e:
            self._failed(node, f"refused {self.username}'s credentials ({e}): the node must know the hub's "
                               "service users (the broker-auth service, same SECRET_KEY)")
            return None
        except pika.exceptions.ConnectionClosedByBroker as e:
            self._failed(node, f"refused the connection ({e.reply_code} {e.reply_text})")
            return None
        except (pika.exceptions.AMQPError, OSError) as e:
            self._failed(node, f"{type(e).__name__}: {e}".rstrip(": "))
            return None
        if self._failures.pop(node.index, 0):
            log.info("RabbitMQ node %s:%d is reachable again", node.host, node.amqp)
        return conn

    def _failed(self, node: nodes.Node, why: str) -> None:
        n = self._failures[node.index] = self._failures.get(node.index, 0) + 1
        if n in (1, 5) or n % 30 == 0:
            log.error("cannot reach RabbitMQ node %s:%d (attempt %d); retrying (%s's %s: %s)",
                      node.host, node.amqp, n, self.name, self.queue, why)

    def _serve(self, conn: pika.BlockingConnection, node: nodes.Node) -> None:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=self.prefetch)
        if self.on_connect is not None:
            self.on_connect()
        with self._lock:
            self.generation += 1
            gen = self.generation
            self._conn, self._channel, self.node = conn, ch, node
        self.connected.set()
        ch.basic_consume(self.queue, functools.partial(self._deliver, gen), auto_ack=False)
        self.subscribed.set()
        log.info("%s subscribed to RabbitMQ queue %s on %s:%d (prefetch %d)", self.name, self.queue,
                 node.host, node.amqp, self.prefetch)
        while not self._stopping.is_set():
            conn.process_data_events(time_limit=POLL)
        conn.process_data_events(time_limit=0)  # the acks handed over before the stop

    def _deliver(self, gen: int, ch: Any, method: Any, _props: Any, body: bytes) -> None:
        try:
            self.on_message(topic_of(method.routing_key), body, method.delivery_tag, gen)
        except Exception:  # noqa: BLE001 - this delivery failed: back to the queue (it counts)
            log.exception("%s failed on a message from %s; rejected (requeued: after %d deliveries "
                          "RabbitMQ dead-letters it)", self.name, topic_of(method.routing_key),
                          self.settings.RABBITMQ_DELIVERY_LIMIT)
            ch.basic_nack(method.delivery_tag, requeue=True)
