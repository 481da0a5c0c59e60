"""Who may connect and what each connected client may do: pure Python over a `Snapshot`.

Runs on Mosquitto's thread (through `glue`), so nothing here does I/O. Clients are known by
an opaque hashable handle (glue passes cffi's pointer to Mosquitto's client struct, which
hashes and compares by address). Decisions are cached per
client and per topic; `install` swaps in a new snapshot, re-checks every client's
credential and returns the client ids to kick.

Credentials (the MQTT password; the username is informational):
- an API key `hk_<prefix>_<secret>` (user or controller), checked by its SHA-256 against the
  snapshot's live keys;
- a browser token `hbt1.<payload>.<mac>` signed with SECRET_KEY (`hub.credentials`);
- the service passwords of `hub-persister` and `hub-service` (derived from SECRET_KEY).

`hub-service` clients (the HTTP server) may also publish to `SYNC_TOPIC`: never delivered,
it asks the plugin to look at the change log now and to say on `CHANGE_TOPIC` (which only
`hub-service` may read) the change id it works from (docs/architecture.md, "A new folder is
a topic at once").
"""

from __future__ import annotations

import hmac
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from hub import credentials
from hub.access import Subject
from hub.broker_auth import rhizo_keys
from hub.broker_auth.snapshot import Snapshot
from hub.broker_auth.stats import Counters
from hub.storage.models import Level

# Mosquitto's constants (mosquitto_plugin.h, mosquitto.h): a fixed ABI, checked by glue.attach.
ACL_READ, ACL_WRITE, ACL_SUBSCRIBE, ACL_UNSUBSCRIBE = 1, 2, 4, 8
LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR = 1, 2, 4, 8

KEY, TOKEN, PERSISTER, SERVICE = "key", "token", "persister", "service"
SYNC_TOPIC, CHANGE_TOPIC = "$hub/auth/sync", "$hub/auth/change"
_SYNC = SYNC_TOPIC.encode()
CACHE_SIZE = 1024  # decisions kept per client and access kind; cleared when full
MAX_OFFLINE = 50_000  # disconnected clients whose session (queued messages) we still judge

Log = Callable[[int, str], None]
Handle = Hashable  # one per client connection (its struct's address)


@dataclass(slots=True, eq=False)
class ClientState:
    client_id: str
    kind: str
    label: str  # for logs: never the secret
    subject: Subject | None = None
    key_prefix: str | None = None
    secret_hash: str | None = None
    user_id: int | None = None
    expires: float = math.inf  # unix time a browser token runs out: the connection ends then
    session: str = ""  # the browser session a token belongs to: the connection ends at its log-out
    online: bool = True
    kicked: bool = False  # being disconnected for a revoked credential: only its will may pass
    read: dict[bytes, bool] = field(default_factory=dict)
    write: dict[bytes, bool] = field(default_factory=dict)
    sub: dict[bytes, bool] = field(default_factory=dict)

    def clear(self) -> None:
        self.read.clear()
        self.write.clear()
        self.sub.clear()


