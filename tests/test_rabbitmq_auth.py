"""The RabbitMQ broker-auth service (hub/rabbitmq/authservice.py) without a cluster: its HTTP
answers on a real SQLite hub database, asked the way RabbitMQ 3.10.8's
rabbitmq_auth_backend_http asks (form fields as recorded from a live node), and its kicks
against a fake management API that records what it is told."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub import credentials
from hub.rabbitmq import nodes, revoker
from hub.rabbitmq.authservice import AuthService
from hub.rabbitmq.routing import literal_folder, to_topic
from hub.settings import Settings
from hub.storage import keys, permissions, resources, users
from hub.storage.db import Database, migrate
from hub.storage.models import Level
from tests.support import clean_env, free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
ADMIN_PASSWORD = "rabbit-admin-pass"


# -- a fake management API -------------------------------------------------------------
@dataclass
class FakeManagement:
    port: int
    connections: list[dict[str, Any]] = field(default_factory=list)
    closed: list[tuple[str, str]] = field(default_factory=list)  # (name, X-Reason)
    deleted_queues: list[str] = field(default_factory=list)
    auth_seen: set[str] = field(default_factory=set)
    declared: bool = True  # the hub's queues exist

    def mqtt(self, client_id: str, user: str = "key", listed: bool = True) -> str:
        """`listed`: the node has emitted its statistics since it opened (else only the
        connection-tracking table, the user-name route, knows of it: a young connection)."""
        name = f"127.0.0.1:{40000 + len(self.connections)} -> 127.0.0.1:1883"
        self.connections.append({"name": name, "user": user, "protocol": "MQTT 3.1.1",
                                 "client_properties": {"client_id": client_id, "product": "MQTT client"},
                                 "variable_map": {"client_id": client_id}, "listed": listed})
        return name

    def app(self) -> web.Application:
        async def listing(request: web.Request) -> web.Response:
            self.auth_seen.add(request.headers.get("Authorization", ""))
            return web.json_response([{k: v for k, v in c.items() if k != "listed"}
                                      for c in self.connections if c["listed"]])

        async def of_user(request: web.Request) -> web.Response:  # tracked: no client id shown
            return web.json_response([{"name": c["name"], "user": c["user"], "vhost": "/"}
                                      for c in self.connections if c["user"] == request.match_info["user"]])

        async def close(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            before = len(self.connections)
            self.connections = [c for c in self.connections if c["name"] != name]
            self.closed.append((name, request.headers.get("X-Reason", "")))
            return web.Response(status=204 if len(self.connections) < before else 404)

        async def close_user(request: web.Request) -> web.Response:  # every one of the name's
            gone = [c for c in self.connections if c["user"] == request.match_info["user"]]
            self.connections = [c for c in self.connections if c not in gone]
            self.closed += [(c["name"], request.headers.get("X-Reason", "")) for c in gone]
            return web.Response(status=204)

        async def delete_queue(request: web.Request) -> web.Response:
            assert request.match_info["vhost"] == "/"
            self.deleted_queues.append(request.match_info["name"])
            return web.Response(status=204)

        async def queue(request: web.Request) -> web.Response:  # the hub's queues are declared
            if self.declared and request.match_info["name"].startswith("hub."):
                return web.json_response({"name": request.match_info["name"], "type": "quorum"})
            return web.Response(status=404)

        app = web.Application()
        app.router.add_get("/api/connections", listing)
        app.router.add_get("/api/connections/username/{user}", of_user)
        app.router.add_delete("/api/connections/username/{user}", close_user)
        app.router.add_get("/api/queues/{vhost}/{name}", queue)
        app.router.add_delete("/api/connections/{name}", close)
        app.router.add_delete("/api/queues/{vhost}/{name}", delete_queue)
        return app


# -- the hub's data --------------------------------------------------------------------
@dataclass
class World:
    settings: Settings
    db: Database
    mgmt: FakeManagement
    ctl_key: str
    alice_key: str
    other_key: str
    alice_id: int


@pytest.fixture
def world(tmp_path: Path, settings_factory: Any) -> World:
    port = free_port()
    settings, _ = settings_factory(
        BROKER="rabbitmq", BROKER_AUTH_PORT=free_port(), RABBITMQ_ADMIN_PASSWORD=ADMIN_PASSWORD,
        RABBITMQ_NODES=[{"host": "127.0.0.1", "management": free_port()},  # down: the next one answers
                        {"host": "127.0.0.1", "management": port}])
    settings.data_path.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    db = Database(settings.database_url)
    with db.session() as s:
        acme = users.create_organization(s, "acme")
        users.create_organization(s, "other")
        for path, kind in (("acme/greenhouse", "folder"), ("acme/greenhouse/pi-01", "controller"),
                           ("acme/greenhouse/pi-01/cam", "folder"), ("acme/office", "folder"),
                           ("other/pi-x", "controller")):
            resources.create(s, path, kind)
        alice = users.create_user(s, "alice@example.com", "correct horse battery", rounds=4)
        users.set_membership(s, acme, alice)
        permissions.grant(s, "acme/greenhouse", Level.READ, user_id=alice.id)
        permissions.grant(s, "acme/office", Level.READ, controller_path="acme/greenhouse/pi-01")
        _, ctl = keys.create(s, controller_path="acme/greenhouse/pi-01")
        _, other = keys.create(s, controller_path="other/pi-x")
        _, alice_key = keys.create(s, user_id=alice.id)
        alice_id = alice.id
    w = World(settings, db, FakeManagement(port), ctl, alice_key, other, alice_id)
    yield w
    db.dispose()


@dataclass
class Ctx:
    client: TestClient
    service: AuthService
    world: World

    async def ask(self, kind: str, **fields: str) -> str:
        secret = nodes.auth_secret(self.world.settings)
        r = await self.client.post(f"/{secret}/auth/{kind}", data=fields)
        assert r.status == 200, (kind, r.status)
        text = await r.text()
        assert text in ("allow", "deny")
        return text

    async def login(self, client_id: str, password: str | None, username: str = "key") -> str:
        fields = {"username": username, "vhost": "/", "client_id": client_id}
        if password is not None:
            fields["password"] = password
        return await self.ask("user", **fields)

    async def topic(self, client_id: str, permission: str, routing_key: str, username: str = "key") -> str:
        return await self.ask("topic", username=username, vhost="/", resource="topic", name="amq.topic",
                              permission=permission, tags="", routing_key=routing_key,
                              **{"variable_map.client_id": client_id, "variable_map.username": username,
                                 "variable_map.vhost": "/"})

    async def resource(self, resource: str, name: str, permission: str, username: str = "key",
                       client_id: str | None = None, vhost: str = "/") -> str:
        fields = {"username": username, "vhost": vhost, "resource": resource, "name": name,
                  "permission": permission, "tags": ""}
        if client_id is not None:
            fields["client_id"] = client_id
        return await self.ask("resource", **fields)


def serve(world: World, body: Callable[[Ctx], Awaitable[T]], reload_interval: float = 0.05) -> T:
    async def main() -> T:
        mgmt = TestServer(world.mgmt.app(), port=world.mgmt.port)
        await mgmt.start_server()
        try:
            service = AuthService(world.settings, reload_interval=reload_interval)
            async with TestClient(TestServer(service.app())) as client:
                return await body(Ctx(client, service, world))
        finally:
            await mgmt.close()

    return asyncio.run(main())


async def until(cond: Callable[[], bool], timeout: float) -> float:
    """Seconds until `cond()` held; fails after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


