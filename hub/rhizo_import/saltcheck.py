"""`run.py --check-rhizo-key KEY`: is RHIZO_SALT rhizo-server's SALT? A stored hash cannot
tell without a key that made it, so the operator gives one (any controller's or user's
rhizo key). Checked against the hub's imported keys, or, with `--import-rhizo URL`,
against the source's before anything is imported (a wrong salt then stops the import).
Nothing is changed: a bcrypt-kept key is checked but not upgraded here."""

from __future__ import annotations

from sqlalchemy import select

from hub.errors import BadRequest
from hub.rhizo_import import keys as rhizo_keys
from hub.rhizo_import import source
from hub.storage.models import RhizoKey
from hub.storage.store import Store


def _matches(key: str, salt: str, stored: list[str]) -> bool:
    return any(rhizo_keys.fast_match(key, salt, h) or rhizo_keys.slow_match(key, salt, h) for h in stored)


def check(key: str, salt: str, *, store: Store | None = None, source_url: str = "") -> str:
    """A line saying that `key` matches under `salt`, else BadRequest saying why not."""
    if not salt:
        raise BadRequest("RHIZO_SALT is not set: set it to rhizo-server's SALT setting")
    part = rhizo_keys.key_part(key)
    if source_url:
        with source.open_source(source_url) as conn:
            stored = [k.key_hash for k in source.keys(conn) if k.key_part == part]
        where = "the rhizo-server database"
    else:
        assert store is not None
        with store.session() as s:
            stored = list(s.scalars(select(RhizoKey.key_hash).where(RhizoKey.key_part == part)))
        where = "the hub's imported rhizo keys"
    if not stored:
        raise BadRequest(f"no key in {where} starts with {key[:3]} and ends with {key[-3:]}: "
                         "give a key rhizo-server issued")
    if not _matches(key, salt, stored):
        raise BadRequest(f"the key does not match under RHIZO_SALT ({len(stored)} key(s) in {where} share its "
                         "first and last characters): RHIZO_SALT is not rhizo-server's SALT, or the key is mistyped")
    return f"the key matches in {where}: RHIZO_SALT is rhizo-server's SALT"
