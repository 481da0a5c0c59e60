"""Where the RabbitMQ nodes are (RABBITMQ_NODES or the local layout), and the credentials
and URLs the hub uses with them."""

from __future__ import annotations

from dataclasses import dataclass

from hub import credentials
from hub.errors import SettingsError
from hub.settings import Settings

AUTH_SERVICE_NAME = "hub-broker-auth"  # derives the secret path of the broker-auth service
PORT_KEYS = ("amqp", "mqtt", "web_mqtt", "management", "dist")


@dataclass(frozen=True)
class Node:
    index: int
    host: str
    amqp: int
    mqtt: int
    web_mqtt: int
    management: int
    dist: int

    @property
    def name(self) -> str:
        """The Erlang node name of a local node."""
        return f"rabbit-{self.index}@localhost"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management}"


def nodes(s: Settings) -> list[Node]:
    if s.RABBITMQ_NODES:
        out = []
        for i, spec in enumerate(s.RABBITMQ_NODES):
            if not isinstance(spec, dict) or "host" not in spec:
                raise SettingsError(f"RABBITMQ_NODES[{i}] must be a dict with host and the ports "
                                    f"{', '.join(PORT_KEYS)}; got {spec!r}")
            unknown = set(spec) - {"host", *PORT_KEYS}
            if unknown:
                raise SettingsError(f"RABBITMQ_NODES[{i}]: unknown key {sorted(unknown)[0]!r}")
            try:
                ports = {k: int(spec.get(k, default)) for k, default in
                         zip(PORT_KEYS, (5672, 1883, 15675, 15672, 25672), strict=True)}
            except (TypeError, ValueError) as e:
                raise SettingsError(f"RABBITMQ_NODES[{i}]: ports must be numbers ({e})") from e
            out.append(Node(i, str(spec["host"]), **ports))
        return out
    if not 1 <= s.RABBITMQ_LOCAL_NODES <= 9:
        raise SettingsError(f"RABBITMQ_LOCAL_NODES must be 1-9, got {s.RABBITMQ_LOCAL_NODES}")
    base = s.RABBITMQ_BASE_PORT
    return [Node(i, "127.0.0.1", base + 10 * i, s.MQTT_PORT if i == 0 else base + 10 * i + 1,
                 s.MQTT_WS_PORT if i == 0 else base + 10 * i + 2, base + 10 * i + 3, base + 10 * i + 4)
            for i in range(s.RABBITMQ_LOCAL_NODES)]


def epmd_port(s: Settings) -> int:
    """The local cluster's own epmd (Erlang's port mapper), so it shares nothing system-wide."""
    return s.RABBITMQ_BASE_PORT + 9


def admin_credentials(s: Settings) -> tuple[str, str]:
    return s.RABBITMQ_ADMIN_USER, (s.RABBITMQ_ADMIN_PASSWORD
                                   or credentials.service_password(s.SECRET_KEY, s.RABBITMQ_ADMIN_USER))


def auth_secret(s: Settings) -> str:
    """The path segment every broker-auth request carries (besides coming from loopback)."""
    return credentials.service_password(s.SECRET_KEY, AUTH_SERVICE_NAME)


def auth_base_url(s: Settings) -> str:
    """What the nodes' `auth_http.*_path` settings start with."""
    return f"http://{s.BROKER_AUTH_HOST}:{s.BROKER_AUTH_PORT}/{auth_secret(s)}/auth"


def queue_names(s: Settings) -> dict[str, str]:
    p = s.RABBITMQ_QUEUE_PREFIX
    return {"persist": f"{p}.persist", "notify": f"{p}.notify",
            "persist_dead": f"{p}.persist.dead", "notify_dead": f"{p}.notify.dead", "dead_exchange": f"{p}.dead"}


def amqp_url(s: Settings, node: Node, username: str = credentials.PERSISTER_USERNAME) -> str:
    """AMQP URL of `node` for a hub service user (its password derived from SECRET_KEY)."""
    from urllib.parse import quote

    password = credentials.service_password(s.SECRET_KEY, username)
    return (f"amqp://{quote(username, safe='')}:{quote(password, safe='')}@{node.host}:{node.amqp}/%2F"
            "?heartbeat=10&connection_attempts=1&socket_timeout=5&blocked_connection_timeout=30")
