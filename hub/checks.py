"""`run.py --check`: reach every dependency the way the hub's processes do and say,
one line each, what works and what to do about what does not.

- database: connects, and the schema is at the newest migration;
- bulk storage: a probe object is written, read back and deleted (so S3 credentials
  that may read but not write are caught too);
- broker: an MQTT connect with the hub's own service credentials, so a broker that is
  down, something else on the port, and a plugin reading another SECRET_KEY or settings
  file each get their own message.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub.errors import HubError
from hub.settings import Settings

if TYPE_CHECKING:
    from paho.mqtt.enums import MQTTProtocolVersion

MQTT_TIMEOUT = 5.0


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def database(s: Settings) -> str:
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from hub.storage.db import MIGRATIONS, Database

    sqlite = s.database_url.startswith("sqlite")
    db = Database(s.database_url) if sqlite else Database(s.database_url, connect_args={"connect_timeout": 5})
    try:
        try:
            with db.engine.connect() as c:
                c.execute(text("SELECT 1"))
                try:
                    current = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
                except Exception:
                    current = None
        except Exception as e:
            raise HubError(f"cannot connect to {db.safe_url}: {_first_line(e)} -- is the database server "
                           "running and reachable, and are the host, port, user and password in "
                           "DATABASE_URL right?") from None
    finally:
        db.dispose()
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if current is None:
        raise HubError(f"{db.safe_url} is reachable but has no hub schema: run `run.py --init-db`")
    if current != head:
        raise HubError(f"{db.safe_url} has schema {current}, this code needs {head}: "
                       "run `run.py --migrate` (back up first, see docs/operations.md)")
    return f"{db.safe_url} (schema {current}, up to date)"


def bulk_storage(s: Settings) -> str:
    from hub.storage.bulk import open_bulk

    bulk = open_bulk(s.bulk_storage_url, endpoint_url=s.S3_ENDPOINT_URL, region=s.S3_REGION)
    bulk.check()
    key = f"hub-check/{secrets.token_hex(8)}"
    probe = secrets.token_bytes(16)
    try:
        bulk.put(key, probe)
        if bulk.get(key) != probe:
            raise HubError(f"{s.bulk_storage_url}: a probe object read back different bytes")
    finally:
        try:
            bulk.delete(key)
        except HubError:
            pass
    return f"{s.bulk_storage_url} (write, read and delete work)"


def service_login(s: Settings, protocol: MQTTProtocolVersion, broker_name: str) -> Any:
    """Log in at MQTT_HOST:MQTT_PORT as `hub-service`: the CONNACK's (or the disconnect's)
    reason code, None without an answer within MQTT_TIMEOUT."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from hub.credentials import SERVICE_USERNAME, service_password

    answer: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hub-check-{secrets.token_hex(4)}",
                         protocol=protocol)
    client.username_pw_set(SERVICE_USERNAME, service_password(s.SECRET_KEY, SERVICE_USERNAME))
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.setdefault("reason", reason)
    client.on_disconnect = lambda _c, _u, _f, reason, _p: answer.setdefault("reason", reason)
    try:
        client.connect(s.MQTT_HOST, s.MQTT_PORT, keepalive=10)
        deadline = time.monotonic() + MQTT_TIMEOUT
        while "reason" not in answer and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except (OSError, ValueError) as e:
        raise HubError(f"{broker_name} at {s.MQTT_HOST}:{s.MQTT_PORT}: {e}") from None
    finally:
        reason = answer.get("reason")  # before disconnect(), which reports its own success
        client.disconnect()
    return reason


def broker(s: Settings) -> str:
    if not s.broker_has_plugin:  # a RabbitMQ cluster: its nodes, queues and broker-auth service
        from hub.rabbitmq.checks import broker as rabbitmq_broker

        return rabbitmq_broker(s)
    import paho.mqtt.client as mqtt

    where = f"{s.MQTT_HOST}:{s.MQTT_PORT}"
    try:
        socket.create_connection((s.MQTT_HOST, s.MQTT_PORT), timeout=3).close()
    except OSError as e:
        raise HubError(f"cannot reach Mosquitto at {where} ({e.strerror or e}): is it running "
                       "(`systemctl status mosquitto`, or plain `run.py`) and are MQTT_HOST/MQTT_PORT right?") from None
    reason = service_login(s, mqtt.MQTTv5, "Mosquitto")
    if reason is None:
        raise HubError(f"something listens at {where} but did not answer an MQTT connect within "
                       f"{MQTT_TIMEOUT:.0f} s: is MQTT_PORT Mosquitto's plain MQTT listener (not TLS or websockets)?")
    if reason.is_failure:
        raise HubError(f"Mosquitto at {where} refused the hub's service credentials ({reason}): its plugin "
                       "must read this same settings file (plugin_opt_settings) with this SECRET_KEY; "
                       "after changing either, restart Mosquitto")
    return f"{where} accepts the hub's service credentials"


CHECKS: list[tuple[str, Callable[[Settings], str]]] = [
    ("database", database), ("bulk storage", bulk_storage), ("broker", broker)]


def run(s: Settings, out: Callable[[str], None] = print) -> int:
    """Every check, one line each; 0 if all pass, else 1."""
    failures = 0
    out(f"ok    settings: loaded (DATA_DIR {s.data_path})")
    for name, fn in CHECKS:
        try:
            out(f"ok    {name}: {fn(s)}")
        except Exception as e:  # noqa: BLE001 - whatever it is, it is reported, and the next check runs
            failures += 1
            out(f"FAIL  {name}: {getattr(e, 'message', None) or _first_line(e)}")
    out("all checks passed" if not failures else f"{failures} check(s) failed")
    return 1 if failures else 0
