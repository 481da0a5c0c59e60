"""JSON forms of stored rows (one place, so every route says the same)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.storage import resources
from hub.storage.codec import Value
from hub.storage.latest import ResourceRow, SequenceRow
from hub.storage.models import ApiKey, Organization, Permission, Resource, Revision, Sequence, User
from hub.storage.values import iso


def ts(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def resource(r: Resource | ResourceRow, *, seq: Sequence | SequenceRow | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": r.path, "name": r.name, "type": r.type, "attributes": resources.attributes(r),
        "created_at": ts(r.created_at), "modified_at": ts(r.modified_at),
    }
    if seq is not None:
        out["sequence"] = sequence_spec(seq)
    return out


def sequence_spec(seq: Sequence | SequenceRow) -> dict[str, Any]:
    return {"data_type": seq.data_type, "units": seq.units, "min_value": seq.min_value,
            "max_value": seq.max_value, "decimal_places": seq.decimal_places,
            "max_history": seq.max_history}


def revision(rev: Revision | Value) -> dict[str, Any]:
    return {"id": rev.id, "timestamp": iso(rev.timestamp_us), "size": rev.size}


def user(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "user_name": u.user_name, "full_name": u.full_name,
            "is_admin": u.is_admin, "created_at": ts(u.created_at)}


def organization(o: Organization) -> dict[str, Any]:
    return {"name": o.name, "full_name": o.full_name, "created_at": ts(o.created_at)}


def api_key(k: ApiKey, *, owner: str, controller: str | None = None) -> dict[str, Any]:
    return {"prefix": k.prefix, "name": k.name, "owner": owner, "user_id": k.user_id,
            "controller": controller, "created_by": k.created_by, "created_at": ts(k.created_at),
            "last_used_at": ts(k.last_used_at), "last_used_from": k.last_used_from, "revoked_at": ts(k.revoked_at),
            "revoked_by": k.revoked_by, "revoked": k.revoked_at is not None}


def permission(p: Permission, *, path: str, organization: str | None = None,
               controller: str | None = None) -> dict[str, Any]:
    from hub.storage.models import Level

    return {"id": p.id, "path": path, "level": Level(p.level).name.lower(), "user_id": p.user_id,
            "organization": organization, "controller": controller}
