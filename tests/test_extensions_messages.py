"""The example extension handling its messages in a real hub: Mosquitto with the plugin,
the notifier (in this process) and aiosmtpd. A value out of range makes one email; staying
out makes none; the extension's key needs write on the folder, as any caller's would."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import wire
from hub.notify.daemon import Notifier
from hub.settings import Settings, load
from hub.storage import keys, permissions, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import Level
from tests.support import free_port, write_settings_file
from tests.support.broker import RunningBroker, mqtt_client, start_broker
from tests.support.notify import SmtpSink, smtp_server, wait_for

PACKAGE = "examples.extensions.threshold_alerts"
CONTROLLER = "acme/pi-01"


@dataclass
class Hub:
    settings: Settings
    broker: RunningBroker
    notifier: Notifier
    smtp: SmtpSink
    controller_key: str
    grower: str


@contextmanager
def hub_with_alerts(root: Path, bot_level: Level) -> Iterator[Hub]:
    """A hub whose threshold rule watches acme/pi-01/temperature (5..30), telling grower;
    the extension's key is a bot user's with `bot_level` on the controller's folder."""
    with smtp_server() as (smtp, smtp_port):
        db_url = f"sqlite:///{root / 'hub.db'}"
        migrate(db_url)
        db = Database(db_url)
        tag = secrets.token_hex(3)
        with db.session() as s:
            acme = users.create_organization(s, "acme")
            grower = users.create_user(s, f"grower-{tag}@example.com", "correct horse battery", rounds=4)
            bot = users.create_user(s, f"alerts-bot-{tag}@example.com", secrets.token_hex(12), rounds=4)
            users.set_membership(s, acme, grower)
            resources.create(s, CONTROLLER, "controller")
            controller_key = keys.create(s, controller_path=CONTROLLER, name="pi")[1]
            if bot_level > Level.NONE:
                permissions.grant(s, CONTROLLER, bot_level, user_id=bot.id)
            bot_key = keys.create(s, user_id=bot.id, name="threshold alerts")[1]
            grower_email = grower.email
        db.dispose()
        values: dict[str, Any] = {
            "DATA_DIR": str(root / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": db_url,
            "MQTT_PORT": free_port(), "MQTT_WS_PORT": free_port(), "HTTP_PORT": free_port(),
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "SMTP_TLS": "none", "SMTP_FROM": "hub@example.com",
            "NOTIFY_CLIENT_ID": "notifier-" + tag, "MQTT_REQUIRE_PERSISTER": False,  # no persister: relay only
            "EXTENSIONS": [PACKAGE], "EXTENSION_API_KEYS": {"threshold_alerts": bot_key},
            "THRESHOLD_ALERTS_RULES": [{"sequence": f"{CONTROLLER}/temperature", "min": 5, "max": 30,
                                        "to": [grower_email]}]}
        path = write_settings_file(root / "config.py", values)
        settings = load(path, env={})
        broker = start_broker(path)
        notifier = Notifier(settings)
        notifier.start()
        try:
            assert notifier.subscribed.wait(10), broker.log_tail()
            yield Hub(settings, broker, notifier, smtp, controller_key, grower_email)
        finally:
            notifier.stop()
            notifier.store.close()
            broker.stop()


def _publish_values(hub: Hub, values: list[float]) -> None:
    c = mqtt_client(hub.broker, hub.controller_key)
    assert c.connected.is_set(), hub.broker.log_tail()
    try:
        for v in values:
            assert c.publish(CONTROLLER, wire.update_message("temperature", v)) == 0
    finally:
        c.close()


def test_a_value_out_of_range_sends_one_email(tmp_path: Path) -> None:
    with hub_with_alerts(tmp_path, Level.WRITE) as hub:
        router = hub.notifier.extensions
        assert router.active and set(router.handlers) == {"update_sequence"}
        _publish_values(hub, [20.0, 35.5, 36.0])  # in, out (an email), still out (none)
        mails = hub.smtp.wait(1)
        assert len(mails) == 1, hub.broker.log_tail()
        assert mails[0].rcpt_tos == [hub.grower]
        assert mails[0].message["Subject"] == "[hub] acme/pi-01/temperature is out of range"
        assert "35.5, outside [5, 30]" in str(mails[0].message.get_payload())
        _publish_values(hub, [12.0, 2.0])  # back in range, then out below: the next email
        mails = hub.smtp.wait(2)
        assert len(mails) == 2 and "2.0, outside [5, 30]" in str(mails[1].message.get_payload())
        assert wait_for(lambda: router.stats.handled == 5) and hub.notifier.wait_idle()
        assert router.stats.failed == 0 and hub.notifier.stats.requests == 2 and len(hub.smtp.mails) == 2


def test_what_the_extension_publishes_goes_through_the_access_rule(tmp_path: Path, caplog: Any) -> None:
    # the bot's key may only read the folder: the broker refuses its send_email
    with hub_with_alerts(tmp_path, Level.READ) as hub:
        router = hub.notifier.extensions
        _publish_values(hub, [40.0])
        assert wait_for(lambda: router.stats.failed == 1), router.stats
        assert router.stats.handled == 0 and hub.notifier.stats.requests == 0 and hub.smtp.mails == []
        assert "extension threshold_alerts may not publish to acme/pi-01: the broker said Not authorized" \
            in caplog.text