# -- routing keys ----------------------------------------------------------------------
def test_routing_keys_map_back_or_deny() -> None:
    assert to_topic("acme.greenhouse.pi-01", is_filter=False) == "acme/greenhouse/pi-01"
    assert to_topic("acme.*.pi-01.#", is_filter=True) == "acme/+/pi-01/#"
    for key in ("acme.*", "acme.#", "a..b", ".a", "a.", "", "a/b", "a+b", "a.b*", "a.#.b"):
        assert to_topic(key, is_filter=False) is None, key
    for key in ("a..b", "a.b*", "a.#.b", "a.#x", "a/b.#", "a.+"):
        assert to_topic(key, is_filter=True) is None, key
    assert literal_folder("acme/+/x") == "acme" and literal_folder("#") == ""


# -- logins ----------------------------------------------------------------------------
def test_mqtt_logins_wait_for_the_hubs_queues(world: World) -> None:
    world.mgmt.declared = False

    async def body(ctx: Ctx) -> None:
        assert await ctx.login("c-1", world.ctl_key) == "deny"  # a value now would go to no queue
        persister_pw = credentials.service_password(world.settings.SECRET_KEY, credentials.PERSISTER_USERNAME)
        assert await ctx.ask("user", username=credentials.PERSISTER_USERNAME, password=persister_pw) == "allow"
        world.mgmt.declared = True
        assert await ctx.login("c-1", world.ctl_key) == "allow"
        world.mgmt.declared = False  # remembered: the queues are durable
        assert await ctx.login("c-2", world.ctl_key) == "allow"

    serve(world, body)


