"""The hub's queues on RabbitMQ: declared once by the broker component, before anything publishes.

- `PREFIX.persist` and `PREFIX.notify`: quorum queues (replicated on up to three nodes), each
  bound to `amq.topic` with `#`, so each holds every message published over MQTT (topic `a/b/c`
  is routing key `a.b.c`) until a persister or the notifier acknowledges it. Several persisters
  consuming `PREFIX.persist` share its messages (the RabbitMQ form of Mosquitto's `$share`).
- A message delivered RABBITMQ_DELIVERY_LIMIT times without being acknowledged (each consumer it
  went to crashed, lost its connection or rejected it) is poison: the queue dead-letters it
  through the exchange `PREFIX.dead` to `PREFIX.persist.dead` / `PREFIX.notify.dead` (quorum
  queues too), where it waits for an operator, and the queue goes on with the next ones. (A
  message the persister can *parse* and refuse is not poison: it is stored in the persister's
  own dead_letters table and acknowledged.)

`declare(settings)` is idempotent. A queue of that name declared with other arguments (another
delivery limit, a classic queue) is refused by RabbitMQ (PRECONDITION_FAILED): the error says
what to do; a queue's arguments cannot change in place.
`describe(settings)`: each queue's depth and consumers, from the management API.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from base64 import b64encode
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions

from hub.errors import HubError, Unavailable
from hub.rabbitmq import nodes
from hub.settings import Settings

log = logging.getLogger("hub.rabbitmq")

TOPIC_EXCHANGE = "amq.topic"  # where RabbitMQ's MQTT plugin publishes
ALL = "#"


class TopologyError(HubError):
    code = "rabbitmq_topology"


def group_size(s: Settings) -> int:
    return min(3, len(nodes.nodes(s)))


def queue_arguments(s: Settings, kind: str) -> dict[str, Any]:
    """The arguments of queue `kind` (persist, notify, persist_dead, notify_dead)."""
    names = nodes.queue_names(s)
    args: dict[str, Any] = {"x-queue-type": "quorum", "x-quorum-initial-group-size": group_size(s)}
    if not kind.endswith("_dead"):
        # at-least-once dead-lettering (3.10+): a poison message leaves its queue only once its
        # dead queue has it, whatever node fails meanwhile (it needs reject-publish overflow)
        args.update({"x-delivery-limit": int(s.RABBITMQ_DELIVERY_LIMIT),
                     "x-dead-letter-exchange": names["dead_exchange"],
                     "x-dead-letter-routing-key": names[f"{kind}_dead"],
                     "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return args


def admin_parameters(s: Settings, node: nodes.Node) -> pika.ConnectionParameters:
    user, password = nodes.admin_credentials(s)
    return pika.ConnectionParameters(host=node.host, port=node.amqp, virtual_host="/",
                                     credentials=pika.PlainCredentials(user, password),
                                     connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30,
                                     heartbeat=30)


def _connect_admin(s: Settings) -> pika.BlockingConnection:
    problems = []
    for node in nodes.nodes(s):
        try:
            return pika.BlockingConnection(admin_parameters(s, node))
        except pika.exceptions.ProbableAuthenticationError as e:
            raise TopologyError(f"RabbitMQ node {node.host}:{node.amqp} refused the admin user "
                                f"{nodes.admin_credentials(s)[0]} ({e}): RABBITMQ_ADMIN_USER / "
                                "RABBITMQ_ADMIN_PASSWORD (or SECRET_KEY, which derives it) must match "
                                "the user in RabbitMQ's internal backend") from e
        except pika.exceptions.AMQPError as e:
            problems.append(f"{node.host}:{node.amqp} ({type(e).__name__}: {e})")
    raise Unavailable("no RabbitMQ node reachable to declare the hub's queues: " + "; ".join(problems))


def declare(s: Settings) -> None:
    """Declare the dead-letter exchange, the dead queues, the persist and notify queues and their
    bindings (idempotent). Raises TopologyError when a queue exists with other arguments,
    Unavailable when no node answers."""
    names = nodes.queue_names(s)
    conn = _connect_admin(s)
    try:
        ch = conn.channel()
        ch.exchange_declare(names["dead_exchange"], exchange_type="direct", durable=True)
        for kind in ("persist_dead", "notify_dead", "persist", "notify"):
            name = names[kind]
            try:
                ch.queue_declare(name, durable=True, arguments=queue_arguments(s, kind))
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code != 406:
                    raise
                raise TopologyError(
                    f"RabbitMQ queue {name} exists with other arguments than the hub's ({e.reply_text}). "
                    f"A queue's arguments cannot change in place: drain it, then delete it (`rabbitmqctl "
                    f"delete_queue {name}`, its messages go with it) and declare again; or set "
                    f"RABBITMQ_QUEUE_PREFIX to a new prefix") from e
            if kind.endswith("_dead"):
                ch.queue_bind(name, names["dead_exchange"], routing_key=name)
            else:
                ch.queue_bind(name, TOPIC_EXCHANGE, routing_key=ALL)
        log.info("RabbitMQ queues ready: %s and %s (quorum, %d replicas, delivery limit %d; dead letters "
                 "to %s, %s)", names["persist"], names["notify"], group_size(s), s.RABBITMQ_DELIVERY_LIMIT,
                 names["persist_dead"], names["notify_dead"])
    finally:
        if conn.is_open:
            conn.close()


def management_get(s: Settings, path: str, timeout: float = 5.0) -> Any:
    """GET `path` (below /api/) from the first node whose management API answers."""
    user, password = nodes.admin_credentials(s)
    auth = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
    errors = []
    for node in nodes.nodes(s):
        req = urllib.request.Request(f"{node.management_url}/api/{path}", headers={"Authorization": auth})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - http to our own nodes
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            errors.append(f"{node.host}:{node.management} (HTTP {e.code})")
        except OSError as e:
            errors.append(f"{node.host}:{node.management} ({e})")
    raise Unavailable("no RabbitMQ management API answered: " + "; ".join(errors))


def describe(s: Settings) -> dict[str, Any]:
    """{queue name: {messages, ready, unacknowledged, consumers, members, leader}}, None for a
    queue that is not declared; raises Unavailable when no management API answers."""
    out: dict[str, Any] = {}
    for kind, name in nodes.queue_names(s).items():
        if kind == "dead_exchange":
            continue
        q = management_get(s, f"queues/%2F/{quote(name, safe='')}")
        out[name] = None if q is None else {
            "messages": q.get("messages", 0), "ready": q.get("messages_ready", 0),
            "unacknowledged": q.get("messages_unacknowledged", 0), "consumers": q.get("consumers", 0),
            "members": q.get("members", []), "leader": q.get("leader")}
    return out
