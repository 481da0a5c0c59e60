"""What the change log means for this worker's open message websockets.

The HTTP worker already polls the change log (`hub.storage.changes`) about once a second
for its caches (`hub.http.app`); each time it moves, `Watch` reads the changes since the
last it handled, in one query, and rechecks only the sockets they concern, all in one
database session off the event loop:

- `key` / `rhizo_key` (subject: the key's prefix): the sockets opened with that key;
- `session` (a log-out; subject: the user id) and `user`, `membership` (subject ends with
  the user id): that user's sockets;
- `permission`, `resource`, `organization`: every socket (levels, a deleted controller).

A socket whose credential no longer holds (revoked key, ended or expired session, deleted
user or controller) gets an error and is closed; one that lost read access to a subscribed
folder is unsubscribed from it. So that happens within about a second and a half of the
change, as the broker plugin kicks MQTT connections, whatever the number of sockets: with
none concerned nothing is queried but the change rows. A session's own expiry closes its
sockets on a timer (`websocket.Connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.access import Subject
from hub.errors import HubError
from hub.http.auth import Caller, _by_session
from hub.http.typedefs import AUTH_CACHE, DB_EXECUTOR, SETTINGS, STORE
from hub.settings import Settings
from hub.storage import changes, keys, permissions
from hub.storage.models import ApiKey, Level

if TYPE_CHECKING:
    from hub.http.rhizo.websocket import Connection

log = logging.getLogger("hub.http.rhizo")
BATCH = 1000  # changes read at once; more than that since the last look: recheck every socket
EVERYONE = frozenset({"permission", "resource", "organization"})
WATCH: web.AppKey[Watch] = web.AppKey("rhizo_socket_watch")


@dataclass
class Verdict:
    """What a recheck found for one socket."""

    ended: str = ""  # why its credential no longer holds ("" while it does)
    caller: Caller | None = None  # the caller as it is now (levels, memberships)
    lost: tuple[str, ...] = ()  # subscribed folders it may no longer read


def concerns(conn: Connection, kinds: dict[str, set[str]]) -> bool:
    """Whether the changes (kind -> subjects) may change what `conn` may do."""
    if EVERYONE & kinds.keys():
        return True
    who = conn.who
    prefix = who.subject.key_prefix
    if prefix is not None and prefix in kinds.get("key", set()) | kinds.get("rhizo_key", set()):
        return True
    user = str(who.user_id) if who.user_id is not None else None
    if user is None:
        return False
    if user in kinds.get("user", set()) or (who.via == "session" and user in kinds.get("session", set())):
        return True
    return any(subject.rsplit(":", 1)[-1] == user for subject in kinds.get("membership", ()))


def _credential(s: Session, settings: Settings, who: Caller) -> tuple[str, Caller | None]:
    """("", the caller now) while the socket's credential holds, else (why not, None)."""
    try:
        if who.via == "session":
            assert who.session is not None
            return "", _by_session(s, settings, who.session)
        row = s.scalar(select(ApiKey).where(ApiKey.prefix == who.subject.key_prefix))
        if row is None or row.revoked_at is not None:
            return "this key was revoked: the connection closes", None
        subject: Subject = keys.subject_for_key(s, row)
        return "", replace(who, subject=subject)
    except HubError as e:
        return f"{e.message}: the connection closes", None


def recheck(s: Session, settings: Settings, sockets: list[tuple[Caller, tuple[str, ...]]]) -> list[Verdict]:
    """One verdict per (caller, subscribed folders), in one session; sockets sharing a
    credential (a controller's reconnects, a browser's tabs) cost one check."""
    credentials: dict[tuple[str, str | None, str], tuple[str, Caller | None]] = {}
    levels: dict[tuple[str, str], Level] = {}
    out: list[Verdict] = []
    for who, folders in sockets:
        nonce = who.session.nonce if who.session is not None else ""
        cred = (who.via, who.subject.key_prefix, nonce)
        if cred not in credentials:
            credentials[cred] = _credential(s, settings, who)
        ended, now = credentials[cred]
        if now is None:
            out.append(Verdict(ended=ended))
            continue
        lost = []
        for f in folders:
            if (now.who, f) not in levels:
                levels[(now.who, f)] = permissions.level(s, now.subject, f)
            if levels[(now.who, f)] < Level.READ:
                lost.append(f)
        out.append(Verdict(caller=now, lost=tuple(lost)))
    return out


