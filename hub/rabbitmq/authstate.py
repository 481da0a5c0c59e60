"""The broker-auth service's state (`authservice.py` answers the requests): the `Policy` over
the latest `Snapshot`, the `Reloader` handing snapshots over, what each login may still do,
and the `Revoker` that ends connections.

RabbitMQ never checks deliveries and keeps the last 12 topic decisions of an MQTT connection,
so this remembers each client's allowed subscription filters (per client id: a persistent
session's queue keeps its bindings across connections) and recent publish topics (per
connection); a new snapshot that denies one, or revokes the credential, has the connection
closed (and for a lost read its subscription queues deleted first). RabbitMQ never says when a
connection ends either: `reconcile` forgets logins the management API no longer lists.

Policy is not thread-safe: everything here runs on the event loop; the reloader's thread
only hands snapshots over (`take`, polled every APPLY_INTERVAL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from urllib.parse import quote

from hub.broker_auth.keyuse import KeyUse
from hub.broker_auth.plugin import close_parts
from hub.broker_auth.policy import ACL_SUBSCRIBE, ACL_WRITE, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING, Policy
from hub.broker_auth.reloader import POLL_INTERVAL, Reloader
from hub.broker_auth.rhizo_keys import SlowChecks
from hub.broker_auth.snapshot import load
from hub.broker_auth.stats import FILENAME, Counters
from hub.rabbitmq import nodes
from hub.rabbitmq.revoker import Revoker
from hub.settings import Settings

log = logging.getLogger("hub.rabbitmq.authservice")

APPLY_INTERVAL = 0.05  # how often the loop takes the reloader's snapshot
RECONCILE_INTERVAL = 60.0  # forget logins whose connection is gone (RabbitMQ never says)
RECONCILE_GRACE = 30.0  # ... if older than this (a new connection may not be listed yet)
REMEMBER_WRITES = 32  # publish topics kept per connection: more than rabbitmq_mqtt's cache (12)
REMEMBER_READS = 256  # subscription filters kept per client id
MAX_SESSIONS = 50_000  # client ids whose subscriptions are remembered
_LEVELS = {LOG_INFO: logging.INFO, LOG_NOTICE: logging.INFO, LOG_WARNING: logging.WARNING, LOG_ERR: logging.ERROR}
Handle = tuple[str, str]  # ("mqtt", client id) or ("amqp", username)


def _policy_log(level: int, msg: str) -> None:
    log.log(_LEVELS.get(level, logging.INFO), msg)


def stats_path(settings: Settings) -> Path:
    return settings.data_path / "rabbitmq" / FILENAME


class Login:
    """What the service keeps of an accepted login besides Policy's `ClientState`."""

    __slots__ = ("username", "since", "writes")

    def __init__(self, username: str) -> None:
        self.username = username
        self.since = time.monotonic()
        self.writes: OrderedDict[str, None] = OrderedDict()


class Logins(MutableMapping[Handle, Login]):
    """The accepted logins by handle, and how many of them use each user name."""

    def __init__(self) -> None:
        self._by: dict[Handle, Login] = {}
        self._names: Counter[str] = Counter()

    def __getitem__(self, handle: Handle) -> Login:
        return self._by[handle]

    def __setitem__(self, handle: Handle, login: Login) -> None:
        if handle in self._by:
            del self[handle]
        self._by[handle] = login
        self._names[login.username] += 1

    def __delitem__(self, handle: Handle) -> None:
        name = self._by.pop(handle).username
        self._names[name] -= 1
        if not self._names[name]:
            del self._names[name]

    def __iter__(self) -> Iterator[Handle]:
        return iter(self._by)

    def __len__(self) -> int:
        return len(self._by)

    def using(self, username: str) -> int:
        return self._names.get(username, 0)


