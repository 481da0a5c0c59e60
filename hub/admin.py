"""The admin commands behind run.py (each returns an exit status)."""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest
from hub.settings import Settings
from hub.storage import controllers, keys, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import ResourceType


def _db(s: Settings) -> Database:
    return Database(s.database_url, dotless_folders=s.BROKER == "rabbitmq")


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
    with _db(s).session() as sess:
        owner, description = _key_owner(sess, "--create-key", user, controller)
        row, secret = keys.create(sess, **owner, name="run.py")
    print(f"key {row.prefix} for {description} (shown once, store it now):\n{secret}")
    return 0


def import_key(s: Settings, key: str, *, user: str | None, controller: str | None) -> int:
    """An existing rhizo-format key, for --user EMAIL or --controller PATH (created if missing)."""
    with _db(s).session() as sess:
        owner, description = _key_owner(sess, "--import-key", user, controller)
        row = keys.import_key(sess, key, **owner, name="imported with run.py")
    print(f"imported key {row.prefix} for {description}; devices holding it can connect now")
    return 0


def _key_owner(sess: Session, command: str, user: str | None,
               controller: str | None) -> tuple[dict[str, Any], str]:
    """(keyword for `keys.create` / `keys.import_key`, words for the owner) of --user EMAIL
    or --controller PATH (the controller folder is created if missing)."""
    if (user is None) == (controller is None):
        raise BadRequest(f"{command} needs exactly one of --user EMAIL or --controller PATH")
    if user is not None:
        u = users.find_user_by_email(sess, user)
        if u is None:
            raise BadRequest(f"no user {user}: create it first (--create-admin, or the HTTP API)")
        return {"user_id": u.id}, f"user {u.email}"
    path = paths.normalize(controller or "")
    _ensure_controller(sess, path)
    return {"controller_path": path}, f"controller /{path}"


def _ensure_controller(sess: Session, path: str) -> None:
    """The controller folder at `path`, with any missing folders between it and its
    organization (which must exist)."""
    chain = paths.ancestors(path)
    if resources.find(sess, chain[0]) is None:
        raise BadRequest(f"no organization {chain[0]}: create it first (--create-org {chain[0]})")
    for folder in chain[1:-1]:
        if resources.find(sess, folder) is None:
            resources.create(sess, folder, ResourceType.FOLDER.value)
    if resources.find(sess, path) is None:
        resources.create(sess, path, ResourceType.CONTROLLER.value)
        controllers.ensure_status_folder(sess, path)


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


def import_rhizo(s: Settings, source_url: str, bulk_url: str) -> int:
    """A rhizo-server database (and its bulk storage) into this hub (hub/rhizo_import/)."""
    from hub import checks
    from hub.rhizo_import import importer
    from hub.storage.store import Store

    checks.database(s)  # a hub schema that is current, or a clear error before anything is read
    store = Store.from_settings(s)
    try:
        summary = importer.run(store, source_url, bulk_url=bulk_url, bulk_endpoint_url=s.S3_ENDPOINT_URL,
                               bulk_region=s.S3_REGION, progress=sys.stderr)
    finally:
        store.close()
    for line in importer.describe(summary):
        print(line)
    if not s.RHIZO_SALT and summary.created["keys"] + summary.created["users"]:
        print("set RHIZO_SALT to rhizo-server's SALT setting: until then imported keys and passwords do not work")
    return 0


def check_rhizo_key(s: Settings, key: str, source_url: str) -> int:
    """Does `key` match under RHIZO_SALT (hub/rhizo_import/saltcheck.py)? rc 2 if not."""
    from hub.rhizo_import import saltcheck
    from hub.storage.store import Store

    if source_url:
        print(saltcheck.check(key, s.RHIZO_SALT, source_url=source_url))
        return 0
    store = Store.from_settings(s)
    try:
        print(saltcheck.check(key, s.RHIZO_SALT, store=store))
    finally:
        store.close()
    return 0


def check(s: Settings) -> int:
    """Reach every dependency; print one line each; non-zero if any failed (hub/checks.py)."""
    from hub import checks

    return checks.run(s)
