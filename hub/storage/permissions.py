"""Permissions on folders, and a subject's level on a path (with inheritance)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import paths
from hub.access import Grant, Subject, resolve
from hub.errors import BadRequest, Forbidden, NotFound
from hub.storage import changes, resources
from hub.storage.models import Level, Organization, Permission, Resource, ResourceType, User


def level(s: Session, subject: Subject, path: str) -> Level:
    """The subject's level on `path` (which need not exist yet): one query
    for the grants on the path and its ancestors."""
    chain = paths.ancestors(path)
    org_id = s.scalar(select(Resource.organization_id).where(
        Resource.path == chain[0], ~Resource.deleted))
    if org_id is None:
        return Level.ADMIN if subject.is_admin else Level.NONE
    rows = s.execute(
        select(Resource.path, Permission.level, Permission.user_id, Permission.organization_id,
               Permission.controller_id)
        .join(Resource, Resource.id == Permission.resource_id)
        .where(Resource.path.in_(chain), ~Resource.deleted)).all()
    return resolve(subject, paths.normalize(path), org_id, [Grant(*row) for row in rows])


def require(s: Session, subject: Subject, path: str, needed: Level) -> Level:
    """Raise unless the subject has `needed` on `path`. A subject that cannot
    even read gets NotFound, so existence is not revealed."""
    have = level(s, subject, path)
    if have >= needed:
        return have
    if have < Level.READ:
        raise NotFound(f"no resource at {paths.normalize(path)}")
    raise Forbidden(f"{needed.name.lower()} access to {paths.normalize(path)} is needed")


def grant(s: Session, path: str, level_: int, *, user_id: int | None = None,
          organization_id: int | None = None, controller_path: str | None = None) -> Permission:
    """Give one subject `level_` on a folder (replacing what it had there)."""
    if level_ not in (Level.READ, Level.WRITE, Level.ADMIN):
        raise BadRequest("level must be read, write or admin")
    if sum(x is not None for x in (user_id, organization_id, controller_path)) != 1:
        raise BadRequest("a permission is for exactly one of: a user, an organization, a controller")
    folder = resources.get_folder(s, path)
    controller_id = None
    if controller_path is not None:
        controller_id = resources.get(s, controller_path, type=ResourceType.CONTROLLER.value).id
    if user_id is not None and s.get(User, user_id) is None:
        raise NotFound(f"no user {user_id}")
    if organization_id is not None and s.get(Organization, organization_id) is None:
        raise NotFound(f"no organization {organization_id}")
    p = s.scalar(select(Permission).where(
        Permission.resource_id == folder.id, Permission.user_id.is_(None) if user_id is None
        else Permission.user_id == user_id,
        Permission.organization_id.is_(None) if organization_id is None
        else Permission.organization_id == organization_id,
        Permission.controller_id.is_(None) if controller_id is None
        else Permission.controller_id == controller_id))
    if p is None:
        p = Permission(resource_id=folder.id, user_id=user_id, organization_id=organization_id,
                       controller_id=controller_id, level=int(level_))
        s.add(p)
    p.level = int(level_)
    s.flush()
    changes.record(s, "permission", folder.path)
    return p


def revoke(s: Session, permission_id: int, *, path: str | None = None) -> None:
    p = s.get(Permission, permission_id)
    on_resource = s.get(Resource, p.resource_id) if p is not None else None
    if p is None or on_resource is None or (path is not None and on_resource.path != paths.normalize(path)):
        raise NotFound(f"no permission {permission_id}" + (f" on {path}" if path else ""))
    s.delete(p)
    changes.record(s, "permission", str(permission_id))


def on(s: Session, path: str) -> list[Permission]:
    folder = resources.get_folder(s, path)
    return list(s.scalars(select(Permission).where(Permission.resource_id == folder.id)
                          .order_by(Permission.id)))


def granted_roots(s: Session, subject: Subject) -> list[str]:
    """The topmost live folders on which `subject` holds a grant (of its own, its
    organizations' or its controller's): where a member whose grants sit deep in
    a tree starts browsing."""
    from sqlalchemy import or_

    who = []
    if subject.user_id is not None:
        who.append(Permission.user_id == subject.user_id)
    if subject.memberships and subject.controller_id is None:
        who.append(Permission.organization_id.in_(list(subject.memberships)))
    if subject.controller_id is not None:
        who.append(Permission.controller_id == subject.controller_id)
    own = [subject.controller_path] if subject.controller_path else []
    if not who:
        return own
    granted = s.scalars(select(Resource.path).join(Permission, Permission.resource_id == Resource.id)
                        .where(or_(*who), ~Resource.deleted))
    found = sorted(set(own) | set(granted))
    roots: list[str] = []
    for p in found:  # sorted: an ancestor comes before its descendants
        if not any(paths.is_within(p, r) for r in roots):
            roots.append(p)
    return roots