class Watch:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.open: set[Connection] = set()
        self.seen = -1  # the last change handled
        self.latest = -1  # the newest generation the worker's poll reported
        self._late: list[tuple[int, str, str]] = []  # changes committed late, to look at
        self._task: asyncio.Task[None] | None = None
        self.rechecks = self.rechecked = 0  # recheck jobs run, sockets they looked at (tests, stats)

    def moved(self, generation: int, late: Sequence[tuple[int, str, str]] = ()) -> None:
        """The worker's change-log poll saw `generation`, and `late`: changes below the
        ones already seen that committed after them (on the event loop)."""
        if generation < 0:  # the database is away: nothing to learn until it is back
            return
        self.latest = max(self.latest, generation)
        if not self.open:
            self.seen = self.latest  # nothing open: nothing to recheck
            return
        self._late.extend(late)
        self._wake()

    def add(self, conn: Connection, born: int) -> None:
        """Watch `conn`, whose credential was checked at change `born` or later: changes
        already handled since then are looked at again (for it, and harmlessly for others)."""
        self.open.add(conn)
        if born < self.seen:
            self.seen = born
            self._wake()

    def discard(self, conn: Connection) -> None:
        self.open.discard(conn)

    def _wake(self) -> None:
        if (self.latest > self.seen or self._late) and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while (self.latest > self.seen or self._late) and self.open:
            late, self._late = self._late, []
            rows: list[tuple[int, str, str]] = []
            try:
                if self.latest > self.seen:
                    rows = await loop.run_in_executor(self.app[DB_EXECUTOR], self._read, self.seen)
            except Exception as e:  # the database away: the next poll tries again
                log.debug("websocket recheck: change log unreadable: %s", e)
                self._late[:0] = late
                return
            kinds: dict[str, set[str]] = {}
            for _, kind, subject in rows + late:
                kinds.setdefault(kind, set()).add(subject)
            if len(rows) >= BATCH:
                kinds["resource"] = set()  # too many to sort out: recheck everyone
                upto = self.latest
            else:
                upto = rows[-1][0] if rows else self.latest
            targets = [c for c in self.open if concerns(c, kinds)]
            if targets and not await self._apply(targets):
                self._late[:0] = late
                return
            self.seen = max(self.seen, upto)

    def _read(self, after: int) -> list[tuple[int, str, str]]:
        with self.app[STORE].session() as s:
            return list(changes.since(s, after, BATCH))

    async def _apply(self, targets: list[Connection]) -> bool:
        loop = asyncio.get_running_loop()
        work = [(c.who, c.folders()) for c in targets]
        settings = self.app[SETTINGS]

        def job() -> list[Verdict]:
            with self.app[STORE].session() as s:
                return recheck(s, settings, work)

        self.rechecks += 1
        self.rechecked += len(work)
        try:
            verdicts = await loop.run_in_executor(self.app[DB_EXECUTOR], job)
        except Exception as e:  # the database away: keep the sockets, try at the next poll
            log.debug("websocket recheck failed: %s", e)
            return False
        for conn, verdict in zip(targets, verdicts, strict=True):
            with contextlib.suppress(ConnectionError, RuntimeError):  # a socket closing meanwhile
                await conn.apply(verdict)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start(app: web.Application) -> None:
    """On startup (after the cleanup contexts made the worker's cache): follow its poll."""
    watch = app[WATCH] = Watch(app)
    cache = app[AUTH_CACHE]
    watch.seen = watch.latest = cache.generation
    cache.listeners.append(watch.moved)


async def stop(app: web.Application) -> None:
    await app[WATCH].stop()
