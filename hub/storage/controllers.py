"""Controller status and watchdog: what a controller reported, when it was last heard,
and who to tell when it goes silent.

One `controller_status` row per controller folder, written by the notifier (which
sees every message) and by the HTTP API (the watchdog settings). The watchdog's
alert and its "back online" are claimed with a conditional UPDATE, so several
notifiers never send the same alert twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import BadRequest, Conflict, Unprocessable
from hub.storage import resources
from hub.storage.models import ControllerStatus, Resource, ResourceType, utcnow
from hub.storage.resources import SequenceSpec

STATUS_FOLDER = "status"
# Standard sequences a new controller gets under status/ (the controller client fills them).
STATUS_SEQUENCES: dict[str, SequenceSpec] = {
    "free_disk_space": SequenceSpec(units="MB", decimal_places=1, max_history=10_000),
    "processor_usage": SequenceSpec(units="%", min_value=0, max_value=100, decimal_places=1, max_history=10_000),
    "messages_sent": SequenceSpec(max_history=10_000),
    "messages_received": SequenceSpec(max_history=10_000),
}
MAX_STATUS_BYTES = 16384
MAX_WATCHDOG_MINUTES = 60 * 24 * 30


def ensure_status_folder(s: Session, controller_path: str) -> int:
    """Create `<controller>/status/` and its standard sequences where missing; returns
    how many resources were created. Safe to call again."""
    folder = paths.join(controller_path, STATUS_FOLDER)
    made = 0
    if resources.find(s, folder) is None:
        resources.create(s, folder, ResourceType.FOLDER.value)
        made += 1
    for name, spec in STATUS_SEQUENCES.items():
        path = f"{folder}/{name}"
        if resources.find(s, path) is None:
            resources.create(s, path, ResourceType.SEQUENCE.value, sequence=SequenceSpec(**spec.__dict__))
            made += 1
    return made


def row(s: Session, controller_id: int) -> ControllerStatus:
    """The controller's status row, created empty if missing (INSERT ... ON CONFLICT DO
    NOTHING: two writers creating it at once both go on)."""
    st = s.get(ControllerStatus, controller_id)
    if st is not None:
        return st
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = s.get_bind().dialect.name
    values = {"controller_id": controller_id, "watchdog_recipients": ""}
    if dialect == "postgresql":
        s.execute(postgresql.insert(ControllerStatus).values(**values)
                  .on_conflict_do_nothing(index_elements=["controller_id"]))
    elif dialect == "sqlite":
        s.execute(sqlite.insert(ControllerStatus).values(**values)
                  .on_conflict_do_nothing(index_elements=["controller_id"]))
    else:  # pragma: no cover - the hub runs on SQLite and PostgreSQL
        s.add(ControllerStatus(**values))
        s.flush()
    st = s.get(ControllerStatus, controller_id)
    assert st is not None
    return st


def controller(s: Session, path: str) -> Resource:
    return resources.get(s, path, type=ResourceType.CONTROLLER.value)


def describe(s: Session, c: Resource) -> dict[str, Any]:
    """The API form of a controller's status and watchdog."""
    st = s.get(ControllerStatus, c.id) or ControllerStatus(controller_id=c.id, watchdog_recipients="")
    return {
        "path": c.path,
        "client_version": st.client_version,
        "last_connect": _iso(st.last_connect_at),
        "last_message": _iso(st.last_message_at),
        "status": json.loads(st.status) if st.status else None,
        "status_at": _iso(st.status_at),
        "watchdog": {"minutes": st.watchdog_minutes, "recipients": split_recipients(st.watchdog_recipients),
                     "alerted_at": _iso(st.watchdog_alerted_at)},
    }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat() + "Z"


