"""`run.py --check`'s broker line under BROKER=rabbitmq: the nodes, the broker-auth service,
the hub's queues, and an MQTT 3.1.1 connect with the hub's service credentials (which goes
through the broker-auth service, so a service reading another SECRET_KEY shows here)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from hub.errors import HubError
from hub.rabbitmq import nodes, topology
from hub.settings import Settings

MQTT_TIMEOUT = 5.0


def broker(s: Settings) -> str:
    dotted = dotted_folders(s)
    if dotted:
        raise HubError(f"{len(dotted)} folders have a '.' in their name ({', '.join(dotted[:5])}): on RabbitMQ "
                       "a '.' separates topic levels, so no client reaches them; rename them (PATCH "
                       "/api/v1/resources/PATH with a new name, or move them) before switching BROKER")
    running = _nodes_running(s)
    auth = _auth_service(s)
    queues = topology.describe(s)
    missing = [name for name, q in queues.items() if q is None]
    if missing:
        raise HubError(f"the hub's RabbitMQ queues {', '.join(missing)} are not declared: `run.py --broker` "
                       "declares them (controllers are refused until they exist)")
    persist = queues[nodes.queue_names(s)["persist"]]
    _mqtt_connect(s)
    return (f"RabbitMQ: {len(running)} of {len(nodes.nodes(s))} nodes running; broker-auth at change "
            f"{auth.get('change_id')}; {nodes.queue_names(s)['persist']}: {persist['messages']} waiting, "
            f"{persist['consumers']} persisters, {len(persist['members'])} replicas; MQTT at "
            f"{s.MQTT_HOST}:{s.MQTT_PORT} accepts the hub's service credentials")


def dotted_folders(s: Settings, limit: int = 100) -> list[str]:
    """Live folders whose name holds a '.' (a hub moving from Mosquitto may have some)."""
    from sqlalchemy import select

    from hub.storage.db import Database
    from hub.storage.models import Resource
    from hub.storage.resources import FOLDER_TYPES

    db = Database(s.database_url)
    try:
        with db.session() as sess:
            return list(sess.scalars(select(Resource.path).where(
                Resource.name.contains("."), Resource.type.in_(FOLDER_TYPES), ~Resource.deleted)
                .order_by(Resource.path).limit(limit)))
    finally:
        db.dispose()


def _nodes_running(s: Settings) -> list[str]:
    got = topology.management_get(s, "nodes")
    running = [n["name"] for n in got or [] if n.get("running")]
    if len(running) * 2 <= len(nodes.nodes(s)):
        raise HubError(f"only {len(running)} of {len(nodes.nodes(s))} RabbitMQ nodes run: quorum queues and "
                       "client-id tracking need a majority; start the others")
    return running


def _auth_service(s: Settings) -> dict[str, Any]:
    url = f"http://{s.BROKER_AUTH_HOST}:{s.BROKER_AUTH_PORT}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - the hub's own service
            health = dict(json.load(r))
    except OSError as e:
        raise HubError(f"the broker-auth service at {url} does not answer ({e}): RabbitMQ refuses every "
                       "client without it; start it (`run.py --broker-auth`, hub-broker-auth.service)") from None
    if not health.get("ok"):
        raise HubError(f"the broker-auth service says it is not ok: {health}")
    return health


def _mqtt_connect(s: Settings) -> None:
    import paho.mqtt.client as mqtt

    from hub.checks import service_login

    reason = service_login(s, mqtt.MQTTv311, "RabbitMQ's MQTT listener")
    if reason is None or reason.is_failure:
        raise HubError(f"RabbitMQ at {s.MQTT_HOST}:{s.MQTT_PORT} refused the hub's service credentials "
                       f"({reason}): the broker-auth service must read this same settings file (SECRET_KEY)")


def health(s: Settings) -> dict[str, dict[str, Any]]:
    """/health's checks of the parts only this broker has: the broker-auth service (without
    it every node refuses every client), and the persisters and the notifier as their queues'
    consumers."""
    out: dict[str, dict[str, Any]] = {}
    try:
        auth = _auth_service(s)
        out["broker_auth"] = {"ok": True, "detail": f"at change {auth.get('change_id')}, "
                                                    f"{auth.get('clients', 0)} clients"}
    except HubError as e:
        out["broker_auth"] = {"ok": False, "detail": e.message[:300]}
    try:
        queues = topology.describe(s)
    except Exception as e:  # noqa: BLE001 - reported: the broker check says why
        return {**out, "persister": {"ok": False, "detail": f"cannot see the queues: {e}"[:300]}}
    names = nodes.queue_names(s)
    for part, kind in (("persister", "persist"), ("notifier", "notify")):
        q = queues.get(names[kind])
        if q is None:
            out[part] = {"ok": False, "detail": f"queue {names[kind]} is not declared: `run.py --broker` declares it"}
        else:
            out[part] = {"ok": q["consumers"] > 0,
                         "detail": f"{q['consumers']} consuming {names[kind]}, {q['messages']} waiting"}
    return out
