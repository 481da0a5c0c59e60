"""API keys: create (secret returned once), revoke, verify."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from hub import credentials
from hub.access import Subject
from hub.errors import BadRequest, Conflict, NotFound, Unauthenticated
from hub.rhizo_import import keys as rhizo_keys
from hub.storage import changes, resources, users
from hub.storage.models import ApiKey, ResourceType, User, utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


def create(s: Session, *, user_id: int | None = None, controller_path: str | None = None,
           created_by: int | None = None, name: str = "") -> tuple[ApiKey, str]:
    """A key for a user or for a controller folder. Returns (row, secret)."""
    if (user_id is None) == (controller_path is None):
        raise BadRequest("a key belongs to exactly one of: a user, a controller folder")
    controller = org_id = None
    if controller_path is not None:
        controller = resources.get(s, controller_path, type=ResourceType.CONTROLLER.value)
        org_id = controller.organization_id
    else:
        users.get_user(s, user_id)  # type: ignore[arg-type]
    new = credentials.new_key()
    row = ApiKey(prefix=new.prefix, secret_hash=new.secret_hash, name=name[:100], user_id=user_id,
                 controller_id=controller.id if controller else None, organization_id=org_id,
                 created_by=created_by)
    s.add(row)
    s.flush()
    changes.record(s, "key", new.prefix)
    return row, new.key


def import_key(s: Session, key: str, *, user_id: int | None = None, controller_path: str | None = None,
               created_by: int | None = None, name: str = "imported") -> ApiKey:
    """Store an existing key in rhizo-server's text format (`credentials.is_imported_key`)
    for a user or a controller folder, so the devices that hold it keep working."""
    if not credentials.is_imported_key(key):
        raise BadRequest("not an importable key: 40-100 letters, digits, '_' or '-' (rhizo-server's key "
                         "prefix and 50 characters); hub keys (hk_...) are made with --create-key")
    if (user_id is None) == (controller_path is None):
        raise BadRequest("a key belongs to exactly one of: a user, a controller folder")
    prefix = credentials.imported_prefix(key)
    if s.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is not None:
        raise Conflict(f"this key is already imported (prefix {prefix})")
    controller = resources.get(s, controller_path, type=ResourceType.CONTROLLER.value) if controller_path else None
    if user_id is not None:
        users.get_user(s, user_id)
    row = ApiKey(prefix=prefix, secret_hash=credentials.hash_key(key), name=name[:100], user_id=user_id,
                 controller_id=controller.id if controller else None,
                 organization_id=controller.organization_id if controller else None, created_by=created_by)
    s.add(row)
    s.flush()
    changes.record(s, "key", prefix)
    return row


def get(s: Session, prefix: str) -> ApiKey:
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"no key with prefix {prefix}")
    return row


def revoke(s: Session, prefix: str, *, by_user_id: int | None = None) -> ApiKey:
    row = get(s, prefix)
    if row.revoked_at is not None:
        raise Conflict(f"key {prefix} is already revoked")
    row.revoked_at, row.revoked_by = utcnow(), by_user_id
    changes.record(s, "key", prefix)
    return row


def verify(s: Session, key: str, *, rhizo_salt: str = "", address: str | None = None) -> ApiKey:
    """The live key row for a presented key, else Unauthenticated. Does not
    say which check failed (the log may, with the prefix only). With `rhizo_salt`, keys
    brought over by `run.py --import-rhizo` are checked too (`hub.rhizo_import.keys`; slow
    the first time for a key rhizo kept as bcrypt: call it off the event loop). Records
    the use (time and `address`) at most once per LAST_USED_RESOLUTION."""
    prefix = credentials.key_prefix(key)
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    if row is None and rhizo_salt:
        row = rhizo_keys.verify(s, key, rhizo_salt)
        matched = row is not None
    else:
        matched = row is not None and credentials.key_matches(key, row.secret_hash)
    if row is None or not matched or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API key")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at, row.last_used_from = now, (address or None) and address[:64]
    return row


def record_uses(s: Session, uses: Mapping[str, tuple[datetime, str | None]]) -> int:
    """Record key uses seen elsewhere (the broker's connects): {prefix: (when, address)},
    one statement for the batch. A use older than the one recorded is ignored."""
    if not uses:
        return 0
    stmt = (update(ApiKey)
            .where(ApiKey.prefix == bindparam("p"),
                   or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < bindparam("t")))
            .values(last_used_at=bindparam("t"), last_used_from=bindparam("a"))
            .execution_options(synchronize_session=False))
    rows = [{"p": prefix, "t": when, "a": (address or None) and address[:64]}
            for prefix, (when, address) in uses.items()]
    return s.connection().execute(stmt, rows).rowcount


def subject_for_key(s: Session, row: ApiKey) -> Subject:
    if row.controller_id is not None:
        controller = s.get(resources.Resource, row.controller_id)
        if controller is None or controller.deleted:
            raise Unauthenticated("the key's controller folder was deleted")
        return Subject(controller_id=controller.id, controller_path=controller.path, key_prefix=row.prefix)
    u = s.get(User, row.user_id)
    if u is None or u.deleted:
        raise Unauthenticated("the key's user was deleted")
    return users.subject_for_user(s, u, key_prefix=row.prefix)


def list_keys(s: Session, *, user_id: int | None = None, controller_ids: list[int] | None = None,
              include_revoked: bool = True) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    if user_id is not None:
        q = q.where(ApiKey.user_id == user_id)
    if controller_ids is not None:
        q = q.where(ApiKey.controller_id.in_(controller_ids))
    if not include_revoked:
        q = q.where(ApiKey.revoked_at.is_(None))
    return list(s.scalars(q))
