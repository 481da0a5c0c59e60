"""Writing rhizo-server's users, tree, memberships, permissions, keys and controller
status into the hub, inside the caller's transaction, through the storage layer.

Everything is found again by its natural key before it is created (an organization by
name, a user by email, a resource by path, a key by the prefix derived from its rhizo
id, a permission by resource and subject), so a second run creates nothing and an
interrupted one (rolled back) can simply be run again. What the hub already has is
left as it is; a path that exists with another type stops the import.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import cast
from zoneinfo import available_timezones

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.errors import BadRequest, Conflict, Unprocessable
from hub.rhizo_import import keys as rhizo_keys
from hub.rhizo_import import mapping
from hub.rhizo_import.source import SrcKey, SrcResource, SrcStatus, SrcUser
from hub.storage import changes, controllers, resources, users
from hub.storage.models import (
    ApiKey,
    ControllerStatus,
    Membership,
    Organization,
    Permission,
    Resource,
    ResourceType,
    RhizoKey,
    Role,
    Sequence,
    User,
    utcnow,
)

MAX_NOTES = 20


@dataclass
class Summary:
    created: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # why -> how many
    notes: list[str] = field(default_factory=list)  # renamed paths and the like (the first MAX_NOTES)
    slow_keys: int = 0  # live keys rhizo still kept as bcrypt: each is checked once, at its first use

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


@dataclass
class Target:
    """An imported rhizo resource in the hub."""

    id: int
    path: str
    type: str
    org_source_id: int  # the rhizo organization (root) it belongs to
    preexisting: bool  # the hub had it before this run (its history may hold some values already)
    sequence: Sequence | None = None


class Writer:
    def __init__(self, s: Session, summary: Summary) -> None:
        self.s, self.summary = s, summary
        self.users: dict[int, int] = {}  # rhizo user id -> hub user id
        self.orgs: dict[int, int] = {}  # rhizo organization folder id -> hub organization id
        self.targets: dict[int, Target] = {}  # rhizo resource id -> hub resource
        self.names: set[str] = set()  # user names given in this run
        self.watchdogs: dict[int, tuple[object, object]] = {}  # hub controller id -> rhizo's minutes, recipients
        self.modified: dict[int, datetime] = {}  # hub resource id -> rhizo's modification time (created ones)

    # -- users --------------------------------------------------------------------
    def write_users(self, rows: list[SrcUser]) -> None:
        for u in rows:
            if u.deleted:
                self.summary.skipped["deleted users"] += 1
                continue
            try:
                email = users.normalize_email(u.email)
            except BadRequest:
                self.summary.skipped["users whose email the hub refuses"] += 1
                self.summary.note(f"user {u.id}: email {u.email!r} refused")
                continue
            found = self.s.scalar(select(User.id).where(User.email == email))
            if found is not None:
                self.users[u.id] = found
                self.summary.existing["users"] += 1
                continue
            stored = rhizo_keys.stored_password(u.password_hash or "")
            if stored == rhizo_keys.UNUSABLE_PASSWORD:
                self.summary.skipped["passwords in a format the hub cannot check (reset them)"] += 1
            attrs = mapping.json_object(u.attributes)
            row = User(email=email, password_hash=stored, full_name=(u.full_name or "")[:200],
                       is_admin=u.role == mapping.SYSTEM_ADMIN_ROLE, created_at=u.created or utcnow(),
                       user_name=self._user_name(u), attributes=json.dumps(attrs) if attrs else None)
            self.s.add(row)
            self.s.flush()
            changes.record(self.s, "user", str(row.id))
            self.users[u.id] = row.id
            self.summary.created["users"] += 1

    def _user_name(self, u: SrcUser) -> str | None:
        """rhizo's optional user name, when the hub's rules allow it and it is free."""
        if not (u.user_name or "").strip():
            return None
        try:
            name = users.normalize_user_name(u.user_name or "")
        except BadRequest:
            self.summary.skipped["user names the hub refuses (log in by email)"] += 1
            self.summary.note(f"user {u.id}: user name {u.user_name!r:.60} refused")
            return None
        if name in self.names or self.s.scalar(select(User.id).where(User.user_name == name)) is not None:
            self.summary.skipped["user names already taken (log in by email)"] += 1
            return None
        self.names.add(name)
        return name

    # -- the tree -----------------------------------------------------------------
    def write_tree(self, rows: list[SrcResource]) -> None:
        """Every live resource, parents first (rhizo's deleted ones and their subtrees,
        and its built-in apps, stay behind)."""
        children: dict[int | None, list[SrcResource]] = {}
        for r in rows:
            children.setdefault(r.parent_id, []).append(r)
        stack: list[tuple[SrcResource, Target | None]] = [(r, None) for r in reversed(children.get(None, []))]
        used: dict[int | None, set[str]] = {}
        while stack:
            src, parent = stack.pop()
            if src.deleted:
                self.summary.skipped["deleted resources (with what was below them)"] += 1
                continue
            target = self._resource(src, parent, used.setdefault(parent.id if parent else None, set()))
            if target is None:
                continue
            self.targets[src.id] = target
            if target.type in resources.FOLDER_TYPES:
                stack.extend((c, target) for c in reversed(children.get(src.id, [])))

    def _resource(self, src: SrcResource, parent: Target | None, taken: set[str]) -> Target | None:
        kind = mapping.TYPES.get(src.type)
        if kind is None:
            why = "rhizo apps (built-in pages)" if src.type == mapping.APP else "resources of unknown type"
            self.summary.skipped[why] += 1
            return None
        name = mapping.safe_name(src.name)
        if name in taken:
            name = f"{name[:90]}-{src.id}"
        taken.add(name)
        if parent is None:
            if not kind.is_folder:
                self.summary.skipped["top-level files and sequences"] += 1
                return None
            return self._organization(src, name)
        if kind == ResourceType.ORGANIZATION:
            kind = ResourceType.FOLDER
        path = f"{parent.path}/{name}"
        if name != src.name:
            self.summary.note(f"renamed {src.name!r} to {path} (the hub's path characters)")
        attrs: dict[str, object] = {}
        spec = None
        system = mapping.json_object(src.system_attributes)
        if kind == ResourceType.SEQUENCE:
            spec, attrs = mapping.sequence_spec(system)
        elif kind == ResourceType.FILE:
            attrs = mapping.file_attributes(name)
        elif src.type == mapping.REMOTE_FOLDER and isinstance(system.get("remote_path"), str):
            attrs = {"remote_path": system["remote_path"]}
        attrs = {**mapping.json_object(src.user_attributes), **attrs}  # rhizo's user-defined attributes too
        found = resources.find(self.s, path)
        if found is not None:
            if found.type != kind.value:
                raise Conflict(f"the hub already has /{path} as a {found.type} where rhizo-server has a "
                               f"{kind.value}: move or delete it, then run the import again; nothing was imported")
            self.summary.existing[kind.value + "s"] += 1
            r, preexisting = found, True
        else:
            r = resources.create(self.s, path, kind.value, attributes=attrs or None, sequence=spec)
            r.created_at = src.created or r.created_at
            if src.modified is not None:
                self.modified[r.id] = src.modified
            self.summary.created[kind.value + "s"] += 1
            preexisting = False
        if kind == ResourceType.CONTROLLER and not preexisting and system.get("watchdog_minutes"):
            self.watchdogs[r.id] = (system.get("watchdog_minutes"), system.get("watchdog_recipients"))
        seq = _detached(resources.sequence_of(self.s, r)) if kind == ResourceType.SEQUENCE else None
        return Target(r.id, path, kind.value, parent.org_source_id, preexisting, seq)

    def _organization(self, src: SrcResource, name: str) -> Target:
        org_id = self.s.scalar(select(Organization.id).where(Organization.name == name))
        if org_id is None:
            system = mapping.json_object(src.system_attributes)
            full_name = str(system.get("full_name") or name)[:200]
            org = users.create_organization(self.s, name, full_name)
            org.created_at = src.created or org.created_at
            tz = system.get("timezone")
            if isinstance(tz, str) and tz in available_timezones():
                org.timezone = tz
            elif tz:
                self.summary.skipped["organization time zones that are not tz database names"] += 1
            org_id = org.id
            self.summary.created["organizations"] += 1
        else:
            self.summary.existing["organizations"] += 1
        self.orgs[src.id] = org_id
        folder = resources.get(self.s, name)
        return Target(folder.id, name, folder.type, src.id, True)

    def restore_modified(self) -> None:
        """rhizo's modification times on the resources this run created (storing their
        history set them to now)."""
        if self.modified:
            self.s.execute(update(Resource), [{"id": k, "modified_at": v} for k, v in self.modified.items()])

    def finish_controllers(self) -> None:
        """The hub's `status/` folder for each imported controller, where the name is free."""
        for t in self.targets.values():
            if t.type == ResourceType.CONTROLLER.value:
                status = resources.find(self.s, f"{t.path}/{controllers.STATUS_FOLDER}")
                if status is None or status.type == ResourceType.FOLDER.value:
                    controllers.ensure_status_folder(self.s, t.path)

    # -- memberships, permissions -----------------------------------------------------
    def write_memberships(self, rows: list[tuple[int, int, bool]]) -> None:
        for org_source, user_source, is_admin in rows:
            org_id, user_id = self.orgs.get(org_source), self.users.get(user_source)
            if org_id is None or user_id is None:
                self.summary.skipped["memberships of a user or organization not imported"] += 1
                continue
            if self.s.scalar(select(Membership.id).where(Membership.organization_id == org_id,
                                                         Membership.user_id == user_id)) is not None:
                self.summary.existing["memberships"] += 1
                continue
            self.s.add(Membership(organization_id=org_id, user_id=user_id,
                                  role=Role.ADMIN.value if is_admin else Role.MEMBER.value))
            changes.record(self.s, "membership", f"{org_id}:{user_id}")
            self.summary.created["memberships"] += 1

    def write_permissions(self, rows: list[SrcResource]) -> None:
        have = {(p.resource_id, p.user_id, p.organization_id, p.controller_id)
                for p in self.s.scalars(select(Permission))}
        org_controllers: dict[int, list[int]] = {}
        for t in self.targets.values():
            if t.type == ResourceType.CONTROLLER.value:
                org_controllers.setdefault(t.org_source_id, []).append(t.id)
        for src in rows:
            target = self.targets.get(src.id)
            if target is None or not src.permissions:
                continue
            grants, skipped = mapping.grants(src.permissions)
            for why in skipped:
                self.summary.skipped[why] += 1
            if grants and target.type not in resources.FOLDER_TYPES:
                self.summary.skipped["permissions on files and sequences (the hub grants on folders)"] += len(grants)
                continue
            for g in grants:
                for subject in self._subjects(g, org_controllers):
                    row_key = (target.id, *subject)
                    if row_key in have:
                        self.summary.existing["permissions"] += 1
                        continue
                    have.add(row_key)
                    self.s.add(Permission(resource_id=target.id, level=int(g.level), user_id=subject[0],
                                          organization_id=subject[1], controller_id=subject[2]))
                    changes.record(self.s, "permission", target.path)
                    self.summary.created["permissions"] += 1

    def _subjects(self, g: mapping.Grant, org_controllers: dict[int, list[int]]
                  ) -> list[tuple[int | None, int | None, int | None]]:
        """(user, organization, controller) rows a rhizo grant becomes: an organization's
        controllers become one grant per controller of it."""
        if g.kind == "user" and g.source_id in self.users:
            return [(self.users[g.source_id], None, None)]
        if g.kind == "organization" and g.source_id in self.orgs:
            return [(None, self.orgs[g.source_id], None)]
        if g.kind == "controller":
            t = self.targets.get(g.source_id)
            return [(None, None, t.id)] if t is not None and t.type == ResourceType.CONTROLLER.value else []
        if g.kind == "org_controllers":
            return [(None, None, c) for c in org_controllers.get(g.source_id, [])]
        return []

    # -- keys, controller status ------------------------------------------------------
    def write_keys(self, rows: list[SrcKey]) -> None:
        for k in rows:
            prefix = rhizo_keys.prefix_for(k.id)
            if self.s.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is not None:
                self.summary.existing["keys"] += 1
                continue
            controller = self.targets.get(k.controller_id) if k.controller_id is not None else None
            user_id = self.users.get(k.user_id) if k.user_id is not None else None
            if controller is not None and controller.type != ResourceType.CONTROLLER.value:
                controller = None
            if (controller is None) == (user_id is None):
                self.summary.skipped["keys whose user or controller was not imported"] += 1
                continue
            if not k.key_hash or len(k.key_hash) > 128 or len(k.key_part or "") != 6:
                self.summary.skipped["keys without a usable hash"] += 1
                continue
            org_id = self.orgs.get(controller.org_source_id) if controller else self.orgs.get(k.organization_id or 0)
            self.s.add(ApiKey(prefix=prefix, secret_hash=rhizo_keys.PLACEHOLDER_HASH,
                              name=f"rhizo-server key {k.key_part[:3]}...{k.key_part[3:]}",
                              user_id=user_id, controller_id=controller.id if controller else None,
                              organization_id=org_id, created_by=self.users.get(k.created_by or 0),
                              created_at=k.created or utcnow(), revoked_at=k.revoked,
                              revoked_by=self.users.get(k.revoked_by or 0) if k.revoked else None))
            self.s.flush()
            self.s.add(RhizoKey(prefix=prefix, key_part=k.key_part, key_hash=k.key_hash))
            changes.record(self.s, "key", prefix)
            self.summary.created["keys"] += 1
            if rhizo_keys.is_bcrypt(k.key_hash) and k.revoked is None:
                self.summary.slow_keys += 1

    def write_watchdogs(self) -> None:
        """rhizo's controller watchdog (`watchdog_minutes`, `watchdog_recipients` in its
        system attributes) as the hub's, on the controllers this run created."""
        for rid, (minutes, recipients) in self.watchdogs.items():
            try:
                if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
                    raise BadRequest("not a number")
                listed = controllers.split_recipients(recipients if isinstance(recipients, str) else "")
                controllers.set_watchdog(self.s, self.s.get_one(Resource, rid), int(minutes), listed)
                self.summary.created["controller watchdogs"] += 1
            except (BadRequest, Unprocessable) as e:
                self.summary.skipped["controller watchdogs the hub refuses"] += 1
                self.summary.note(f"watchdog of controller {rid}: {e.message}")

    def write_statuses(self, rows: list[SrcStatus]) -> None:
        for st in rows:
            t = self.targets.get(st.controller_id)
            if t is None or t.type != ResourceType.CONTROLLER.value:
                continue
            if self.s.get(ControllerStatus, t.id) is not None:
                self.summary.existing["controller status"] += 1
                continue
            reported = mapping.json_object(st.attributes)
            status = json.dumps(reported) if reported else None
            if status is not None and len(status) > controllers.MAX_STATUS_BYTES:
                status = None
            self.s.add(ControllerStatus(
                controller_id=t.id, client_version=(st.client_version or None) and st.client_version[:40],
                last_connect_at=st.last_connect, last_message_at=st.last_watchdog,
                status=status, status_at=st.last_watchdog if status else None))
            self.summary.created["controller status"] += 1


def _detached(seq: Sequence) -> Sequence:
    """A plain copy of a sequence's spec for `values.encode`: read once per value, and an
    ORM attribute read costs ten times a plain one."""
    return cast(Sequence, SimpleNamespace(**{c: getattr(seq, c) for c in (
        "data_type", "units", "min_value", "max_value", "decimal_places", "max_history")}))