class AuthState:
    def __init__(self, settings: Settings, *, revoker: Revoker | None = None,
                 reload_interval: float = POLL_INTERVAL) -> None:
        """Reads the database once (raises if it cannot: the caller says so and exits)."""
        from hub.storage.db import Database

        self.settings = settings
        self.secret = nodes.auth_secret(settings)
        self.admin_user = settings.RABBITMQ_ADMIN_USER
        names = nodes.queue_names(settings)
        self.persister_queues = {names["persist"], names["notify"]}
        self.persist_queue = names["persist"]
        self.queues_ready = False  # the hub's queues exist: until then no value could be kept
        self.db = Database(settings.database_url)
        try:
            with self.db.session() as s:
                snap = load(s)
        except BaseException:
            self.db.dispose()
            raise
        self.counters = Counters()
        salt = settings.RHIZO_SALT
        self.rhizo_checks = SlowChecks(self.db, salt, log=log.info) if salt else None
        self.reloader = Reloader(self.db, snap.change_id, self.counters, stats_file=stats_path(settings),
                                 extra_stats=self.extra_stats, interval=reload_interval, current=snap,
                                 chores=[lambda: self.key_use.flush(self.db)])
        self.policy = Policy(settings.SECRET_KEY, snap, _policy_log, self.counters, rhizo_salt=salt,
                             rhizo_slow_check=self.rhizo_checks.submit if self.rhizo_checks else None,
                             sync_requested=self.reloader.wake)
        self.key_use = KeyUse()
        self.revoker = revoker or Revoker([n.management_url for n in nodes.nodes(settings)],
                                          nodes.admin_credentials(settings), log.info)
        self.logins = Logins()
        self.revoker.name_in_use = lambda name: self.logins.using(name) > 0
        self.reads: OrderedDict[str, dict[str, None]] = OrderedDict()  # client id -> allowed filters
        self.bad_secret = 0
        self._tasks: list[asyncio.Task[None]] = []
        log.info("hub-auth: ready (%s; %d live keys, %d folders, change %d)", self.db.safe_url,
                 len(snap.keys), len(snap.folders), snap.change_id)

    async def hub_queues_declared(self) -> bool:
        """Whether the persist queue exists (looked up until it does, then remembered: the
        hub's queues are durable). Before it does, a value would be routed to no queue and
        dropped after its PUBACK, so controllers and browsers wait (`run.py --broker`
        declares the queues as soon as the nodes answer)."""
        if not self.queues_ready:
            got = await self.revoker.request("GET", f"/api/queues/%2F/{quote(self.persist_queue, safe='')}")
            self.queues_ready = got is not None and got[0] == 200
            if not self.queues_ready:
                log.warning("hub-auth: refusing MQTT logins: the hub's queue %s is not declared yet "
                            "(run.py --broker declares it once the nodes answer)", self.persist_queue)
        return self.queues_ready

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.reloader.stats_file.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        self.reloader.write_stats()
        self.reloader.start()
        await self.revoker.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._apply_loop(), name="hub-auth-apply"),
                       loop.create_task(self._reconcile_loop(), name="hub-auth-reconcile")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.revoker.close()
        await asyncio.get_running_loop().run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        close_parts(self.rhizo_checks, self.reloader, self.key_use, self.db)

    def extra_stats(self) -> dict[str, object]:
        return {"clients_online": len(self.logins), "bad_secret": self.bad_secret,
                "kicks_pending": len(self.revoker.pending), "connections_closed": self.revoker.closed,
                "connections_closed_young": self.revoker.closed_young, "queues_deleted": self.revoker.queues_deleted,
                "management_errors": self.revoker.errors}

    # -- snapshots ----------------------------------------------------------------------
    async def _apply_loop(self) -> None:
        while True:
            try:
                self.apply_pending()
            except Exception:  # noqa: BLE001 - keep applying; a bug here must not stop revocation
                log.exception("hub-auth: applying a snapshot failed")
            await asyncio.sleep(APPLY_INTERVAL)

    def apply_pending(self) -> bool:
        """Install the reloader's new snapshot, if any, and kick whom it revokes; end
        expired browser tokens. True if a snapshot was installed."""
        now = time.time()
        if now >= self.policy.next_expiry:
            for client_id in self.policy.expire(now):
                self._kick(client_id, "its browser token expired")
            self.policy.forget_kicked()
        snap = self.reloader.take()
        if snap is None:
            return False
        kicks = self.policy.install(snap)
        for client_id in kicks:
            self._kick(client_id, "its credential is no longer valid")
        self.policy.forget_kicked()
        lost = 0
        for handle, login in list(self.logins.items()):
            st = self.policy.clients.get(handle)
            if st is None or handle[0] != "mqtt":
                continue
            filters = self.reads.get(st.client_id, {})
            if any(not self.policy.decide(st, ACL_SUBSCRIBE, f)[0] for f in filters):
                self._kick(st.client_id, "it lost read access to a subscription", drop_queues=True, count=True)
                self.reads.pop(st.client_id, None)
                lost += 1
            elif any(not self.policy.decide(st, ACL_WRITE, t)[0] for t in login.writes):
                self._kick(st.client_id, "it lost write access to a topic it publishes to", count=True)
                lost += 1
        log.info("hub-auth: now at change %d: %d live keys, %d folders, %d clients disconnected",
                 snap.change_id, len(snap.keys), len(snap.folders), len(kicks) + lost)
        return True

    def _kick(self, client_id: str, reason: str, drop_queues: bool = False, count: bool = False) -> None:
        """`count`: Policy neither counted nor logged it (a lost right, not a credential)."""
        handle = ("mqtt", client_id)
        login = self.logins.pop(handle, None)
        self.policy.disconnected(handle, False)  # its next check is denied until it logs in again
        self.counters.kicks += count
        if count:
            log.info("hub-auth: disconnecting client %r: %s", client_id, reason)
        # its user name and login time: a young connection, not listed yet, is closed by its name
        # when no other live login uses that name (revoker.py)
        self.revoker.kick(client_id, f"hub: {reason}", drop_queues=drop_queues,
                          username=login.username if login is not None else None,
                          logged_in=login.since if login is not None else None)

    async def caught_up(self, timeout: float, enough: Callable[[], bool] | None = None) -> bool:
        """Make the reloader look now; True once a look begun after this call found nothing
        new (all committed before the call is installed), or `enough()` holds; False when
        `timeout` seconds passed first."""
        look = self.reloader.looks
        self.reloader.wake()
        deadline = time.monotonic() + timeout
        while True:
            done = self.reloader.up_to_date > look
            if self.apply_pending():
                self.reloader.wake()  # it loaded something: the next look says whether that was all
            if done or (enough is not None and enough()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def wait_for_folder(self, folder: str) -> bool:
        """A topic that names no folder yet: one made over HTTP a moment ago opens at once
        (waits up to MQTT_FOLDER_SYNC_SECONDS). True if the folder is there now."""
        folders = lambda: folder in self.policy.snapshot.folders  # noqa: E731
        if not folders():
            await self.caught_up(max(0.0, self.settings.MQTT_FOLDER_SYNC_SECONDS), folders)
        return folders()

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL)
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - try again next time
                log.exception("hub-auth: reconciling logins with the cluster's connections failed")

    async def reconcile(self, grace: float = RECONCILE_GRACE) -> int:
        """Forget logins whose connection is gone (RabbitMQ tells no one); how many."""
        listing = await self.revoker.connections()
        if listing is None:
            return 0
        live = set()
        for c in listing:
            vm = c.get("variable_map")
            cid = vm.get("client_id") if isinstance(vm, dict) else None
            live.add(("mqtt", cid) if isinstance(cid, str) else ("amqp", c.get("user")))
        old = time.monotonic() - grace
        gone = [h for h, login in self.logins.items() if h not in live and login.since < old]
        for handle in gone:
            del self.logins[handle]
            self.policy.disconnected(handle, False)
        return len(gone)

    # -- requests -----------------------------------------------------------------------
    def remember_read(self, client_id: str, topic: str) -> None:
        filters = self.reads.get(client_id)
        if filters is None:
            filters = self.reads[client_id] = {}
            while len(self.reads) > MAX_SESSIONS:
                self.reads.popitem(last=False)
        self.reads.move_to_end(client_id)
        if topic not in filters and len(filters) < REMEMBER_READS:
            filters[topic] = None

    def remember_write(self, login: Login, topic: str) -> None:
        login.writes[topic] = None
        login.writes.move_to_end(topic)
        while len(login.writes) > REMEMBER_WRITES:
            login.writes.popitem(last=False)

    def forget(self, handle: Handle) -> None:
        """The client's connection is gone (RabbitMQ closes it on a denied publish)."""
        self.logins.pop(handle, None)
        self.policy.disconnected(handle, False)