class Policy:
    def __init__(self, secret_key: str, snapshot: Snapshot, log: Log,
                 counters: Counters | None = None, rhizo_salt: str = "",
                 rhizo_slow_check: Callable[[str], bool] | None = None,
                 sync_requested: Callable[[], None] | None = None) -> None:
        """`sync_requested`: called (on the broker thread, so it must not block) when
        `hub-service` publishes to SYNC_TOPIC."""
        self.secret_key = secret_key
        self.sync_requested = sync_requested
        self.rhizo_salt = rhizo_salt  # RHIZO_SALT: keys imported from rhizo-server work when set
        self.rhizo_slow_check = rhizo_slow_check  # queues a bcrypt check off this thread (rhizo_keys.SlowChecks)
        self.snapshot = snapshot
        self.log = log
        self.counters = counters or Counters()
        self.clients: dict[Handle, ClientState] = {}
        self.by_id: dict[str, Handle] = {}  # client id -> handle of its latest accepted connection
        self.offline: OrderedDict[Handle, None] = OrderedDict()
        self.next_expiry = math.inf  # the earliest `expires` of a known client (read by the reloader thread)
        self._service = {
            credentials.PERSISTER_USERNAME: credentials.service_password(
                secret_key, credentials.PERSISTER_USERNAME),
            credentials.SERVICE_USERNAME: credentials.service_password(
                secret_key, credentials.SERVICE_USERNAME),
        }

    # -- connect ------------------------------------------------------------
    def authenticate(self, handle: Handle, client_id: str, username: str | None,
                     password: str | None) -> bool:
        self._forget(handle)
        state, reason = self._credential(client_id, username, password)
        if state is None:
            self.counters.connects_refused += 1
            self.log(LOG_NOTICE, f"hub-auth: refused connection of client {client_id!r}: {reason}")
            return False
        self.counters.connects_allowed += 1
        self.clients[handle] = state
        self.by_id[client_id] = handle
        self.next_expiry = min(self.next_expiry, state.expires)
        return True

    def _credential(self, client_id: str, username: str | None,
                    password: str | None) -> tuple[ClientState | None, str]:
        if not password:
            return None, "no password (anonymous or empty): a hub API key or browser token is needed"
        if username in self._service:
            if hmac.compare_digest(password.encode(), self._service[username].encode()):
                kind = PERSISTER if username == credentials.PERSISTER_USERNAME else SERVICE
                return ClientState(client_id, kind, username), ""
            return None, f"wrong service password for {username}"
        prefix = credentials.key_prefix(password)
        if prefix is not None:
            entry = self.snapshot.keys.get(prefix)
            if entry is None and self.rhizo_salt and self.snapshot.rhizo_keys and credentials.is_imported_key(password):
                return self._rhizo_key(client_id, password)
            if entry is None:
                return None, f"key {prefix}: unknown or revoked"
            if not credentials.key_matches(password, entry.secret_hash):
                return None, f"key {prefix}: wrong secret"
            subject = self.snapshot.key_subject(entry)
            if subject is None:
                return None, f"key {prefix}: its user or controller folder was deleted"
            return ClientState(client_id, KEY, f"key {prefix}", subject, prefix, entry.secret_hash), ""
        if password.startswith(credentials.TOKEN_TAG + "."):
            verified = credentials.verify_token(self.secret_key, password)
            if verified is None:
                return None, "browser token: expired, tampered or not signed by this hub"
            if verified.session and verified.session in self.snapshot.ended_sessions:
                return None, f"browser token of user {verified.user_id}: its session was logged out"
            subject = self.snapshot.user_subject(verified.user_id)
            if subject is None:
                return None, f"browser token of user {verified.user_id}: user deleted"
            return ClientState(client_id, TOKEN, f"token of user {verified.user_id}", subject,
                               user_id=verified.user_id, expires=float(verified.expires),
                               session=verified.session), ""
        return None, "the password is neither a hub API key nor a browser token"

    def _rhizo_key(self, client_id: str, password: str) -> tuple[ClientState | None, str]:
        """A key imported from rhizo-server (`rhizo_keys.find`: a fast hash only)."""
        prefix, why, slow = rhizo_keys.find(self.snapshot.rhizo_keys, password, self.rhizo_salt)
        if slow and self.rhizo_slow_check is not None:
            self.rhizo_slow_check(password)
        entry = self.snapshot.keys.get(prefix) if prefix is not None else None
        if entry is None:
            return None, why or "unknown or revoked key"
        subject = self.snapshot.key_subject(entry)
        if subject is None:
            return None, f"key {entry.prefix}: its user or controller folder was deleted"
        return ClientState(client_id, KEY, f"key {entry.prefix}", subject, entry.prefix, entry.secret_hash), ""

    # -- disconnect ---------------------------------------------------------
    def disconnected(self, handle: Handle, keeps_session: bool) -> None:
        """A client's network connection closed. Its session may live on (queued QoS 1
        messages are still checked against it) unless a newer connection took its client id."""
        st = self.clients.get(handle)
        if st is None or st.kicked:  # a kicked client is forgotten once its kick (and will) is done
            return
        if not keeps_session or self.by_id.get(st.client_id) != handle:
            self._forget(handle)
            return
        st.online = False
        self.offline[handle] = None
        while len(self.offline) > MAX_OFFLINE:
            self._forget(next(iter(self.offline)))

    def _forget(self, handle: Handle) -> None:
        st = self.clients.pop(handle, None)
        self.offline.pop(handle, None)
        if st is not None and self.by_id.get(st.client_id) == handle:
            del self.by_id[st.client_id]

    # -- ACL ----------------------------------------------------------------
    def check(self, handle: Handle, access: int, topic: bytes) -> bool:
        st = self.clients.get(handle)
        if st is None:
            self.counters.acl_denied += 1
            return False
        if st.kicked:
            return self._last_will(st, access, topic)
        if topic == _SYNC and access == ACL_WRITE and st.kind == SERVICE:
            # never cached (each one is a request), never delivered (denied, silently)
            self.counters.syncs += 1
            if self.sync_requested is not None:
                self.sync_requested()
            return False
        if access == ACL_READ:
            cache = st.read
        elif access == ACL_WRITE:
            cache = st.write
        elif access == ACL_SUBSCRIBE:
            cache = st.sub
        else:  # unsubscribing is always fine
            return True
        allowed = cache.get(topic)
        if allowed is None:
            text = topic.decode("utf-8", "replace")
            allowed, reason = self.decide(st, access, text)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[topic] = allowed
            if not allowed:
                what = {ACL_READ: "read", ACL_WRITE: "publish", ACL_SUBSCRIBE: "subscribe"}[access]
                self.log(LOG_NOTICE, f"hub-auth: denied {what} {text[:200]!r} to client "
                                     f"{st.client_id!r} ({st.label}): {reason}")
        if allowed:
            self.counters.acl_allowed += 1
        else:
            self.counters.acl_denied += 1
        return allowed

    def decide(self, st: ClientState, access: int, topic: str) -> tuple[bool, str]:
        """(allowed, reason if not) for one uncached check."""
        if access == ACL_SUBSCRIBE:
            return self._subscribe(st, topic)
        if topic == CHANGE_TOPIC and st.kind == SERVICE and access == ACL_READ:
            return True, ""
        if topic.startswith("$"):
            return False, "$ topics are not open to clients"
        if st.kind == PERSISTER:
            return (True, "") if access == ACL_READ else (False, "the persister only reads")
        folders = self.snapshot.folders
        if topic not in folders:
            if st.kind == SERVICE and access == ACL_READ:
                return True, ""
            return False, "the topic names no existing folder"
        if st.kind == SERVICE:
            return True, ""
        need = Level.READ if access == ACL_READ else Level.WRITE
        assert st.subject is not None
        if self.snapshot.level(st.subject, topic) >= need:
            return True, ""
        return False, f"{need.name.lower()} access to {topic} is needed"

    def _subscribe(self, st: ClientState, topic: str) -> tuple[bool, str]:
        if topic.startswith("$share/"):
            parts = topic.split("/", 2)
            if st.kind != PERSISTER:
                return False, "shared subscriptions are for the hub's persister only"
            if len(parts) < 3 or not parts[1] or parts[2].startswith("$"):
                return False, "malformed shared subscription"
            return True, ""
        if topic == CHANGE_TOPIC and st.kind == SERVICE:
            return True, ""
        if topic.startswith("$"):
            return False, "$ topics are not open to clients"
        if st.kind == PERSISTER:
            return False, "the persister subscribes through $share/<group>/..."
        if st.kind == SERVICE:
            return True, ""
        literal = []
        for seg in topic.split("/"):
            if seg in ("+", "#"):
                break
            literal.append(seg)
        if not literal:
            return False, "wildcards are allowed only below a folder you may read"
        folder = "/".join(literal)
        if folder not in self.snapshot.folders:
            return False, f"no folder {folder}"
        assert st.subject is not None
        if self.snapshot.level(st.subject, folder) >= Level.READ:
            return True, ""
        return False, f"read access to {folder} is needed"

    # -- changes ------------------------------------------------------------
    def install(self, snapshot: Snapshot) -> list[str]:
        """Use `snapshot` from now on; return the client ids of live connections whose
        credential is no longer valid (the caller kicks them)."""
        self.snapshot = snapshot
        kicks: list[str] = []
        for handle, st in list(self.clients.items()):
            reason = self._revalidate(st)
            st.clear()
            if reason is None:
                continue
            if not st.online:
                self._forget(handle)
                continue
            st.kicked = True  # kept until `forget_kicked`: Mosquitto checks the will during the kick
            if st.online:
                kicks.append(st.client_id)
                self.counters.kicks += 1
                self.log(LOG_NOTICE, f"hub-auth: disconnecting client {st.client_id!r} "
                                     f"({st.label}): {reason}")
        return kicks

    def expire(self, now: float) -> list[str]:
        """Client ids of live connections whose browser token ran out by `now` (the caller
        kicks them, then calls `forget_kicked`); sessions left by such clients are forgotten."""
        if now < self.next_expiry:
            return []
        kicks: list[str] = []
        for handle, st in list(self.clients.items()):
            if st.expires > now or st.kicked:
                continue
            if not st.online:
                self._forget(handle)
                continue
            st.kicked = True
            kicks.append(st.client_id)
            self.counters.kicks += 1
            self.log(LOG_NOTICE, f"hub-auth: disconnecting client {st.client_id!r} ({st.label}): "
                                 "its token expired (the console fetches a new one and reconnects)")
        self.next_expiry = min((st.expires for st in self.clients.values() if not st.kicked), default=math.inf)
        return kicks

    def forget_kicked(self) -> None:
        """After the kicks of `install` returned (their wills were checked inside them)."""
        for handle in [h for h, st in self.clients.items() if st.kicked]:
            self._forget(handle)

    def _last_will(self, st: ClientState, access: int, topic: bytes) -> bool:
        """A controller being kicked may still send its last will to its own folder, so
        whoever watches it learns it went away; nothing else passes."""
        cp = st.subject.controller_path if st.subject is not None else None
        text = topic.decode("utf-8", "replace")
        allowed = access == ACL_WRITE and cp is not None and (text == cp or text.startswith(cp + "/"))
        if allowed:
            self.counters.acl_allowed += 1
        else:
            self.counters.acl_denied += 1
        return allowed

    def _revalidate(self, st: ClientState) -> str | None:
        """None if the client's credential still holds (its subject refreshed), else why not."""
        if st.kind == KEY:
            entry = self.snapshot.keys.get(st.key_prefix or "")
            if entry is None or entry.secret_hash != st.secret_hash:
                return "key revoked"
            st.subject = self.snapshot.key_subject(entry)
            return None if st.subject is not None else "the key's user or controller folder was deleted"
        if st.kind == TOKEN:
            if st.session and st.session in self.snapshot.ended_sessions:
                return "its session was logged out"
            st.subject = self.snapshot.user_subject(st.user_id or 0)
            return None if st.subject is not None else "user deleted"
        return None

    @property
    def online(self) -> int:
        return len(self.clients) - len(self.offline)
