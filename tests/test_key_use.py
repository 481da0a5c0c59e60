"""API key use (time and address, at most once a minute per key): recorded by the HTTP
server on authentication and by the broker plugin on connect (hub/broker_auth/keyuse.py),
shown by GET /api/v1/keys."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy.exc import OperationalError

from hub.broker_auth.keyuse import KeyUse
from hub.storage import keys, users
from hub.storage.db import Database
from hub.storage.models import ApiKey, utcnow
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support.broker import RunningBroker, mqtt_client


def _key(db: Database) -> str:
    with db.session() as s:
        u = users.create_user(s, "someone@example.com", "a long password here", rounds=4)
        return keys.create(s, user_id=u.id, name="k")[0].prefix


def _row(db: Database, prefix: str) -> ApiKey:
    with db.session() as s:
        return keys.get(s, prefix)


def test_record_uses_moves_forward_only(db: Database) -> None:
    prefix = _key(db)
    now = utcnow()
    with db.session() as s:
        assert keys.record_uses(s, {prefix: (now, "192.0.2.7"), "nosuchkey": (now, "x")}) == 1
    row = _row(db, prefix)
    assert (row.last_used_at, row.last_used_from) == (now, "192.0.2.7")
    with db.session() as s:  # an older use (a late batch) does not overwrite a newer one
        keys.record_uses(s, {prefix: (now - timedelta(minutes=5), "198.51.100.1")})
    assert _row(db, prefix).last_used_from == "192.0.2.7"
    with db.session() as s:
        keys.record_uses(s, {prefix: (now + timedelta(minutes=2), "2001:db8::1" + "0" * 80)})
    assert _row(db, prefix).last_used_from == ("2001:db8::1" + "0" * 80)[:64]


def test_noted_once_a_minute_and_written_in_batches(db: Database) -> None:
    prefix = _key(db)
    use = KeyUse(flush_seconds=3600)
    use.seen(prefix, "192.0.2.1")
    use.seen(prefix, "192.0.2.2")  # within the minute: not noted again
    assert use.flush(db, force=True) == 1
    assert _row(db, prefix).last_used_from == "192.0.2.1"
    use.seen(prefix, "192.0.2.3")
    assert use.flush(db) == 0 and use.flush(db, force=True) == 0  # still within the minute
    use = KeyUse(interval=0.0, flush_seconds=3600)  # a minute later, as it were
    use.seen(prefix, "192.0.2.4")
    assert use.flush(db) == 1 and _row(db, prefix).last_used_from == "192.0.2.4"
    use.seen(prefix, "192.0.2.5")
    assert use.flush(db) == 0  # not due yet: batches, not a write per connect
    assert use.flush(db, force=True) == 1


def test_a_failed_write_keeps_the_uses(tmp_path: Any) -> None:
    from hub.storage.db import migrate

    url = f"sqlite:///{tmp_path / 'k.db'}"
    migrate(url)
    db = Database(url)
    prefix = _key(db)
    use = KeyUse()
    use.seen(prefix, "192.0.2.9")
    with db.engine.begin() as c:
        c.exec_driver_sql("ALTER TABLE api_keys RENAME TO api_keys_away")
    with pytest.raises(OperationalError, match="api_keys"):
        use.flush(db, force=True)
    with db.engine.begin() as c:
        c.exec_driver_sql("ALTER TABLE api_keys_away RENAME TO api_keys")
    assert use.flush(db, force=True) == 1 and _row(db, prefix).last_used_from == "192.0.2.9"
    db.dispose()


def test_http_records_time_and_address(http_server_factory: Any) -> None:
    srv = http_server_factory()
    people = seed_people(srv.settings)
    admin = people.auth("admin")
    assert requests.get(srv.api("/me"), headers={**people.auth("member"), "X-Forwarded-For": "203.0.113.5"},
                        timeout=30).status_code == 200
    listed = requests.get(srv.api(f"/keys?user_id={people.users['member']}"), headers=admin, timeout=30).json()
    used = [k for k in listed["keys"] if k["prefix"] == people.keys["member"].split("_")[1]][0]
    assert used["last_used_at"] is not None and used["last_used_from"] == "203.0.113.5"


@pytest.fixture
def stack(broker: RunningBroker) -> Any:
    with start_http_server(broker.settings, broker.settings_path) as srv:
        people = seed_people(srv.settings)
        broker.sync()
        yield srv, people, broker


def _controller_key(srv: RunningHttp, people: People) -> dict[str, Any]:
    prefix = people.keys["controller"].split("_")[1]
    listed = requests.get(srv.api(f"/keys?controller={people.controller}"), headers=people.auth("orgadmin"),
                          timeout=30).json()
    return [k for k in listed["keys"] if k["prefix"] == prefix][0]


def test_mqtt_connect_records_the_key_use(stack: tuple[RunningHttp, People, RunningBroker]) -> None:
    srv, people, broker = stack
    assert _controller_key(srv, people)["last_used_at"] is None
    client = mqtt_client(broker, people.keys["controller"], username=people.controller)
    try:
        assert client.connected.is_set(), broker.log_tail()
        deadline = time.monotonic() + 30  # the plugin writes uses every couple of seconds
        while (k := _controller_key(srv, people))["last_used_at"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert k["last_used_at"] is not None, broker.log_tail()
        assert k["last_used_from"] == "127.0.0.1"
        first = k["last_used_at"]
    finally:
        client.close()
    again = mqtt_client(broker, people.keys["controller"], username=people.controller)  # within the minute
    member = mqtt_client(broker, people.keys["member"])  # then another key: same batch or a later one
    again.close()
    member.close()
    assert member.connected.is_set(), broker.log_tail()
    prefix = people.keys["member"].split("_")[1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = requests.get(srv.api(f"/keys?user_id={people.users['member']}"), headers=people.auth("admin"),
                              timeout=30).json()["keys"]  # (not with the member's key: that is a use too)
        if [k for k in listed if k["prefix"] == prefix and k["last_used_from"] == "127.0.0.1"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the member key's MQTT use was not recorded: {listed}")
    assert _controller_key(srv, people)["last_used_at"] == first  # the reconnect was not written
