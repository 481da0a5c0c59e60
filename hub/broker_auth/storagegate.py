"""The storage gate: the broker takes values only while a persister subscription exists
to take them.

Mosquitto routes a publish to whoever is subscribed at that moment and acknowledges it
either way. A value published while no persister holds the shared subscription
`$share/<PERSISTER_GROUP>/#` reaches watching browsers (so Mosquitto even reports a
matching subscriber) and is acknowledged, but is never stored. That happens after every
broker start (Mosquitto 2.0 does not restore shared subscriptions from its persistence
file), and after the last persister left. So the plugin keeps a gate:

- open while at least one client id holds that subscription: subscribed on a connection
  that is up, or on a persistent session whose connection dropped (Mosquitto keeps
  routing its share of the messages there; they wait for it) until that session's expiry
  (PERSISTER_SESSION_EXPIRY of the broker's settings, less a margin, as the plugin cannot
  see Mosquitto expire it);
- closed from broker start until a persister subscribes, and again when the last one
  ends its session or its session expires.

A persister stopping hands its share over by unsubscribing (daemon.py), which is right
while another persister is connected to take the share. The last one connected is not
let go: its unsubscribe is refused ("not authorized" in the UNSUBACK), so it keeps its
session and its subscription, disconnects, and Mosquitto queues what arrives for it until
it is back (QoS 0 too: mosquitto/hub.conf.template delivers to a QoS 1 subscription at
QoS 1). The gate stays open meanwhile, so a restarting persister (SIGTERM or kill -9)
costs controllers nothing, at QoS 0 either.

While closed: API-key clients (controllers, scripts) are refused at connect without a
CONNACK (Mosquitto 2.0.11 lets a plugin answer only "not authorized", which clients take
for a bad key; a closed connection makes every MQTT 3.1.1 and 5 client retry); browser
tokens and the hub's services still connect (watching loses nothing); and any publish
from a non-persister ends that client's connection before Mosquitto acknowledges or
routes it (a denied publish would be acknowledged: MQTT 3.1.1 has no way to say
"refused", and 2.0.11 sends PUBACK for it), so the client sends it again after
reconnecting. Everything here runs on the broker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from hub.broker_auth import policy as p
from hub.broker_auth.policy import ClientState, Log

EXPIRY_MARGIN = 10.0  # seconds before the assumed session expiry the plugin stops counting on it


class StorageGate:
    def __init__(self, group: str, session_expiry: float, log: Log, required: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`required` False (MQTT_REQUIRE_PERSISTER off): the gate never closes."""
        self.required = required
        self.topic = f"$share/{group}/#"
        self.session_expiry = max(0.0, float(session_expiry))
        self.log, self.clock = log, clock
        self.online: dict[str, Hashable] = {}  # client id -> handle of its connection holding the subscription
        self.offline: dict[str, float] = {}  # client id -> clock time its kept session is no longer counted on
        self.closed = [required]  # read on the publish path (glue)
        self.due = float("inf")  # clock time `expire` has work (read by the reloader thread)
        self.held = 0  # connections refused while closed
        self.cut = 0  # publishes that ended their connection while closed
        self.kept = 0  # unsubscribes refused: the last connected persister keeps its session
        self._held_logged = False

    @property
    def subscribers(self) -> int:
        return len(self.online) + len(self.offline)

    def _update(self, why: str) -> None:
        self.due = min(self.offline.values(), default=float("inf"))
        was_closed = self.closed[0]
        self.closed[0] = self.required and not (self.online or self.offline)
        if was_closed and not self.closed[0]:
            self._held_logged = False
            self.log(p.LOG_NOTICE, f"hub-auth: storage gate open: {why}; admitting controllers "
                                 f"({self.held} connections held back so far)")
        elif self.closed[0] and not was_closed:
            self.log(p.LOG_WARNING, f"hub-auth: storage gate closed: {why}; no persister holds {self.topic}, "
                                  "so API-key clients are refused and publishes end their connection "
                                  "until one subscribes")

    # -- events (broker thread) ----------------------------------------------------
    def acl(self, st: ClientState | None, handle: Hashable, access: int, topic: str, allowed: bool) -> bool:
        """After a (un)subscribe check: a persister taking or dropping the subscription.
        Returns whether the (un)subscribe may go ahead: the last connected holder's
        unsubscribe is refused, so its session keeps the share."""
        if st is None or st.kind != p.PERSISTER or topic != self.topic or not allowed:
            return allowed
        if access == p.ACL_UNSUBSCRIBE and self.online.get(st.client_id) == handle and len(self.online) == 1:
            self.kept += 1
            self.log(p.LOG_NOTICE, f"hub-auth: persister {st.client_id!r} is the last one connected to "
                                   f"{self.topic}: its unsubscribe is refused, so its session keeps the share "
                                   "and what arrives waits for it")
            return False
        if access == p.ACL_SUBSCRIBE:
            self.offline.pop(st.client_id, None)
            self.online[st.client_id] = handle
            self.log(p.LOG_INFO, f"hub-auth: persister {st.client_id!r} subscribed to {self.topic} "
                                 f"({self.subscribers} holding it)")
            self._update(f"persister {st.client_id!r} subscribed")
        elif access == p.ACL_UNSUBSCRIBE:
            self.online.pop(st.client_id, None)
            self.offline.pop(st.client_id, None)
            self.log(p.LOG_NOTICE, f"hub-auth: persister {st.client_id!r} unsubscribed from {self.topic}, "
                                   f"handing its share over ({self.subscribers} left)")
            self._update(f"persister {st.client_id!r} unsubscribed")
        return True

    def disconnected(self, st: ClientState | None, handle: Hashable, keeps_session: bool) -> None:
        if st is None or st.client_id not in self.online or self.online[st.client_id] != handle:
            return
        del self.online[st.client_id]
        if keeps_session and self.session_expiry > EXPIRY_MARGIN:
            self.offline[st.client_id] = self.clock() + self.session_expiry - EXPIRY_MARGIN
            self._update("")  # stays open: its session keeps the subscription
        else:
            self._update(f"persister {st.client_id!r} ended its session")

    def expire(self) -> None:
        """Forget kept sessions whose expiry is (nearly) due (on the tick)."""
        if not self.offline:
            return
        now = self.clock()
        for client_id, until in list(self.offline.items()):
            if now >= until:
                del self.offline[client_id]
                self.log(p.LOG_WARNING, f"hub-auth: persister {client_id!r} has been away for "
                                      f"PERSISTER_SESSION_EXPIRY ({self.session_expiry:.0f} s): Mosquitto "
                                      "drops its session and what was queued on it")
        self._update("the last persister's session expired")

    # -- decisions (broker thread) ------------------------------------------------
    def admits(self, st: ClientState | None) -> bool:
        """Whether a client the policy accepted may connect now."""
        if not self.closed[0] or st is None or st.kind != p.KEY:
            return True
        self.held += 1
        if not self._held_logged:
            self._held_logged = True
            self.log(p.LOG_NOTICE, f"hub-auth: holding back API-key clients (first: {st.client_id!r}, "
                                 f"{st.label}) until a persister subscribes to {self.topic}; they retry")
        return False

    def cuts(self, st: ClientState | None) -> bool:
        """Whether a publish must end its client's connection (gate closed): never for the
        persister's own credential (it only reads, the policy denies its writes)."""
        if not self.closed[0] or (st is not None and st.kind == p.PERSISTER):
            return False
        self.cut += 1
        if self.cut == 1 or self.cut % 1000 == 0:
            self.log(p.LOG_NOTICE, f"hub-auth: a publish from {st.client_id if st else '?'!r} arrived with no "
                                 f"persister subscribed: connection ended unacknowledged, the client sends "
                                 f"it again ({self.cut} so far)")
        return True

    def stats(self) -> dict[str, object]:
        gate = "closed" if self.closed[0] else "open" if self.required else "off"
        return {"storage_gate": gate, "persisters_subscribed": len(self.online),
                "persister_sessions_away": len(self.offline), "connects_held": self.held,
                "publishes_cut": self.cut, "persister_unsubscribes_refused": self.kept}


class GroupWatch:
    """Which client ids hold another hub group's subscription now (the notifier's
    `$share/NOTIFY_GROUP/#`), for /health: reported only, it gates nothing."""

    def __init__(self, name: str, group: str) -> None:
        self.name, self.topic = name, f"$share/{group}/#"
        self.online: dict[str, Hashable] = {}
        self.seen = False

    def acl(self, st: ClientState | None, handle: Hashable, access: int, topic: str, allowed: bool) -> None:
        if st is None or st.kind != p.PERSISTER or topic != self.topic or not allowed:
            return
        if access == p.ACL_SUBSCRIBE:
            self.online[st.client_id] = handle
            self.seen = True
        elif access == p.ACL_UNSUBSCRIBE:
            self.online.pop(st.client_id, None)

    def disconnected(self, st: ClientState | None, handle: Hashable) -> None:
        if st is not None and st.client_id in self.online and self.online[st.client_id] == handle:
            del self.online[st.client_id]

    def stats(self) -> dict[str, object]:
        return {f"{self.name}s_subscribed": len(self.online) if self.seen else None}

