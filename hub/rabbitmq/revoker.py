"""Ending MQTT connections on a RabbitMQ cluster through its management API.

The broker-auth service (`authservice.py`) decides; this carries out, on its event loop
(aiohttp's client, never blocking): `kick(client_id, reason, drop_queues)` queues a kick, a
worker task lists the connections (`GET /api/connections`: an MQTT connection shows its
client id as `client_properties.client_id` and `variable_map.client_id`), closes those of
the client (`DELETE /api/connections/{name}`, header `X-Reason`) and, for a client that lost
read access to a subscription, first deletes its subscription queues (`DELETE
/api/queues/%2F/mqtt-subscription-<id>qos0|qos1`): that stops deliveries at once.

Each request tries the nodes in turn until one answers. `GET /api/connections` lists a
connection only once its node has emitted statistics (every `collect_statistics_interval`, 5 s
by default), so a connection younger than that is missing there. The connections of one user
name are known at once (`GET /api/connections/username/{name}` reads the connection-tracking
table), and `DELETE /api/connections/username/{name}` closes them all. So a client that logged
in less than `YOUNG_SECONDS` ago and is not listed is closed by its user name, if no other live
login uses that name (`name_in_use`, asked at each try); otherwise the kick waits for the
listing. An unfound client is looked for again every `RETRY_INTERVAL` until `SEARCH_SECONDS`
have passed. Logs never hold secrets.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from hub.rabbitmq.routing import subscription_queues

YOUNG_SECONDS = 10.0  # a login older than this is listed if its connection is alive (statistics lag)
SEARCH_SECONDS = 8.0  # how long an unlisted client is looked for (statistics lag: 5 s by default)
RETRY_INTERVAL = 0.3
REQUEST_TIMEOUT = 5.0
COLUMNS = "name,user,protocol,client_properties,variable_map"


@dataclass
class Kick:
    reason: str
    drop_queues: bool
    deadline: float
    username: str | None = None  # the client's, to close it by while it is young
    young_until: float = 0.0
    queues_dropped: bool = False


def client_id_of(conn: dict[str, Any]) -> str | None:
    """The MQTT client id of a connection as the management API lists it (None: not MQTT)."""
    for key in ("variable_map", "client_properties"):
        value = conn.get(key)
        if isinstance(value, dict) and isinstance(value.get("client_id"), str):
            return str(value["client_id"])
    return None


class Revoker:
    def __init__(self, management_urls: Sequence[str], admin: tuple[str, str], log: Callable[[str], None],
                 *, search_seconds: float = SEARCH_SECONDS) -> None:
        self.urls = list(management_urls)
        token = base64.b64encode(f"{admin[0]}:{admin[1]}".encode()).decode()
        self._auth_header = {"Authorization": f"Basic {token}"}
        self.log = log
        self.search_seconds = search_seconds
        self.pending: dict[str, Kick] = {}
        # whether another live login uses a user name (AuthState sets it): then closing by that
        # name would close that one too, and a kick waits for the listing instead
        self.name_in_use: Callable[[str], bool] = lambda _name: True
        self.closed = 0  # connections closed
        self.closed_young = 0  # ... of them, found by user name before the listing showed them
        self.queues_deleted = 0
        self.errors = 0
        self._session: aiohttp.ClientSession | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unreachable = False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self._auth_header,
                                              timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        self._task = asyncio.get_running_loop().create_task(self._work(), name="hub-auth-revoker")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()

    def kick(self, client_id: str, reason: str, drop_queues: bool = False, username: str | None = None,
             logged_in: float | None = None) -> None:
        """Close the client's connections soon (event loop thread; never blocks). `username`
        and `logged_in` (its login's time.monotonic()): to close it by its user name while its
        connection may be too young to be listed."""
        young_until = (logged_in + YOUNG_SECONDS) if logged_in is not None else 0.0
        k = self.pending.get(client_id)
        if k is None:
            self.pending[client_id] = Kick(reason, drop_queues, time.monotonic() + self.search_seconds,
                                           username, young_until)
        else:
            k.drop_queues = k.drop_queues or drop_queues
            if username is not None:
                k.username, k.young_until = username, young_until
            k.deadline = time.monotonic() + self.search_seconds
        self._wakeup.set()

    async def idle(self, timeout: float = 10.0) -> bool:
        """Wait until no kick is pending (tests)."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- the management API ---------------------------------------------------------
    async def request(self, method: str, path: str,
                      headers: dict[str, str] | None = None) -> tuple[int, Any] | None:
        """(status, JSON body or None) from the first node that answers; None if none did."""
        assert self._session is not None, "start() first"
        for base in self.urls:
            try:
                async with self._session.request(method, base + path, headers=headers) as r:
                    if r.status >= 500:
                        continue
                    body = await r.json(content_type=None) if r.status == 200 else None
                    if self._unreachable:
                        self._unreachable = False
                        self.log(f"hub-auth: management API reachable again ({base})")
                    return r.status, body
            except (TimeoutError, aiohttp.ClientError, ValueError):
                continue
        self.errors += 1
        if not self._unreachable:
            self._unreachable = True
            self.log(f"hub-auth: no RabbitMQ node's management API answers ({', '.join(self.urls)}): "
                     "kicks wait until one does")
        return None

    async def connections(self) -> list[dict[str, Any]] | None:
        got = await self.request("GET", f"/api/connections?columns={COLUMNS}")
        if got is None or got[0] != 200 or not isinstance(got[1], list):
            return None
        return [c for c in got[1] if isinstance(c, dict)]

    async def tracked_names(self, username: str) -> list[str] | None:
        """The names of `username`'s connections on every node, known from the moment they open."""
        got = await self.request("GET", f"/api/connections/username/{quote(username, safe='')}")
        if got is None or got[0] != 200 or not isinstance(got[1], list):
            return None
        return [str(c["name"]) for c in got[1] if isinstance(c, dict) and "name" in c]

    async def close_user(self, username: str, reason: str) -> bool:
        """Close every connection of `username` (the tracking table's: young ones too; a
        connection not yet listed cannot be closed by its name)."""
        got = await self.request("DELETE", f"/api/connections/username/{quote(username, safe='')}",
                                 headers={"X-Reason": reason[:200]})
        return got is not None and got[0] in (200, 204)

    async def close_connection(self, name: str, reason: str) -> bool:
        got = await self.request("DELETE", f"/api/connections/{quote(name, safe='')}",
                                 headers={"X-Reason": reason[:200]})
        return got is not None and got[0] in (200, 204)

    async def delete_queue(self, name: str) -> bool | None:
        """True: deleted; False: there was none; None: no node answered."""
        got = await self.request("DELETE", f"/api/queues/%2F/{quote(name, safe='')}")
        if got is None:
            return None
        return got[0] in (200, 204)

    # -- the worker -------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.pending:
                try:
                    await self._round()
                except Exception as e:  # noqa: BLE001 - keep the worker alive, say why
                    self.errors += 1
                    self.log(f"hub-auth: kick round failed ({type(e).__name__}: {e})")
                if self.pending:
                    await asyncio.sleep(RETRY_INTERVAL)

    async def _round(self) -> None:
        batch = dict(self.pending)
        for client_id, k in batch.items():
            if k.drop_queues and not k.queues_dropped:
                results = [await self.delete_queue(q) for q in subscription_queues(client_id)]
                if None not in results:
                    k.queues_dropped = True
                    self.queues_deleted += sum(1 for r in results if r)
        listing = await self.connections()
        now = time.monotonic()
        for client_id, k in batch.items():
            if listing is None:
                if now > k.deadline + 60:  # the cluster is away for long: give up, say so
                    self._done(client_id, k)
                    self.log(f"hub-auth: gave up disconnecting client {client_id!r}: no management API answered")
                continue
            names = [str(c.get("name")) for c in listing if client_id_of(c) == client_id]
            young = (not names and k.username is not None and now < k.young_until
                     and not self.name_in_use(k.username))
            if k.username is not None and young:  # not listed yet: close its user name's connections
                listed = {str(c.get("name")) for c in listing}
                unlisted = [n for n in await self.tracked_names(k.username) or [] if n not in listed]
                closed = unlisted if unlisted and await self.close_user(k.username, k.reason) else []
            else:
                closed = [name for name in names if await self.close_connection(name, k.reason)]
            if closed or now > k.deadline:
                self._done(client_id, k)
                self.closed += len(closed)
                self.closed_young += len(closed) if young else 0
                queues = ", its subscription queues deleted" if k.drop_queues and k.queues_dropped else ""
                what = f"closed {len(closed)} connection(s)" if closed else "no live connection found"
                what += " by its user name (not listed yet)" if closed and young else ""
                self.log(f"hub-auth: kicked client {client_id!r} ({k.reason}): {what}{queues}")

    def _done(self, client_id: str, k: Kick) -> None:
        if self.pending.get(client_id) is k:
            del self.pending[client_id]
