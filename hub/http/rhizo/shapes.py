"""rhizo-server's shapes of resources, values and controller status.

Resource types are numbers (10 folder, 11 organization, 12 controller, 20 file,
21 sequence), sequence data types too (1 numeric, 2 text, 3 image); paths start with
`/`; resource timestamps end in `Z`, controller-status ones in `' Z'` (Python's
`isoformat() + ' Z'`, as rhizo wrote them). Attributes the hub has no column for
(`min_storage_interval`, ...) live in the resource's attributes under
`system_attributes`; the rest of its attributes are rhizo's `user_attributes`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from hub.errors import BadRequest
from hub.storage.models import ControllerStatus, DataType, Resource, ResourceType, Revision, Sequence

TYPE_NUMBERS = {ResourceType.FOLDER.value: 10, ResourceType.ORGANIZATION.value: 11,
                ResourceType.CONTROLLER.value: 12, ResourceType.FILE.value: 20,
                ResourceType.SEQUENCE.value: 21}
TYPES_BY_NUMBER = {n: t for t, n in TYPE_NUMBERS.items()}
TYPE_NAMES = {"basic_folder": 10, "basicFolder": 10, "organization_folder": 11, "organizationFolder": 11,
              "controller_folder": 12, "controllerFolder": 12, "file": 20, "sequence": 21}
DATA_TYPE_NUMBERS = {DataType.NUMERIC.value: 1, DataType.TEXT.value: 2, DataType.IMAGE.value: 3,
                     DataType.JSON.value: 2}  # rhizo had no JSON sequences: they read as text
DATA_TYPES_BY_NUMBER = {1: DataType.NUMERIC.value, 2: DataType.TEXT.value, 3: DataType.IMAGE.value}
EXTRA_KEY = "system_attributes"  # hub attribute holding rhizo-only system attributes
RESERVED_KEYS = ("content_type", EXTRA_KEY)


def type_number(name: str) -> int:
    """A listing's `type=` filter: a rhizo type name or number."""
    if name in TYPE_NAMES:
        return TYPE_NAMES[name]
    if name.isdigit() and int(name) in TYPES_BY_NUMBER:
        return int(name)
    raise BadRequest(f"unknown resource type {name[:40]!r}: use one of {', '.join(sorted(TYPE_NAMES))}")


def stamp(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat() + "Z"


def status_stamp(dt: datetime | None) -> str:
    return "" if dt is None else dt.isoformat() + " Z"


def _attributes(r: Resource) -> dict[str, Any]:
    try:
        got = json.loads(r.attributes) if r.attributes else {}
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}


def user_attributes(r: Resource) -> dict[str, Any]:
    return {k: v for k, v in _attributes(r).items() if k not in RESERVED_KEYS}


def system_attributes(r: Resource, seq: Sequence | None, rev: Revision | None) -> dict[str, Any]:
    extra = _attributes(r).get(EXTRA_KEY)
    out: dict[str, Any] = dict(extra) if isinstance(extra, dict) else {}
    if seq is not None:
        out["data_type"] = DATA_TYPE_NUMBERS.get(seq.data_type, 2)
        if seq.decimal_places is not None:
            out["decimal_places"] = seq.decimal_places
        if seq.max_history is not None:
            out["max_history"] = seq.max_history
        if seq.units:
            out["units"] = seq.units
    elif r.type == ResourceType.FILE.value:
        out["size"] = rev.size if rev is not None else 0
    return out


def resource(r: Resource, *, extended: bool, seq: Sequence | None = None,
             rev: Revision | None = None) -> dict[str, Any]:
    """rhizo's `Resource.as_dict`."""
    d: dict[str, Any] = {"id": r.id, "name": r.name, "type": TYPE_NUMBERS.get(r.type, 10)}
    if not extended:
        return d
    sysattr = system_attributes(r, seq, rev)
    d.update({
        "parent_id": r.parent_id,
        "creation_timestamp": stamp(r.created_at), "creationTimestamp": stamp(r.created_at),
        "modification_timestamp": stamp(r.modified_at), "modificationTimestamp": stamp(r.modified_at),
        "permissions": [], "system_attributes": sysattr, "settings": sysattr,
        "user_attributes": user_attributes(r),
        "last_revision_id": r.last_revision_id, "lastRevisionId": r.last_revision_id,
    })
    if r.type == ResourceType.FILE.value:
        d["size"] = sysattr.get("size", 0)
    return d


def controller_status(st: ControllerStatus | None) -> dict[str, Any]:
    """rhizo's controller status fields. The watchdog time is when the controller was
    last heard (any message it sent, `watchdog` included)."""
    status: Any = {}
    if st is not None and st.status:
        try:
            status = json.loads(st.status)
        except ValueError:
            status = {}
    return {
        "client_version": (st.client_version if st is not None else None) or "",
        "web_socket_connected": False,
        "last_connect_timestamp": status_stamp(st.last_connect_at if st is not None else None),
        "last_watchdog_timestamp": status_stamp(st.last_message_at if st is not None else None),
        "status": status,
    }


def value_text(data_type: str, num: float | None, text: str | None) -> str:
    """A sequence's value as rhizo served it: text (numbers without a needless `.0`)."""
    if data_type == DataType.NUMERIC.value:
        if num is None:
            return ""
        if math.isfinite(num) and num.is_integer() and abs(num) < 2**53:
            return str(int(num))
        return repr(num)
    return text or ""
