"""The admin commands behind run.py (each returns an exit status)."""

from __future__ import annotations

import socket
import sys

from hub import paths
from hub.errors import BadRequest, HubError
from hub.settings import Settings
from hub.storage import keys, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import ResourceType


def _db(s: Settings) -> Database:
    return Database(s.database_url)


def init_db(s: Settings) -> int:
    migrate(s.database_url)
    print(f"database ready: {Database(s.database_url).safe_url}")
    return 0


def create_admin(s: Settings, email: str, password: str) -> int:
    db = _db(s)
    with db.session() as sess:
        u = users.create_user(sess, email, password, rounds=s.PASSWORD_HASH_ROUNDS,
                              min_length=s.MIN_PASSWORD_LENGTH, is_admin=True)
    print(f"system admin {u.email} created (id {u.id})")
    return 0


def create_org(s: Settings, name: str) -> int:
    with _db(s).session() as sess:
        org = users.create_organization(sess, name)
    print(f"organization {org.name} created, with folder /{org.name}")
    return 0


def create_key(s: Settings, *, user: str | None, controller: str | None) -> int:
    if (user is None) == (controller is None):
        raise BadRequest("--create-key needs exactly one of --user EMAIL or --controller PATH")
    with _db(s).session() as sess:
        if user is not None:
            u = users.find_user_by_email(sess, user)
            if u is None:
                raise BadRequest(f"no user {user}: create it first (--create-admin, or the HTTP API)")
            row, secret = keys.create(sess, user_id=u.id, name="run.py")
            owner = f"user {u.email}"
        else:
            path = paths.normalize(controller or "")
            if resources.find(sess, path) is None:
                resources.create(sess, path, ResourceType.CONTROLLER.value)
            row, secret = keys.create(sess, controller_path=path, name="run.py")
            owner = f"controller /{path}"
    print(f"key {row.prefix} for {owner} (shown once, store it now):\n{secret}")
    return 0


def revoke_key(s: Settings, prefix: str) -> int:
    with _db(s).session() as sess:
        keys.revoke(sess, prefix)
    print(f"key {prefix} revoked; live MQTT connections using it are closed within seconds")
    return 0


def export_org(s: Settings, org: str, path: str) -> int:
    from hub import transfer
    from hub.storage.store import Store

    store = Store.from_settings(s)
    try:
        c = transfer.export_org(store, org, path, progress=sys.stderr)
    finally:
        store.close()
    print(f"exported {org}: {c['resources']} resources, {c['revisions']} revisions, "
          f"{c['permissions']} permissions to {path}", file=sys.stderr if path == "-" else sys.stdout)
    return 0


def import_org(s: Settings, path: str) -> int:
    from hub import transfer
    from hub.storage.store import Store

    store = Store.from_settings(s)
    try:
        c = transfer.import_org(store, path, progress=sys.stderr)
    finally:
        store.close()
    print(f"imported {c['organization']}: {c['resources']} resources, {c['revisions']} revisions, "
          f"{c['permissions']} permissions; create new API keys for its controllers (keys are not exported)")
    return 0


def check(s: Settings) -> int:
    """Reach every dependency; print one line each; non-zero if any failed."""
    from hub.storage.bulk import open_bulk

    failures = 0

    def report(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        nonlocal failures
        try:
            detail = fn()
            print(f"ok    {name}: {detail}")
        except (HubError, OSError, Exception) as e:  # noqa: BLE001 - we report whatever it is
            failures += 1
            print(f"FAIL  {name}: {getattr(e, 'message', e)}")

    def database() -> str:
        db = _db(s)
        from sqlalchemy import text

        try:
            with db.engine.connect() as c:
                c.execute(text("SELECT 1"))
                head = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception as e:
            raise HubError(f"{db.safe_url}: {str(getattr(e, 'orig', e)).strip().splitlines()[0]} "
                           "(is the database running? run `run.py --init-db` for a new one)") from e
        return f"{db.safe_url} (schema {head})"

    def bulk() -> str:
        open_bulk(s.bulk_storage_url, endpoint_url=s.S3_ENDPOINT_URL, region=s.S3_REGION).check()
        return s.bulk_storage_url

    def broker() -> str:
        try:
            with socket.create_connection((s.MQTT_HOST, s.MQTT_PORT), timeout=3):
                return f"{s.MQTT_HOST}:{s.MQTT_PORT} accepts connections"
        except OSError as e:
            raise HubError(f"cannot reach Mosquitto at {s.MQTT_HOST}:{s.MQTT_PORT} ({e.strerror or e}); "
                           "is it running? plain `run.py` starts it") from None

    report("settings", lambda: "loaded")
    report("database", database)
    report("bulk storage", bulk)
    report("broker", broker)
    return 1 if failures else 0
