"""From rhizo-server's terms to the hub's: resource types, names, sequence attributes,
values, timestamps and permissions. Pure functions, no I/O.

rhizo-server's numbers (its `main/resources/models.py`, `main/users/permissions.py`):
resource types 10 basic folder, 11 organization folder, 12 controller folder, 13 remote
folder, 20 file, 21 sequence, 22 app; sequence data types 1 numeric, 2 text, 3 image;
permission records `[type, id, level]` with types 100 public, 110 an organization's users,
120 an organization's controllers, 130 a user, 140 a controller, and levels 10 read,
20 write.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.paths import MAX_SEGMENT_LENGTH
from hub.storage import values
from hub.storage.models import DataType, Level, ResourceType
from hub.storage.resources import SequenceSpec

TYPES = {10: ResourceType.FOLDER, 11: ResourceType.ORGANIZATION, 12: ResourceType.CONTROLLER,
         13: ResourceType.FOLDER, 20: ResourceType.FILE, 21: ResourceType.SEQUENCE}
APP = 22  # rhizo's built-in pages: not data, not imported
REMOTE_FOLDER = 13
DATA_TYPES = {1: DataType.NUMERIC, 2: DataType.TEXT, 3: DataType.IMAGE}
SYSTEM_ADMIN_ROLE = 2
LEVELS = {10: Level.READ, 20: Level.WRITE}
PUBLIC, ORG_USERS, ORG_CONTROLLERS, USER, CONTROLLER = 100, 110, 120, 130, 140

_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def safe_name(name: str) -> str:
    """A hub path segment for a rhizo name: characters the hub does not allow in paths
    (and so in MQTT topics) become `_`."""
    cleaned = _BAD_CHARS.sub("_", (name or "").strip())[:MAX_SEGMENT_LENGTH]
    return "_" if cleaned in ("", ".", "..") else cleaned


def json_object(raw: str | None) -> dict[str, Any]:
    """A rhizo JSON attribute column as a dict ({} when empty or not an object)."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(v: Any, lo: int, hi: int) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n if lo <= n <= hi else None


def sequence_spec(system_attributes: dict[str, Any]) -> tuple[SequenceSpec, dict[str, Any]]:
    """(the hub's sequence spec, extra resource attributes) of rhizo `system_attributes`.
    A sequence without a known data_type becomes text (it then keeps any value).
    `min_storage_interval` (seconds; rhizo skipped values closer together) is kept as an
    attribute of the resource."""
    kind = DATA_TYPES.get(_int(system_attributes.get("data_type"), 1, 3) or 0, DataType.TEXT)
    units = system_attributes.get("units")
    spec = SequenceSpec(data_type=kind.value, units=str(units)[:40] if units else "",
                        decimal_places=_int(system_attributes.get("decimal_places"), 0, 15),
                        max_history=_int(system_attributes.get("max_history"), 1, 2**31 - 1))
    extra: dict[str, Any] = {}
    interval = system_attributes.get("min_storage_interval")
    if isinstance(interval, (int, float)) and not isinstance(interval, bool) and math.isfinite(interval):
        extra["min_storage_interval"] = interval
    return spec, extra


def file_attributes(name: str) -> dict[str, Any]:
    ctype = mimetypes.guess_type(name)[0]
    return {"content_type": ctype} if ctype else {}


def sequence_value(data_type: str, data: bytes) -> Any | None:
    """The value rhizo stored as bytes, in the form `values.encode` takes for the hub's
    data type; None when it cannot be one (e.g. a numeric sequence's non-number)."""
    if data_type == DataType.IMAGE.value:
        return data
    if data_type == DataType.NUMERIC.value:
        try:
            num = float(data)  # rhizo kept the number's text; float() reads ASCII bytes as they are
        except ValueError:
            return None
        return num if math.isfinite(num) else None
    return data.decode("utf-8", "replace")


_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def timestamps_us(previous: int | None, ts: datetime) -> int:
    """The hub timestamp of a rhizo revision at `ts` (naive UTC), one microsecond after
    `previous` when rhizo kept two values of a resource at the same time (the hub keeps
    one per instant), so every value arrives; the same source gives the same result."""
    us = (ts - _EPOCH) // _US if ts.tzinfo is None else values.to_us(ts)
    return previous + 1 if previous is not None and us <= previous else us


@dataclass(frozen=True)
class Grant:
    """One rhizo permission record in hub terms: `kind` is organization / org_controllers /
    user / controller, `source_id` the rhizo id it names."""

    kind: str
    source_id: int
    level: Level


def grants(raw: str | None) -> tuple[list[Grant], list[str]]:
    """(grants, reasons for the records left out) of a rhizo `permissions` column."""
    try:
        records = json.loads(raw) if raw else []
    except ValueError:
        return [], ["permissions that are not JSON"]
    out: list[Grant] = []
    skipped: list[str] = []
    kinds = {ORG_USERS: "organization", ORG_CONTROLLERS: "org_controllers", USER: "user", CONTROLLER: "controller"}
    for rec in records if isinstance(records, list) else []:
        if not (isinstance(rec, list) and len(rec) == 3 and all(isinstance(x, int) for x in rec)):
            skipped.append("malformed permission records")
            continue
        kind, source_id, level = rec
        if kind == PUBLIC:
            skipped.append("public permissions (the hub has no anonymous access)")
        elif kind in kinds and level in LEVELS:
            out.append(Grant(kinds[kind], source_id, LEVELS[level]))
        elif level != 0:
            skipped.append("permission records of unknown type or level")
    return out, skipped
