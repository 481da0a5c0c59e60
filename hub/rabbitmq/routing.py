"""MQTT topics as RabbitMQ routing keys, and back.

`rabbitmq_mqtt` 3.10 turns an MQTT topic into a routing key on `amq.topic` by replacing
`/` with `.` and `+` with `*` (`#` stays); nothing else is escaped. So the broker-auth
service sees `acme.greenhouse.pi-01` for `acme/greenhouse/pi-01` and maps it back before it
asks `Policy`. What cannot be mapped back unambiguously is denied:
- a `.` in an MQTT topic is a level separator here: a folder whose name holds `.` is never
  reached (its mapped path is another one), which is the rule on this broker;
- `*` and `#` only as whole levels, `#` only last, and never in a publish;
- `+` or `/` in a routing key (an MQTT client cannot produce them), empty levels.
"""

from __future__ import annotations

QUEUE_PREFIX = "mqtt-subscription-"


def to_topic(routing_key: str, *, is_filter: bool) -> str | None:
    """The MQTT topic (or subscription filter, `is_filter`) a routing key stands for; None
    when it is ambiguous or malformed (deny)."""
    if not routing_key or "/" in routing_key or "+" in routing_key or "\x00" in routing_key:
        return None
    levels = routing_key.split(".")
    out = []
    for i, level in enumerate(levels):
        if level == "":
            return None
        if "*" in level or "#" in level:
            if not is_filter:
                return None
            if level == "*":
                out.append("+")
                continue
            if level == "#" and i == len(levels) - 1:
                out.append("#")
                continue
            return None
        out.append(level)
    return "/".join(out)


def literal_folder(topic: str) -> str:
    """The levels of a topic or filter before its first wildcard, as a path ('' if none)."""
    literal = []
    for level in topic.split("/"):
        if level in ("+", "#"):
            break
        literal.append(level)
    return "/".join(literal)


def subscription_queues(client_id: str) -> tuple[str, str]:
    """The queues `rabbitmq_mqtt` 3.10 declares for a client's QoS 0 and QoS 1 subscriptions."""
    return f"{QUEUE_PREFIX}{client_id}qos0", f"{QUEUE_PREFIX}{client_id}qos1"
