"""The broker-auth service: RabbitMQ's `rabbitmq_auth_backend_http` asks it, over loopback,
who may log in and what each login may do; it answers `allow` / `deny` with the rule the
Mosquitto plugin runs (`hub.broker_auth.policy.Policy` over a `Snapshot`, kept fresh by the
same `Reloader`).

Routes (every node: `auth_http.http_method = post`, `auth_http.{user,vhost,resource,topic}_path =
nodes.auth_base_url(s) + /user ...`): `/{secret}/auth/{user,vhost,resource,topic}`, where
`secret` is `nodes.auth_secret(s)` (a wrong one: 404, counted, logged without it);
`/{secret}/sync` (POST: look at the change log now, answer {"change_id": N} once the answers
follow it: the HTTP server's stand-in for `$hub/auth/sync`, a denied publish would close its
connection here); `/health` (GET, no secret).

What RabbitMQ 3.10.8 sends (form fields; MQTT logins add `client_id` to user, vhost and
resource requests, topic requests carry it as `variable_map.client_id`; AMQP logins carry none):
- user: username, password, vhost, [client_id]; vhost: username, vhost, ip, tags, [client_id];
- resource: username, vhost, resource (queue|exchange), name, permission (configure|write|read),
  tags, [client_id];
- topic: username, vhost, resource=topic, name=amq.topic, permission (read: a subscription's
  filter; write: a publish), tags, routing_key, variable_map.{client_id,username,vhost}.

Clients are `("mqtt", client_id)` or `("amqp", username)` (the hub's service users only).
A key or folder made over HTTP a moment ago works at once: an unknown key prefix or a topic
naming no folder has the reloader look now, waiting up to MQTT_FOLDER_SYNC_SECONDS. A denied
publish makes rabbitmq_mqtt close the connection: the service forgets that login then.
RabbitMQ never checks deliveries and keeps the last 12 topic decisions of a connection, so the
service remembers each client's allowed subscription filters and recent publish topics; when a
new snapshot denies one, or revokes the credential, `revoker.Revoker` closes the connection
(and, for a lost read, first deletes its subscription queues). Policy is not thread-safe:
everything here runs on the event loop; the reloader's thread only hands snapshots over.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from hub import credentials
from hub.broker_auth.plugin import failure_reason
from hub.broker_auth.policy import ACL_SUBSCRIBE, ACL_WRITE, KEY, PERSISTER, TOKEN
from hub.broker_auth.reloader import POLL_INTERVAL
from hub.rabbitmq.authstate import AuthState, Handle, Login
from hub.rabbitmq.revoker import Revoker
from hub.rabbitmq.routing import literal_folder, subscription_queues, to_topic
from hub.settings import Settings

log = logging.getLogger("hub.rabbitmq.authservice")

SERVICE_USERS = (credentials.PERSISTER_USERNAME, credentials.SERVICE_USERNAME)
KINDS = ("user", "vhost", "resource", "topic")


class AuthService:
    """The HTTP face of an `AuthState`: `app()` is the aiohttp application to serve."""

    def __init__(self, settings: Settings, *, revoker: Revoker | None = None,
                 reload_interval: float = POLL_INTERVAL) -> None:
        """Reads the database once (raises if it cannot: the caller says so and exits)."""
        self.state = AuthState(settings, revoker=revoker, reload_interval=reload_interval)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{secret}/auth/{kind}", self._auth)
        app.router.add_get("/{secret}/auth/{kind}", self._auth)
        app.router.add_post("/{secret}/sync", self._sync)
        app.router.add_get("/health", self._health)
        app.on_startup.append(lambda _app: self.state.start())
        app.on_cleanup.append(lambda _app: self.state.close())
        return app

    async def _auth(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if not self._secret_ok(request) or kind not in KINDS:
            raise web.HTTPNotFound()
        form = await request.post() if request.method == "POST" else request.query
        f = {k: v for k, v in form.items() if isinstance(v, str)}
        if f.get("username", "") == self.state.admin_user:
            log.info("hub-auth: denied %s request for %r: that user is RabbitMQ's internal admin", kind,
                     self.state.admin_user)
            return web.Response(text="deny")
        allowed = await getattr(self, f"_{kind}")(f)
        return web.Response(text="allow" if allowed else "deny")

    def _secret_ok(self, request: web.Request) -> bool:
        if hmac.compare_digest(request.match_info["secret"].encode(), self.state.secret.encode()):
            return True
        self.state.bad_secret += 1
        if self.state.bad_secret <= 10 or not self.state.bad_secret & (self.state.bad_secret - 1):
            log.warning("hub-auth: refused a request with a wrong secret path from %s (%s %s; %d so far)",
                        request.remote, request.method, request.path.rsplit("/", 2)[-1], self.state.bad_secret)
        return False

    def _client(self, f: dict[str, str], client_id: str | None) -> tuple[Handle, Login] | None:
        handle: Handle = ("mqtt", client_id) if client_id else ("amqp", f.get("username", ""))
        login = self.state.logins.get(handle)
        if login is None or login.username != f.get("username", "") or handle not in self.state.policy.clients:
            return None
        return handle, login

    async def _user(self, f: dict[str, str]) -> bool:
        username, password, client_id = f.get("username", ""), f.get("password"), f.get("client_id", "")
        if not client_id and username not in SERVICE_USERS:
            log.info("hub-auth: refused AMQP login of %r: AMQP is for the hub's own services", username[:100])
            return False
        handle: Handle = ("mqtt", client_id) if client_id else ("amqp", username)
        prefix = credentials.key_prefix(password or "")
        if prefix is not None and prefix not in self.state.policy.snapshot.keys:
            # a key made a moment ago over HTTP works at once (one look at the change log)
            await self.state.caught_up(max(0.0, self.state.settings.MQTT_FOLDER_SYNC_SECONDS),
                                       lambda: prefix in self.state.policy.snapshot.keys)
        policy, label = self.state.policy, client_id or f"amqp:{username}"
        # A refused attempt must leave the live connection of that client id (or the other
        # persisters) alone: RabbitMQ keeps it open, so try the credential on a handle of its own.
        probe = ("login", label)
        accepted = policy.authenticate(probe, label, username, password)
        policy.disconnected(probe, False)
        if not accepted:
            return False
        if client_id and username not in SERVICE_USERS and not await self.state.hub_queues_declared():
            return False
        self.state.logins.pop(handle, None)
        policy.authenticate(handle, label, username, password)  # the same answer: no await in between
        self.state.counters.connects_allowed -= 1  # counted once
        st = self.state.policy.clients[handle]
        filters = self.state.reads.get(client_id, {}) if client_id else {}
        if any(not self.state.policy.decide(st, ACL_SUBSCRIBE, flt)[0] for flt in filters):
            # its persistent session holds a subscription this credential may not read: drop it first
            results = [await self.state.revoker.delete_queue(q) for q in subscription_queues(client_id)]
            if None in results:
                self.state.policy.disconnected(handle, False)
                log.info("hub-auth: refused client %r: its session holds subscriptions it may not read, "
                         "and no management API answered to drop them", client_id)
                return False
            self.state.reads.pop(client_id, None)
            log.info("hub-auth: dropped the session queues of client %r: it may no longer read "
                     "what they subscribe to", client_id)
        if handle not in self.state.policy.clients:  # a snapshot revoked it while we waited
            return False
        self.state.logins[handle] = Login(username)
        return True

    async def _vhost(self, f: dict[str, str]) -> bool:
        found = self._client(f, f.get("client_id"))
        if found is None or f.get("vhost") != "/":
            return False
        st = self.state.policy.clients[found[0]]
        if st.key_prefix:
            self.state.key_use.seen(st.key_prefix, f.get("ip"))
        return True

    async def _resource(self, f: dict[str, str]) -> bool:
        found = self._client(f, f.get("client_id"))
        if found is None or f.get("vhost") != "/":
            return False
        handle, resource, name, perm = found[0], f.get("resource"), f.get("name", ""), f.get("permission")
        if handle[0] == "mqtt":
            if resource == "queue":
                return name in subscription_queues(handle[1]) and perm in ("configure", "write", "read")
            return resource == "exchange" and name == "amq.topic" and perm in ("read", "write")
        st = self.state.policy.clients[handle]
        return st.kind == PERSISTER and resource == "queue" and name in self.state.persister_queues and perm == "read"

    async def _topic(self, f: dict[str, str]) -> bool:
        found = self._client(f, f.get("variable_map.client_id"))
        perm = f.get("permission")
        if found is None or f.get("vhost") != "/" or f.get("name") != "amq.topic" or perm not in ("read", "write"):
            return False
        handle, login = found
        access = ACL_SUBSCRIBE if perm == "read" else ACL_WRITE
        topic = to_topic(f.get("routing_key", ""), is_filter=access == ACL_SUBSCRIBE)
        if topic is None:
            log.info("hub-auth: denied %s %r to client %r: not a topic this broker can carry unambiguously",
                     perm, f.get("routing_key", "")[:200], handle[1])
            self.state.counters.acl_denied += 1
            return False
        folder = topic if access == ACL_WRITE else literal_folder(topic)
        st = self.state.policy.clients[handle]
        if st.kind in (KEY, TOKEN) and folder and not folder.startswith("$") \
                and folder not in self.state.policy.snapshot.folders:
            await self.state.wait_for_folder(folder)
            if handle not in self.state.policy.clients or self.state.logins.get(handle) is not login:
                return False  # revoked (or logged in anew) while it waited
        allowed = self.state.policy.check(handle, access, topic.encode())
        if not allowed and access == ACL_WRITE:
            self.state.forget(handle)  # rabbitmq_mqtt closes a connection whose publish is denied
        if allowed and handle[0] == "mqtt":
            if access == ACL_WRITE:
                self.state.remember_write(login, topic)
            else:
                self.state.remember_read(st.client_id, topic)
        return allowed

    async def _sync(self, request: web.Request) -> web.StreamResponse:
        if not self._secret_ok(request):
            raise web.HTTPNotFound()
        ok = await self.state.caught_up(max(0.5, self.state.settings.MQTT_FOLDER_SYNC_SECONDS))
        return web.json_response({"ok": ok, "change_id": self.state.policy.snapshot.change_id})

    async def _health(self, _request: web.Request) -> web.StreamResponse:
        snap = self.state.policy.snapshot
        return web.json_response({
            "ok": True, "change_id": snap.change_id, "db_ok": self.state.reloader.db_ok,
            "clients": len(self.state.logins),
            "keys": len(snap.keys), "folders": len(snap.folders),
            "snapshot_age_s": round(time.time() - self.state.reloader.loaded_at, 3),
            **asdict(self.state.counters), **self.state.extra_stats()})


# -- the process --------------------------------------------------------------------------
def describe_failure(e: BaseException) -> str:
    """The log line for a service that cannot start."""
    return ("hub-auth: the broker-auth service cannot start, so RabbitMQ refuses every hub login: "
            f"{failure_reason(e)}")


async def serve(service: AuthService, host: str, port: int, stop: asyncio.Event) -> None:
    """Answer on host:port until `stop` is set."""
    runner = web.AppRunner(service.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("hub-auth: broker-auth service on http://%s:%d/ (change %d)", host, port,
                 service.state.policy.snapshot.change_id)
        await stop.wait()
    finally:
        await runner.cleanup()


def run(settings: Settings) -> int:
    """Serve on BROKER_AUTH_HOST:BROKER_AUTH_PORT until SIGTERM or SIGINT; 0, or 1 when the
    database cannot be read at start or the port cannot be bound (said in the log)."""
    from hub.stopsignals import take_stop_signals

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    take_stop_signals(lambda _signum: loop.call_soon_threadsafe(stop.set), "hub-auth-signals")  # stopsignals.py
    try:
        try:
            service = AuthService(settings)
        except Exception as e:  # noqa: BLE001 - any failure at start: say it loudly, exit non-zero
            log.error(describe_failure(e))
            return 1
        try:
            loop.run_until_complete(serve(service, settings.BROKER_AUTH_HOST, settings.BROKER_AUTH_PORT, stop))
        except OSError as e:
            log.error("hub-auth: cannot listen on %s:%d: %s", settings.BROKER_AUTH_HOST,
                      settings.BROKER_AUTH_PORT, e)
            return 1
        log.info("hub-auth: broker-auth service stopped")
        return 0
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    from hub import settings as settings_mod
    from hub.errors import HubError

    p = argparse.ArgumentParser(prog="python -m hub.rabbitmq.authservice",
                                description="RabbitMQ's HTTP auth backend for the hub (BROKER=rabbitmq).")
    p.add_argument("--settings", metavar="FILE", help="settings file (default settings/config.py or $HUB_SETTINGS)")
    args = p.parse_args(argv)
    try:
        s = settings_mod.load(Path(args.settings) if args.settings else None, generate_secret=False)
    except HubError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, s.LOG_LEVEL.upper(), logging.INFO),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(s)


if __name__ == "__main__":
    sys.exit(main())
