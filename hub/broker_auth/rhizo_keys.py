"""Keys brought over from rhizo-server (`run.py --import-rhizo`), checked on the broker's
thread the fast way only: the key's `key_part` finds its candidates in the snapshot, one
SHA-512 (`hub.rhizo_import.keys.fast_match`) tells which one it is. A key rhizo still kept
as bcrypt is refused here with a reason; the HTTP API checks it once (in a worker thread)
and stores the fast hash, the plugin reloads, and the key connects from then on.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.rhizo_import import keys as rhizo
from hub.storage.models import ApiKey, RhizoKey

# key_part -> ((prefix, stored hash), ...) of the unrevoked imported keys
Hashes = Mapping[str, tuple[tuple[str, str], ...]]


def load_hashes(s: Session) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for part, prefix, stored in s.execute(
            select(RhizoKey.key_part, RhizoKey.prefix, RhizoKey.key_hash)
            .join(ApiKey, ApiKey.prefix == RhizoKey.prefix).where(ApiKey.revoked_at.is_(None))):
        out.setdefault(part, []).append((prefix, stored))
    return {part: tuple(c) for part, c in out.items()}


def find(hashes: Hashes, password: str, salt: str) -> tuple[str | None, str]:
    """(prefix of the imported key `password` is, None) or (None, why not)."""
    candidates = hashes.get(rhizo.key_part(password), ()) if rhizo.is_imported_key_text(password) else ()
    for prefix, stored in candidates:
        if rhizo.fast_match(password, salt, stored):
            return prefix, ""
    if any(rhizo.is_bcrypt(stored) for _, stored in candidates):
        return None, ("a rhizo-server key not checked yet (rhizo kept it as bcrypt) or a wrong one: use it "
                      "once with the HTTP API, then connect again")
    return None, "unknown or revoked key"
