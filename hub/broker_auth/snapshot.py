"""What the plugin knows about keys, users, folders and permissions: an immutable
in-memory copy of the access-relevant tables, loaded in one read transaction.

The broker thread only ever reads a `Snapshot`; a background thread builds the next one
(`load`) when `hub.storage.changes.latest()` moves, and the broker swaps it in on tick.
Levels are computed with `hub.access.resolve`, the same rule the HTTP API uses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.access import Grant, Subject, resolve
from hub.broker_auth import rhizo_keys
from hub.storage import changes, sessions
from hub.storage.models import ApiKey, Level, Membership, Permission, Resource, ResourceType, User

FOLDER_TYPES = tuple(t.value for t in ResourceType if t.is_folder)
CONTROLLER = ResourceType.CONTROLLER.value


# Entries are NamedTuples: a reload builds tens of thousands of them, and a tuple is the
# cheapest object to make (the reload runs in the broker, competing for the GIL).
class KeyEntry(NamedTuple):
    prefix: str
    secret_hash: str
    user_id: int | None
    controller_id: int | None


class UserEntry(NamedTuple):
    is_admin: bool
    memberships: Mapping[int, str]  # organization id -> role


class Folder(NamedTuple):
    id: int
    organization_id: int | None
    type: str


@dataclass(frozen=True)
class Snapshot:
    change_id: int = 0
    keys: Mapping[str, KeyEntry] = field(default_factory=dict)  # live keys by prefix
    users: Mapping[int, UserEntry] = field(default_factory=dict)  # live users by id
    folders: Mapping[str, Folder] = field(default_factory=dict)  # live folders by path
    controllers: Mapping[int, str] = field(default_factory=dict)  # controller folder id -> path
    grants: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)  # by folder path
    ended_sessions: frozenset[str] = frozenset()  # browser sessions logged out (their tokens end too)
    rhizo_keys: rhizo_keys.Hashes = field(default_factory=dict)  # imported rhizo-server keys (rhizo_keys.py)

    # -- subjects -----------------------------------------------------------
    def user_subject(self, user_id: int, key_prefix: str | None = None) -> Subject | None:
        u = self.users.get(user_id)
        if u is None:
            return None
        return Subject(user_id=user_id, is_admin=u.is_admin, memberships=u.memberships,
                       key_prefix=key_prefix)

    def key_subject(self, key: KeyEntry) -> Subject | None:
        """The subject a live key acts as, or None when its owner is gone."""
        if key.controller_id is not None:
            path = self.controllers.get(key.controller_id)
            if path is None:
                return None
            return Subject(controller_id=key.controller_id, controller_path=path, key_prefix=key.prefix)
        if key.user_id is None:
            return None
        return self.user_subject(key.user_id, key.prefix)

    # -- access -------------------------------------------------------------
    def level(self, subject: Subject, path: str) -> Level:
        """The subject's level on the existing folder `path`; NONE if no such folder."""
        folder = self.folders.get(path)
        if folder is None:
            return Level.NONE
        grants: list[Grant] = []
        start = 0
        while True:
            end = path.find("/", start)
            grants.extend(self.grants.get(path if end == -1 else path[:end], ()))
            if end == -1:
                break
            start = end + 1
        return resolve(subject, path, folder.organization_id, grants)


def load(s: Session) -> Snapshot:
    """Read every access-relevant row (call inside one transaction)."""
    change_id = changes.latest(s)
    keys = _live_keys(s)
    roles: dict[int, dict[int, str]] = {}
    for member_id, member_org, role in s.execute(
            select(Membership.user_id, Membership.organization_id, Membership.role)):
        roles.setdefault(member_id, {})[member_org] = role
    users = {
        uid: UserEntry(bool(is_admin), roles.get(uid, {}))
        for uid, is_admin in s.execute(select(User.id, User.is_admin).where(~User.deleted))
    }
    folders: dict[str, Folder] = {}
    controllers: dict[int, str] = {}
    for rid, fpath, folder_org, rtype in s.execute(
            select(Resource.id, Resource.path, Resource.organization_id, Resource.type)
            .where(~Resource.deleted, Resource.type.in_(FOLDER_TYPES))):
        folders[fpath] = Folder(rid, folder_org, rtype)
        if rtype == CONTROLLER:
            controllers[rid] = fpath
    grants: dict[str, list[Grant]] = {}
    for path, level, user_id, org_id, controller_id in s.execute(
            select(Resource.path, Permission.level, Permission.user_id, Permission.organization_id,
                   Permission.controller_id)
            .join(Resource, Resource.id == Permission.resource_id)
            .where(~Resource.deleted)):
        grants.setdefault(path, []).append(Grant(path, int(level), user_id, org_id, controller_id))
    return Snapshot(change_id=change_id, keys=keys, users=users, folders=folders,
                    controllers=controllers, grants={p: tuple(g) for p, g in grants.items()},
                    ended_sessions=sessions.ended_nonces(s), rhizo_keys=rhizo_keys.load_hashes(s))


def _live_keys(s: Session, prefixes: Collection[str] | None = None) -> dict[str, KeyEntry]:
    """The unrevoked keys by prefix (of `prefixes` only, if given)."""
    q = select(ApiKey.prefix, ApiKey.secret_hash, ApiKey.user_id, ApiKey.controller_id) \
        .where(ApiKey.revoked_at.is_(None))
    if prefixes is not None:
        q = q.where(ApiKey.prefix.in_(prefixes))
    return {prefix: KeyEntry(prefix, secret_hash, user_id, controller_id)
            for prefix, secret_hash, user_id, controller_id in s.execute(q)}


PATCHABLE = {"key", "session"}  # changes `patched` applies; any other kind needs a whole `load`


def patched(snap: Snapshot, s: Session, changed: Sequence[tuple[int, str, str]]) -> Snapshot | None:
    """`snap` with what `changed` (id, kind, subject) touched read anew, when only keys
    (subject: the prefix) and log-outs changed: a few rows instead of a whole reload
    (0.2 s and more for a large hub). None: `load` everything."""
    if not changed or any(kind not in PATCHABLE for _, kind, _ in changed):
        return None
    keys = dict(snap.keys)
    prefixes = {subject for _, kind, subject in changed if kind == "key"}
    if prefixes:
        for prefix in prefixes:
            keys.pop(prefix, None)
        keys.update(_live_keys(s, prefixes))
    ended = sessions.ended_nonces(s) if any(kind == "session" for _, kind, _ in changed) else snap.ended_sessions
    return replace(snap, change_id=changed[-1][0], keys=keys, ended_sessions=ended)
