"""The broker fixture itself: the real plugin accepts a key and the service passwords."""

from __future__ import annotations

from hub import credentials
from hub.storage import keys, resources, users
from hub.storage.db import Database
from tests.support.broker import RunningBroker, mqtt_client


def test_fixture_broker_accepts_key_and_service_users(broker: RunningBroker) -> None:
    db = Database(broker.settings.database_url)
    with db.session() as s:
        users.create_organization(s, "acme")
        resources.create(s, "acme/pi-01", "controller")
        _, key = keys.create(s, controller_path="acme/pi-01")
    db.dispose()
    broker.sync()
    secret = broker.settings.SECRET_KEY
    clients = []
    try:
        c = mqtt_client(broker, key)
        clients.append(c)
        assert c.connected.is_set(), broker.log_tail()
        for name in (credentials.PERSISTER_USERNAME, credentials.SERVICE_USERNAME):
            c = mqtt_client(broker, credentials.service_password(secret, name), username=name)
            clients.append(c)
            assert c.connected.is_set(), broker.log_tail()
        bad = mqtt_client(broker, credentials.service_password(secret, "other"),
                          username=credentials.SERVICE_USERNAME)
        clients.append(bad)
        assert not bad.connected.is_set()
    finally:
        for c in clients:
            c.close()