def split_recipients(text: str | Iterable[str] | None) -> list[str]:
    """`"a@x.org, +1555..."` or a list -> stripped, non-empty, de-duplicated, in order."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadRequest("recipients must be text: email addresses or phone numbers")
        v = item.strip()
        if v and v not in out:
            out.append(v)
    return out


def set_watchdog(s: Session, c: Resource, minutes: int | None, recipients: list[str],
                 now: datetime | None = None) -> ControllerStatus:
    """Turn the watchdog on (`minutes` of silence before an alert) or off (None)."""
    if minutes is not None and not 1 <= minutes <= MAX_WATCHDOG_MINUTES:
        raise BadRequest(f"watchdog minutes must be 1-{MAX_WATCHDOG_MINUTES} (or null to turn it off)")
    if minutes is not None and not recipients:
        raise Unprocessable("a watchdog needs at least one recipient (an email address or phone number)")
    st = row(s, c.id)
    st.watchdog_minutes = minutes
    st.watchdog_recipients = ", ".join(recipients)
    st.watchdog_set_at = now or utcnow()
    st.watchdog_alerted_at = None
    return st


# -- written by the notifier ------------------------------------------------------------
def controllers_of(s: Session, topics: Iterable[str]) -> dict[str, int]:
    """For each topic, the id of the controller folder it is (or is below), if any."""
    chains = {t: paths.ancestors(t) for t in topics}
    wanted = sorted({p for chain in chains.values() for p in chain})
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        for path, rid in s.execute(select(Resource.path, Resource.id).where(
                Resource.path.in_(wanted[i:i + 500]), ~Resource.deleted,
                Resource.type == ResourceType.CONTROLLER.value)):
            found[path] = rid
    out: dict[str, int] = {}
    for topic, chain in chains.items():
        for p in reversed(chain):  # the deepest controller folder wins
            if p in found:
                out[topic] = found[p]
                break
    return out


def record_activity(s: Session, last_seen: Mapping[str, datetime]) -> int:
    """Move controllers' last-message times forward from topic -> time heard; returns
    how many controllers were updated."""
    by_controller: dict[int, datetime] = {}
    for topic, cid in controllers_of(s, last_seen).items():
        t = last_seen[topic]
        if cid not in by_controller or by_controller[cid] < t:
            by_controller[cid] = t
    for cid, t in by_controller.items():
        st = row(s, cid)
        if st.last_message_at is None or st.last_message_at < t:
            st.last_message_at = t
    return len(by_controller)


def record_status(s: Session, controller_path: str, status: Mapping[str, Any], *, connected: bool = False,
                  now: datetime | None = None) -> None:
    """A `status` message (its JSON object is kept) or a `connected` one (last connect),
    heard at `now`. A report older than the one kept changes nothing (each write is one
    conditional UPDATE, so this holds for concurrent writers too): the client version
    comes from the newest of both kinds, the status and the connect time from the newest
    of their own kind."""
    now = now or utcnow()
    c = resources.find(s, controller_path)
    if c is None or c.type != ResourceType.CONTROLLER.value:
        raise Conflict(f"{controller_path} is not a controller folder: status is only kept for controllers")
    text = None if connected else json.dumps(dict(status), separators=(",", ":"))
    if text is not None and len(text) > MAX_STATUS_BYTES:
        raise BadRequest(f"status of {len(text)} bytes is over the limit of {MAX_STATUS_BYTES}")
    row(s, c.id)
    cs = ControllerStatus

    def newer(*stamps: Any) -> Any:
        return update(cs).where(cs.controller_id == c.id, *(or_(t.is_(None), t <= now) for t in stamps))

    version = status.get("client_version", status.get("version"))
    if isinstance(version, str) and version:
        s.execute(newer(cs.last_connect_at, cs.status_at).values(client_version=version[:40]))
    if text is None:
        s.execute(newer(cs.last_connect_at).values(last_connect_at=now))
    else:
        s.execute(newer(cs.status_at).values(status=text, status_at=now))


@dataclass(frozen=True)
class Alert:
    controller_id: int
    path: str
    organization_id: int | None
    recipients: list[str]
    minutes: int
    last_message_at: datetime | None
    back_online: bool


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _candidates(s: Session) -> list[tuple[ControllerStatus, Resource]]:
    return [(st, c) for st, c in s.execute(
        select(ControllerStatus, Resource).join(Resource, Resource.id == ControllerStatus.controller_id)
        .where(ControllerStatus.watchdog_minutes.is_not(None), ~Resource.deleted))]


def claim_alerts(s: Session, now: datetime | None = None) -> list[Alert]:
    """Watchdog transitions due now, each claimed by this caller only: silent longer
    than its minutes (alert once), or heard again after an alert (back online once)."""
    now = now or utcnow()
    out: list[Alert] = []
    for st, c in _candidates(s):
        assert st.watchdog_minutes is not None
        since = st.last_message_at or st.watchdog_set_at or now
        if st.watchdog_alerted_at is None:
            if now - since < timedelta(minutes=st.watchdog_minutes):
                continue
            claimed = _rowcount(s.execute(update(ControllerStatus).where(
                ControllerStatus.controller_id == st.controller_id,
                ControllerStatus.watchdog_alerted_at.is_(None)).values(watchdog_alerted_at=now)))
            back = False
        else:
            if st.last_message_at is None or st.last_message_at <= st.watchdog_alerted_at:
                continue
            claimed = _rowcount(s.execute(update(ControllerStatus).where(
                ControllerStatus.controller_id == st.controller_id,
                ControllerStatus.watchdog_alerted_at == st.watchdog_alerted_at)
                .values(watchdog_alerted_at=None)))
            back = True
        if claimed == 1:
            out.append(Alert(c.id, c.path, c.organization_id, split_recipients(st.watchdog_recipients),
                             st.watchdog_minutes, st.last_message_at, back))
    return out
