"""Where the persister, the notifier and the extensions get their broker connection: the
one place that looks at the BROKER setting for them.

- mosquitto (the default): MQTT 5 to MQTT_HOST:MQTT_PORT, shared subscriptions
  (hub/persister/intake.py, hub/notify/mqttfeed.py).
- rabbitmq: AMQP consumers of the hub's quorum queues (hub/rabbitmq/intake.py, feed.py);
  extensions publish over MQTT 3.1.1 to the first node's MQTT port (RabbitMQ 3.10 has no MQTT 5).

The RabbitMQ modules (and pika) are imported only under BROKER=rabbitmq.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from hub.persister.batcher import Incoming
from hub.settings import Settings

if TYPE_CHECKING:
    from paho.mqtt.enums import MQTTProtocolVersion


class PersisterIntake(Protocol):
    """What the persister daemon uses (hub/persister/intake.py says what each does)."""

    client_id: str
    topic: str
    received: int
    last_received: float

    @property
    def connected(self) -> threading.Event: ...
    @property
    def subscribed(self) -> threading.Event: ...
    @property
    def generation(self) -> int: ...
    @property
    def where(self) -> str: ...
    def start(self) -> None: ...
    def ack(self, batch: Iterable[Incoming]) -> int: ...
    def unsubscribe(self, timeout: float = 5.0) -> bool | None: ...
    def stop(self, timeout: float = 5.0) -> None: ...


class NotifierFeed(Protocol):
    """What the notifier uses: `on_message(topic, payload, mid, qos)` and `on_connect()` are
    given to the factory; `ack(mid)` acknowledges on the current connection."""

    topic: str

    @property
    def connected(self) -> threading.Event: ...
    @property
    def subscribed(self) -> threading.Event: ...
    def start(self) -> None: ...
    def ack(self, mid: int) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...


def is_rabbitmq(settings: Settings) -> bool:
    return settings.BROKER == "rabbitmq"


def persister_intake(settings: Settings, q: queue.SimpleQueue[Incoming], client_id: str,
                     receive_maximum: int) -> PersisterIntake:
    if is_rabbitmq(settings):
        from hub.rabbitmq.intake import AmqpIntake

        return AmqpIntake(settings, q, client_id, receive_maximum)
    from hub.persister.intake import Intake

    return Intake(settings, q, client_id, receive_maximum)


def notifier_feed(settings: Settings, client_id: str, on_message: Callable[[str | None, bytes, int, int], None],
                  on_connect: Callable[[], None], max_unacked: int) -> NotifierFeed:
    if is_rabbitmq(settings):
        from hub.rabbitmq.intake import AmqpNotifyFeed

        return AmqpNotifyFeed(settings, client_id, on_message, on_connect, max_unacked)
    from hub.notify.mqttfeed import MqttFeed

    return MqttFeed(settings, client_id, on_message, on_connect, max_unacked)


def mqtt_endpoint(settings: Settings) -> tuple[str, int, MQTTProtocolVersion]:
    """(host, port, paho protocol) an MQTT client of the hub's own (an extension's publisher) uses."""
    import paho.mqtt.client as mqtt

    protocol = mqtt.MQTTv5 if settings.broker_has_mqtt5 else mqtt.MQTTv311
    if is_rabbitmq(settings):
        from hub.rabbitmq import nodes

        first = nodes.nodes(settings)[0]
        return first.host, first.mqtt, protocol
    return settings.MQTT_HOST, settings.MQTT_PORT, protocol
