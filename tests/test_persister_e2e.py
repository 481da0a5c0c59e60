"""End to end: a controller publishes through the real broker (with the real plugin),
the persister subprocess stores; real SQLite / PostgreSQL / S3."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from hub.controller import Controller
from hub.storage import resources, revisions, values
from hub.storage.db import Database
from hub.storage.models import Revision
from tests.fixtures.persister import controller_key


def wait_count(db: Database, n: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with db.session() as s:
            got = s.scalar(select(func.count()).select_from(Revision))
        if got >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_controller_update_is_stored(broker, persister):
    folder, key = controller_key(broker)
    db = Database(broker.settings.database_url)
    with Controller(key, folder, port=broker.port) as c:
        ts = c.timestamp()
        c.update("temp", 21.5, ts)
        assert c.flush(5)
    assert wait_count(db, 1) == 1
    with db.session() as s:
        r = resources.get(s, f"{folder}/temp")
        rev = revisions.latest(s, r)
        assert rev.num == 21.5 and rev.timestamp_us == values.parse_timestamp(ts)
