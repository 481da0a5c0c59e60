"""The plugin's life cycle, in plain Python: settings, database, first snapshot,
policy, background reloader; `tick` applies what the reloader found.

`glue` makes one `Plugin` in `mosquitto_plugin_init`. Anything failing there raises,
and Mosquitto refuses to start (fail closed): no settings, no database, no broker.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from hub import settings as settings_mod
from hub.broker_auth.keyuse import KeyUse
from hub.broker_auth.policy import (
    ACL_SUBSCRIBE,
    ACL_UNSUBSCRIBE,
    CHANGE_TOPIC,
    LOG_ERR,
    LOG_INFO,
    LOG_NOTICE,
    Log,
    Policy,
)
from hub.broker_auth.reloader import Reloader
from hub.broker_auth.rhizo_keys import SlowChecks
from hub.broker_auth.snapshot import load
from hub.broker_auth.stats import Counters, stats_path
from hub.broker_auth.storagegate import GroupWatch, StorageGate
from hub.broker_auth.tickgate import TickGate, poke_broker
from hub.errors import SettingsError
from hub.storage.db import Database

# Under load Mosquitto ticks once per packet read: look for a new snapshot at most this often
# (and see tickgate.py: the tick is mostly unregistered while traffic flows).
TICK_INTERVAL_NS = 100_000_000
ADMITTED, REFUSED, HELD = 0, 1, 2  # Plugin.admit


class Plugin:
    def __init__(self, options: dict[str, str], log: Log,
                 tick_switch: tuple[Callable[[], None], Callable[[], None]] | None = None,
                 publish: Callable[[str, bytes], object] | None = None) -> None:
        """`tick_switch`: (register, unregister) of Mosquitto's tick callback, for the
        `TickGate`; without it the tick stays registered. `publish(topic, payload)`:
        Mosquitto's own publish (QoS 0, broker thread), for CHANGE_TOPIC."""
        self.log = log
        self.publish = publish
        path = options.get("settings")
        if not path:
            raise SettingsError("plugin_opt_settings is missing from the Mosquitto config: "
                                "set it to the hub's settings file (run.py writes it)")
        if not Path(path).is_file():
            raise SettingsError(f"plugin_opt_settings: {path} is not a readable file "
                                "(does the broker's user have read access?)")
        self.settings = settings_mod.load(Path(path), generate_secret=False)
        # The reloader thread is CPU-bound while it builds a snapshot; a broker callback waits
        # this long for the GIL before Python makes the reloader hand it over.
        sys.setswitchinterval(0.0002)
        self.db = Database(self.settings.database_url)
        with self.db.session() as s:
            snap = load(s)
        counters = Counters()
        salt = self.settings.RHIZO_SALT
        self.rhizo_checks = SlowChecks(self.db, salt, log=self._queue_log) if salt else None
        self.policy = Policy(self.settings.SECRET_KEY, snap, log, counters, rhizo_salt=salt,
                             rhizo_slow_check=self.rhizo_checks.submit if self.rhizo_checks else None,
                             sync_requested=self._sync_requested)
        self.storage = StorageGate(self.settings.PERSISTER_GROUP, self.settings.PERSISTER_SESSION_EXPIRY, log,
                                   required=self.settings.MQTT_REQUIRE_PERSISTER)
        self.notifiers = GroupWatch("notifier", self.settings.NOTIFY_GROUP)
        self.gate: TickGate | None = None
        if tick_switch is not None:
            host, port = self.settings.MQTT_HOST, self.settings.MQTT_PORT
            self.gate = TickGate(*tick_switch, poke=lambda nonce: poke_broker(host, port, nonce))
        self.key_use = KeyUse()
        self.reloader = Reloader(self.db, snap.change_id, counters, stats_file=stats_path(self.settings),
                                 extra_stats=self._extra_stats, gate=self.gate,
                                 due=self._due, current=snap, chores=[lambda: self.key_use.flush(self.db)])
        self.reloader.stats_file.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        self.reloader.write_stats()
        self.reloader.start()
        log(LOG_NOTICE, f"hub-auth: ready ({self.db.safe_url}; {len(snap.keys)} live keys, "
                        f"{len(snap.folders)} folders, change {snap.change_id})")

    def _sync_requested(self) -> None:
        """`hub-service` asked which change the plugin works from (broker thread): the
        reloader looks now, and the tick after its look announces it (`_announce`)."""
        reloader = getattr(self, "reloader", None)
        if reloader is not None:
            reloader.wake()

    def _announce(self, change_id: int) -> None:
        """Tell the HTTP servers the change the ACL now decides by (hub/http/brokersync.py)."""
        if self.publish is not None:
            self.publish(CHANGE_TOPIC, str(change_id).encode())

    def _queue_log(self, line: str) -> None:
        """A log line from another thread: the broker thread writes it on its next tick."""
        reloader = getattr(self, "reloader", None)
        if reloader is not None:
            reloader.messages.append((LOG_NOTICE, line))

    def connected(self, handle: object, address: str | None) -> None:
        """A connect was accepted (broker thread): note a key's use (`keyuse`), no I/O."""
        st = self.policy.clients.get(handle)
        if st is not None and st.key_prefix:
            self.key_use.seen(st.key_prefix, address)

    def _extra_stats(self) -> dict[str, object]:
        gate = self.gate
        return {"clients_online": self.policy.online, "clients_known": len(self.policy.clients),
                "tick_on": gate.on if gate else True, "pokes": gate.pokes if gate else 0,
                **self.storage.stats(), **self.notifiers.stats(),
                "key_uses_written": self.key_use.written}

    def _due(self) -> bool:
        """Whether the tick has timed work: a browser token or a persister's session ran out."""
        return time.time() >= self.policy.next_expiry or time.monotonic() >= self.storage.due

    # -- the storage gate's hooks (storagegate.py), called by glue ----------------------
    def admit(self, handle: Hashable, client_id: str, username: str | None, password: str | None) -> int:
        """ADMITTED, REFUSED (bad credential) or HELD (the storage gate is closed)."""
        if not self.policy.authenticate(handle, client_id, username, password):
            return REFUSED
        if self.storage.admits(self.policy.clients.get(handle)):
            return ADMITTED
        self.policy.disconnected(handle, False)  # forget it: it never connected
        return HELD

    def checked(self, handle: Hashable, access: int, topic: bytes) -> bool:
        """`Policy.check`, telling the storage gate about (un)subscriptions."""
        allowed = self.policy.check(handle, access, topic)
        if access & (ACL_SUBSCRIBE | ACL_UNSUBSCRIBE):
            st, text = self.policy.clients.get(handle), topic.decode("utf-8", "replace")
            allowed = self.storage.acl(st, handle, access, text, allowed)
            self.notifiers.acl(st, handle, access, text, allowed)
        return allowed

    def disconnected(self, handle: Hashable, keeps_session: bool) -> None:
        st = self.policy.clients.get(handle)
        self.storage.disconnected(st, handle, keeps_session)
        self.notifiers.disconnected(st, handle)
        self.policy.disconnected(handle, keeps_session)

    def tick(self, kick: Callable[[str], None]) -> None:
        """On Mosquitto's thread, at most every TICK_INTERVAL_NS (glue throttles): pass on the
        reloader's log lines, end connections whose browser token ran out, apply a new
        snapshot and kick the clients it revokes."""
        if self.gate is None:
            self._tick(kick)
            return
        self.gate.tick_started()
        try:
            self._tick(kick)
        finally:
            self.gate.tick_done()

    def _tick(self, kick: Callable[[str], None]) -> None:
        if time.monotonic() >= self.storage.due:
            self.storage.expire()
        while self.reloader.messages:
            level, msg = self.reloader.messages.popleft()
            self.log(level, msg)
        if time.time() >= self.policy.next_expiry:
            expired = self.policy.expire(time.time())
            for client_id in expired:
                kick(client_id)
            self.policy.forget_kicked()
        snap = self.reloader.take()
        if snap is None:
            if self.reloader.announce:
                self.reloader.announce = False
                self._announce(self.policy.snapshot.change_id)
            return
        self.reloader.announce = False
        kicks = self.policy.install(snap)
        for client_id in kicks:
            kick(client_id)
        self.policy.forget_kicked()
        self._announce(snap.change_id)
        self.log(LOG_INFO, f"hub-auth: now at change {snap.change_id}: {len(snap.keys)} live keys, "
                           f"{len(snap.folders)} folders, {len(kicks)} clients disconnected")

    def close(self) -> None:
        close_parts(self.rhizo_checks, self.reloader, self.key_use, self.db)


def close_parts(rhizo_checks: SlowChecks | None, reloader: Reloader, key_use: KeyUse, db: Database) -> None:
    """Stop what a Policy's owner runs beside it (this plugin, or RabbitMQ's broker-auth
    service): the rhizo key checks, the reloader (last stats), the key-use writes, the engine."""
    try:
        if rhizo_checks is not None:
            rhizo_checks.stop()
        reloader.stop()
        reloader.write_stats()
        key_use.flush(db, force=True)
    finally:
        db.dispose()


def failure_reason(e: BaseException) -> str:
    """Why the access rule's owner cannot start, and what to do (a database error says which)."""
    orig = getattr(e, "orig", None)  # SQLAlchemy's wrapper around the driver's error
    if orig is not None:
        first = (str(orig).strip().splitlines() or [""])[0]
        return (f"cannot read the database ({type(orig).__name__}: {first}); check DATABASE_URL, "
                "and run `run.py --init-db` if the database is new")
    return getattr(e, "message", None) or f"{type(e).__name__}: {e}"


def describe_failure(e: BaseException) -> tuple[int, str]:
    """The log line for a plugin that cannot start."""
    return LOG_ERR, f"hub-auth: cannot start, so Mosquitto will not either: {failure_reason(e)}"
