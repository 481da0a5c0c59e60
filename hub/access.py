"""The access rule, in one pure function.

Who may do what on a path. Used by the broker plugin (on its in-memory
snapshot), the HTTP server and the persister (through
`hub.storage.access`, which loads the grants for one path). No I/O here.

Rules, highest wins:
- a system admin has ADMIN everywhere;
- an organization admin has ADMIN on that organization's tree;
- a controller has WRITE (which includes READ) on its own folder and below;
- a permission on a folder applies to that folder and everything below it,
  to its user, to every member of its organization, or to its controller.
Plain membership grants nothing by itself: access comes from permissions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.paths import is_within
from hub.storage.models import Level, Role


@dataclass(frozen=True)
class Subject:
    """Who is asking: a user (by session, key or token) or a controller key."""

    user_id: int | None = None
    is_admin: bool = False
    memberships: Mapping[int, str] = field(default_factory=dict)  # organization id -> role
    controller_id: int | None = None
    controller_path: str | None = None
    key_prefix: str | None = None  # the API key used, if any (for logs)

    @property
    def label(self) -> str:
        if self.controller_path:
            return f"controller {self.controller_path}"
        return f"user {self.user_id}"


@dataclass(frozen=True)
class Grant:
    """A permission row, with the path of the resource it is on."""

    path: str
    level: int
    user_id: int | None = None
    organization_id: int | None = None
    controller_id: int | None = None


def grant_applies(subject: Subject, grant: Grant) -> bool:
    if grant.user_id is not None:
        return subject.user_id is not None and grant.user_id == subject.user_id
    if grant.controller_id is not None:
        return grant.controller_id == subject.controller_id
    if grant.organization_id is not None:
        return subject.controller_id is None and grant.organization_id in subject.memberships
    return False


def resolve(subject: Subject, path: str, organization_id: int | None,
            grants: Iterable[Grant]) -> Level:
    """The subject's level on `path` (canonical), given the grants on it and
    its ancestors (others are ignored)."""
    if subject.is_admin:
        return Level.ADMIN
    if organization_id is not None and subject.memberships.get(organization_id) == Role.ADMIN.value:
        return Level.ADMIN
    best = Level.NONE
    if subject.controller_path and is_within(path, subject.controller_path):
        best = Level.WRITE
    for g in grants:
        if g.level > best and is_within(path, g.path) and grant_applies(subject, g):
            best = Level(g.level)
    return best