def test_logins(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hub.rabbitmq.authservice")
    prefix = credentials.key_prefix(world.ctl_key)
    persister_pw = credentials.service_password(world.settings.SECRET_KEY, credentials.PERSISTER_USERNAME)

    async def body(c: Ctx) -> None:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.login("alice-1", world.alice_key, username="alice") == "allow"
        assert await c.login("browser-1", credentials.issue_token(world.settings.SECRET_KEY,
                                                                   world.alice_id, 60)) == "allow"
        for bad in (None, "", "x", f"hk_{prefix}_wrongwrongwrongwrongwrongwrongwrong",
                    credentials.issue_token(world.settings.SECRET_KEY, world.alice_id, -1)):
            assert await c.login("pi-01", bad) == "deny", bad
        # AMQP (no client id): the hub's service users only, with their password
        assert await c.ask("user", username="hub-persister", password=persister_pw) == "allow"
        assert await c.ask("user", username="hub-persister", password=persister_pw + "x") == "deny"
        assert await c.ask("user", username="key", password=world.ctl_key) == "deny"
        # RabbitMQ's admin lives in its internal backend: never granted here, whatever the password
        admin, admin_pw = nodes.admin_credentials(world.settings)
        assert await c.ask("user", username=admin, password=admin_pw) == "deny"
        assert await c.login("adm", admin_pw, username=admin) == "deny"
        # vhost: "/" only, for a login it knows, under the same username; the refused attempts
        # above with client id pi-01 left its live login alone (RabbitMQ keeps that connection)
        assert await c.ask("vhost", username="key", vhost="/", ip="127.0.0.1", tags="", client_id="pi-01") == "allow"
        assert await c.ask("vhost", username="key", vhost="other", ip="127.0.0.1", client_id="pi-01") == "deny"
        assert await c.ask("vhost", username="nobody", vhost="/", client_id="pi-01") == "deny"
        assert await c.ask("vhost", username="key", vhost="/", client_id="never-logged-in") == "deny"
        assert await c.ask("vhost", username="hub-persister", vhost="/", ip="127.0.0.1", tags="") == "allow"

    serve(world, body)
    text = caplog.text
    assert f"key {prefix}: wrong secret" in text
    assert world.ctl_key.split("_", 2)[2] not in text and persister_pw not in text


def test_wrong_secret_is_404_and_health_needs_none(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hub.rabbitmq.authservice")

    async def body(c: Ctx) -> tuple[int, int, int, dict[str, Any]]:
        secret = nodes.auth_secret(world.settings)
        wrong = (await c.client.post("/not-the-secret/auth/user",
                                     data={"username": "key", "password": world.ctl_key, "client_id": "x"})).status
        wrong_kind = (await c.client.post(f"/{secret}/auth/other", data={})).status
        no_secret = (await c.client.post("/auth/user", data={})).status
        health = await (await c.client.get("/health")).json()
        return wrong, wrong_kind, no_secret, health

    wrong, wrong_kind, no_secret, health = serve(world, body)
    assert (wrong, wrong_kind, no_secret) == (404, 404, 404)
    assert health["ok"] is True and health["bad_secret"] == 1 and health["change_id"] > 0
    assert health["folders"] == 7 and health["clients"] == 0
    assert "wrong secret path" in caplog.text and nodes.auth_secret(world.settings) not in caplog.text
    assert (world.settings.data_path / "rabbitmq" / "hub_auth_stats.json").is_file()


# -- topics ----------------------------------------------------------------------------
def test_topic_rules(world: World) -> None:
    async def body(c: Ctx) -> None:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.login("alice-1", world.alice_key) == "allow"
        ok = [("pi-01", "write", "acme.greenhouse.pi-01"), ("pi-01", "write", "acme.greenhouse.pi-01.cam"),
              ("pi-01", "read", "acme.greenhouse.pi-01.#"), ("pi-01", "read", "acme.office.*"),
              ("alice-1", "read", "acme.greenhouse.#"), ("alice-1", "read", "acme.greenhouse.*.cam"),
              ("alice-1", "read", "acme.greenhouse.pi-01")]
        no = [("pi-01", "write", "other.pi-x"), ("pi-01", "write", "acme.office"),  # another org / read only
              ("alice-1", "write", "acme.greenhouse"),  # read only
              ("alice-1", "read", "acme.#"), ("alice-1", "read", "acme"),  # the parent folder
              ("alice-1", "read", "#"), ("alice-1", "read", "*.greenhouse"),  # wildcards at the top
              ("pi-01", "read", "other.pi-x.#"),
              ("pi-01", "write", "acme.greenhouse.pi-01.....office"),  # acme/greenhouse/pi-01/../office
              ("pi-01", "write", "acme.greenhouse.pi-01.."), ("pi-01", "write", "acme.greenhouse.pi-01.*"),
              ("pi-01", "write", "acme/greenhouse/pi-01"), ("alice-1", "read", "acme.green*"),
              ("alice-1", "read", "$share.g.acme.greenhouse.#"), ("alice-1", "read", "$SYS.#"),
              ("pi-01", "write", "$hub.auth.sync"), ("pi-01", "write", "acme.greenhouse.pi-01.nofolder"),
              ("pi-01", "configure", "acme.greenhouse.pi-01")]
        for cid, perm, key in ok:
            assert await c.topic(cid, perm, key) == "allow", (cid, perm, key)
        password = {"pi-01": world.ctl_key, "alice-1": world.alice_key}
        for cid, perm, key in no:
            assert await c.login(cid, password[cid]) == "allow"  # a denied publish ends the login
            assert await c.topic(cid, perm, key) == "deny", (cid, perm, key)
        # rabbitmq_mqtt closes a connection whose publish is denied: the service forgets that login
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.topic("pi-01", "write", "other.pi-x") == "deny"
        assert await c.topic("pi-01", "write", "acme.greenhouse.pi-01") == "deny"
        assert await c.login("pi-01", world.ctl_key) == "allow"
        # checks name the client by client id and must come under the username it logged in with
        assert await c.topic("pi-01", "write", "acme.greenhouse.pi-01", username="someone") == "deny"
        assert await c.topic("pi-02", "write", "acme.greenhouse.pi-01") == "deny"
        assert await c.ask("topic", username="key", vhost="/", resource="topic", name="amq.topic",
                           permission="write", routing_key="acme.greenhouse.pi-01") == "deny"  # no client id

    serve(world, body)


def test_key_made_a_moment_ago_works_at_once(world: World) -> None:
    async def body(c: Ctx) -> tuple[str, float]:
        with world.db.session() as s:
            _, key = keys.create(s, controller_path="acme/greenhouse/pi-01")
        start = time.monotonic()
        return await c.login("pi-01", key), time.monotonic() - start

    answer, took = serve(world, body, reload_interval=30.0)
    assert answer == "allow" and took < 1.0


def test_folder_made_a_moment_ago_opens_at_once(world: World) -> None:
    async def body(c: Ctx) -> tuple[str, float, str, float]:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        with world.db.session() as s:  # as the HTTP API would, just before the controller publishes
            resources.create(s, "acme/greenhouse/pi-01/new", "folder")
        start = time.monotonic()
        fresh = await c.topic("pi-01", "write", "acme.greenhouse.pi-01.new")
        fresh_took, start = time.monotonic() - start, time.monotonic()
        missing = await c.topic("pi-01", "write", "acme.greenhouse.pi-01.never")
        return fresh, fresh_took, missing, time.monotonic() - start

    # the reloader's own interval is far too long: only the check's wake can explain the allow
    fresh, fresh_took, missing, took = serve(world, body, reload_interval=30.0)
    assert fresh == "allow" and fresh_took < 1.0
    assert missing == "deny" and took < 1.0  # one look at the change log, not the whole 2 s


# -- resources -------------------------------------------------------------------------
def test_resource_rules(world: World) -> None:
    persister_pw = credentials.service_password(world.settings.SECRET_KEY, credentials.PERSISTER_USERNAME)
    names = nodes.queue_names(world.settings)

    async def body(c: Ctx) -> None:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.ask("user", username="hub-persister", password=persister_pw) == "allow"
        for q in ("mqtt-subscription-pi-01qos0", "mqtt-subscription-pi-01qos1"):
            for perm in ("configure", "write", "read"):
                assert await c.resource("queue", q, perm, client_id="pi-01") == "allow", (q, perm)
        for perm in ("read", "write"):
            assert await c.resource("exchange", "amq.topic", perm, client_id="pi-01") == "allow"
        denied = [("queue", "mqtt-subscription-pi-02qos1", "read"), ("queue", names["persist"], "read"),
                  ("queue", "mqtt-subscription-pi-01qos2", "configure"), ("exchange", "amq.topic", "configure"),
                  ("exchange", "amq.direct", "write"), ("exchange", "amq.topic", "delete")]
        for resource, name, perm in denied:
            assert await c.resource(resource, name, perm, client_id="pi-01") == "deny", (resource, name, perm)
        assert await c.resource("queue", "mqtt-subscription-pi-01qos1", "read", client_id="pi-01",
                                vhost="other") == "deny"
        assert await c.resource("queue", "mqtt-subscription-pi-01qos1", "read", client_id="pi-01",
                                username="else") == "deny"
        # the persister over AMQP: read on the hub's queues, nothing else
        for q in (names["persist"], names["notify"]):
            assert await c.resource("queue", q, "read", username="hub-persister") == "allow"
            for perm in ("write", "configure"):
                assert await c.resource("queue", q, perm, username="hub-persister") == "deny"
        for resource, name, perm in (("queue", names["persist_dead"], "read"), ("exchange", "amq.topic", "read"),
                                     ("queue", "mqtt-subscription-pi-01qos1", "read")):
            assert await c.resource(resource, name, perm, username="hub-persister") == "deny"
        assert await c.resource("queue", names["persist"], "read", username="hub-service") == "deny"

    serve(world, body)


# -- revocation ------------------------------------------------------------------------
def test_revoked_key_is_kicked_and_refused(world: World) -> None:
    async def body(c: Ctx) -> tuple[float, str, str, str]:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.login("pi-x", world.other_key) == "allow"
        name = world.mgmt.mqtt("pi-01")
        other = world.mgmt.mqtt("pi-x")
        assert await c.topic("pi-01", "write", "acme.greenhouse.pi-01") == "allow"
        with world.db.session() as s:
            keys.revoke(s, credentials.key_prefix(world.ctl_key) or "")
        took = await until(lambda: any(n == name for n, _ in world.mgmt.closed), 2.0)
        assert all(n != other for n, _ in world.mgmt.closed)
        return (took, await c.topic("pi-01", "write", "acme.greenhouse.pi-01"),
                await c.login("pi-01", world.ctl_key), world.mgmt.closed[0][1])

    took, topic, again, reason = serve(world, body, reload_interval=0.25)
    assert took < 2.0
    assert topic == "deny" and again == "deny"
    assert "no longer valid" in reason and world.ctl_key not in reason
    assert any("Basic" in a for a in world.mgmt.auth_seen)  # with the admin's credentials


def test_a_young_connection_is_closed_by_its_user_name(world: World) -> None:
    """Revoked a moment after it connected: the listing does not show the connection yet
    (nor can it be closed by its name), the user name's tracked connections do. When no other
    live login uses that user name, all its connections are closed at once; other names stay."""
    async def body(c: Ctx) -> tuple[float, int]:
        assert await c.login("pi-01", world.ctl_key, username="acme/greenhouse/pi-01") == "allow"
        young = world.mgmt.mqtt("pi-01", user="acme/greenhouse/pi-01", listed=False)
        other = world.mgmt.mqtt("pi-x", user="other/pi-x", listed=False)
        with world.db.session() as s:
            keys.revoke(s, credentials.key_prefix(world.ctl_key) or "")
        took = await until(lambda: any(n == young for n, _ in world.mgmt.closed), 2.0)
        assert await c.service.state.revoker.idle(2)
        assert [n for n, _ in world.mgmt.closed] == [young], other
        return took, c.service.state.revoker.closed_young

    took, closed_young = serve(world, body, reload_interval=0.25)
    assert took < 1.0 and closed_young == 1


def test_a_young_connection_of_a_shared_user_name_waits_for_the_listing(world: World) -> None:
    """Another live login uses the same user name ("key"): closing the name's connections
    would close it too, so the kick waits until the listing shows the client's own."""
    async def body(c: Ctx) -> list[str]:
        assert await c.login("pi-01", world.ctl_key) == "allow"
        assert await c.login("alice-1", world.alice_key) == "allow"
        young = world.mgmt.mqtt("pi-01", listed=False)
        world.mgmt.mqtt("alice-1")
        with world.db.session() as s:
            keys.revoke(s, credentials.key_prefix(world.ctl_key) or "")
        await until(lambda: bool(c.service.state.revoker.pending), 2.0)
        await asyncio.sleep(1.0)
        assert world.mgmt.closed == []
        next(x for x in world.mgmt.connections if x["name"] == young)["listed"] = True  # statistics emitted
        await until(lambda: bool(world.mgmt.closed), 2.0)
        assert await c.service.state.revoker.idle(2)
        return [n for n, _ in world.mgmt.closed] + [young]

    closed = serve(world, body, reload_interval=0.25)
    assert closed[:-1] == [closed[-1]]  # the client's own connection, and only it


def test_an_old_login_is_never_closed_by_its_user_name(world: World) -> None:
    """A login older than the statistics lag whose client is not listed has gone: another
    connection of its user name, come since, is not closed for it."""
    async def body(c: Ctx) -> list[tuple[str, str]]:
        assert await c.login("pi-01", world.ctl_key, username="acme/greenhouse/pi-01") == "allow"
        c.service.state.logins[("mqtt", "pi-01")].since -= revoker.YOUNG_SECONDS + 1
        world.mgmt.mqtt("pi-01-new", user="acme/greenhouse/pi-01", listed=False)  # another key's, say
        with world.db.session() as s:
            keys.revoke(s, credentials.key_prefix(world.ctl_key) or "")
        await until(lambda: bool(c.service.state.revoker.pending), 2.0)
        await asyncio.sleep(1.0)
        return world.mgmt.closed

    assert serve(world, body, reload_interval=0.25) == []


def test_lost_read_drops_subscription_queues(world: World) -> None:
    async def body(c: Ctx) -> tuple[list[str], str, str]:
        assert await c.login("alice-1", world.alice_key) == "allow"
        assert await c.login("pi-01", world.ctl_key) == "allow"
        name = world.mgmt.mqtt("alice-1")
        world.mgmt.mqtt("pi-01")
        assert await c.topic("alice-1", "read", "acme.greenhouse.#") == "allow"
        assert await c.topic("pi-01", "read", "acme.greenhouse.pi-01.#") == "allow"
        with world.db.session() as s:
            for p in permissions.on(s, "acme/greenhouse"):
                permissions.revoke(s, p.id, path="acme/greenhouse")
        await until(lambda: any(n == name for n, _ in world.mgmt.closed), 2.0)
        return ([n for n, _ in world.mgmt.closed], await c.login("alice-1", world.alice_key),
                await c.topic("alice-1", "read", "acme.greenhouse.#"))

    closed, again, topic = serve(world, body)
    assert world.mgmt.deleted_queues == ["mqtt-subscription-alice-1qos0", "mqtt-subscription-alice-1qos1"]
    assert len(closed) == 1  # the controller still reads its own folder: left alone
    assert again == "allow" and topic == "deny"  # the key still holds; the folder is closed to it


def test_lost_write_kicks(world: World) -> None:
    """rabbitmq_mqtt keeps a connection's last 12 topic decisions: a lost write right must end it."""
    with world.db.session() as s:
        grant = permissions.grant(s, "acme/office", Level.WRITE, user_id=world.alice_id)
        grant_id = grant.id

    async def body(c: Ctx) -> tuple[list[str], str]:
        assert await c.login("alice-1", world.alice_key) == "allow"
        name = world.mgmt.mqtt("alice-1")
        assert await c.topic("alice-1", "write", "acme.office") == "allow"
        with world.db.session() as s:
            permissions.revoke(s, grant_id, path="acme/office")
        await until(lambda: any(n == name for n, _ in world.mgmt.closed), 2.0)
        return [n for n, _ in world.mgmt.closed], await c.topic("alice-1", "write", "acme.office")

    closed, topic = serve(world, body)
    assert len(closed) == 1
    assert topic == "deny"
    assert world.mgmt.deleted_queues == []  # it lost no read: its subscriptions stay


# -- the process -----------------------------------------------------------------------
def test_unreadable_database_fails_loudly(tmp_path: Path, settings_factory: Any) -> None:
    _, path = settings_factory(BROKER="rabbitmq", BROKER_AUTH_PORT=free_port(),
                               DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated
    r = subprocess.run([sys.executable, "-m", "hub.rabbitmq.authservice", "--settings", str(path)],
                       cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "cannot start" in r.stderr and "cannot read the database" in r.stderr
