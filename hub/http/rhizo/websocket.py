"""rhizo's message websocket, `/api/v1/websocket`, bridged to the broker.

Authenticated like the rest of the API: a key as the Basic password (controllers; the
Basic user name is the client's version, recorded with the connect time), or a browser
session (same origin only). Messages are JSON `{"type", "parameters", "folder"?,
"channel"?}`; each goes where its MQTT twin would, through the broker with the HTTP
server's service login, after the same access check and the same parsing (`hub.wire`):

- `subscribe` `{"subscriptions": [{"folder": "self" | "/path", "include_children",
  "message_type"?}]}`: what is published to those folders (read access needed; only that
  type when `message_type` is given, as rhizo-server's subscriptions matched) comes back
  over the socket as `{"type", "timestamp", "parameters", "folder"}`; what this socket sent
  does not;
- `connect`, `ping`: nothing to do (the connection is authenticated already);
- `watchdog` (a controller): published to its folder, so it counts as hearing from it;
- `update_sequence` `{"sequence", "value", "timestamp"?}` (a name relative to the
  controller's folder, or an absolute path): published to the sequence's folder;
- anything else (`update`, `send_email`, app types): published to `folder` (default: the
  controller's own), write access needed;
- a text line `s,<sequence>,<time>,<value>` or `d,...` (a controller): published to its own
  folder as sent, as it would send it over MQTT.

A message that is refused, here or by the broker (its PUBACK), gets rhizo-server's
`{"type": "error", "timestamp", "parameters": {"message": ...}}` back (with the refused
message's `type` and `folder` in the parameters when it got that far); one that is not
JSON closes the socket, as rhizo-server did. When the change log says the connection's
credential or access may have changed, `recheck` looks again within about a second and a
half: a revoked key, a logged-out, expired or deleted session or user closes the socket
(as the broker kicks MQTT connections), lost read access unsubscribes that folder.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from hub import paths, wire
from hub.errors import BadRequest, Forbidden, HubError, Unauthenticated
from hub.http.auth import Caller, level_of, same_origin
from hub.http.deps import in_session, in_thread
from hub.http.rhizo import recheck
from hub.http.rhizo.access import caller
from hub.http.rhizo.bridge import Bridge
from hub.http.typedefs import AUTH_CACHE, PUBLISHER, SETTINGS
from hub.storage import controllers, resources
from hub.storage.models import Level

log = logging.getLogger("hub.http.rhizo")
QUEUE = 1000  # messages waiting for a slow client; older ones are dropped first
RECENT = 64  # what this socket published, so it does not come back to it
HEARTBEAT = 60.0


def _basic(request: web.Request) -> tuple[str, str]:
    """(user name, password) of `Authorization: Basic`; ("", "") without one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


def _client_version(request: web.Request) -> str:
    return _basic(request)[0][:40]


SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("rhizo_sockets")


def setup(app: web.Application) -> None:
    """Keep the open sockets, so a shutdown closes them instead of waiting for them, and
    follow the change log for them (`recheck`)."""
    app[SOCKETS] = set()
    app.on_startup.append(recheck.start)
    app.on_shutdown.append(_close_all)
    app.on_shutdown.append(recheck.stop)


async def _close_all(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def serve(request: web.Request) -> web.StreamResponse:
    if request.method != "GET":
        raise BadRequest("this is rhizo's message websocket: open it with a websocket client (GET)")
    born = request.app[AUTH_CACHE].generation  # the credential is checked at this change or later
    who = await caller(request)
    if who is None:
        raise Unauthenticated("send a key as the Basic password, or log in first")
    if who.via == "session" and not same_origin(request, request.app[SETTINGS]):
        raise Forbidden(f"cross-origin websocket from {request.headers.get('Origin')!r} refused")
    ws = web.WebSocketResponse(protocols=("http-only",), heartbeat=HEARTBEAT,
                               max_msg_size=request.app[SETTINGS].MQTT_MAX_PAYLOAD)
    if not ws.can_prepare(request).ok:
        raise BadRequest("this is rhizo's message websocket: connect with a websocket client")
    if who.subject.controller_path is not None:
        await in_session(request, controllers.record_status, who.subject.controller_path,
                         {"client_version": _client_version(request)}, connected=True)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    conn = Connection(request, ws, who)
    watch = request.app[recheck.WATCH]
    watch.add(conn, born)
    try:
        await conn.run()
    finally:
        watch.discard(conn)
        request.app[SOCKETS].discard(ws)
    return ws


class Connection:
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, who: Caller) -> None:
        self.request, self.ws, self.who = request, ws, who
        self.outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.recent: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=RECENT)
        self.bridge = Bridge(request.app[SETTINGS], asyncio.get_running_loop(), self._arrived)
        self.known: set[str] = set()  # folders known to exist
        self.subscribed: dict[str, set[str | None]] = {}  # MQTT topic -> message types (None: any)
        self.ending: asyncio.Task[None] | None = None

    def _arrived(self, topic: str, payload: bytes) -> None:
        if (topic, payload) in self.recent:
            self.recent.remove((topic, payload))
            return
        if self.outbox.qsize() >= QUEUE:
            self.outbox.get_nowait()
        self.outbox.put_nowait((topic, payload))

    def folders(self) -> tuple[str, ...]:
        """The folders this socket is subscribed to."""
        return tuple(sorted({t.removesuffix("/#") for t in self.subscribed}))

    def wanted(self, topic: str, type_: str) -> bool:
        """Whether a message of `type_` on `topic` matches one of the subscriptions."""
        for sub, types in self.subscribed.items():
            folder = sub.removesuffix("/#")
            if topic == folder or (sub.endswith("/#") and topic.startswith(folder + "/")):
                if None in types or type_ in types:
                    return True
        return False

    async def apply(self, verdict: recheck.Verdict) -> None:
        """What a recheck found (`recheck.Watch`): close, unsubscribe, or carry on as it says."""
        if self.ws.closed:
            return
        if verdict.caller is None:
            await self._end(verdict.ended)
            return
        self.who = verdict.caller
        for folder in verdict.lost:
            for topic in (folder, folder + "/#"):
                if self.subscribed.pop(topic, None) is not None:
                    self.bridge.unsubscribe(topic)
            await self._error(f"read access to /{folder} was taken away: unsubscribed")

    async def _end(self, why: str) -> None:
        await self._error(why)
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=why[:120].encode())

    def _expired(self) -> None:
        self.ending = asyncio.create_task(self._end("your session has expired: the connection closes"))

    async def run(self) -> None:
        self.bridge.start()
        sender = asyncio.create_task(self._send_loop())
        expiry = None
        if self.who.session is not None:  # a browser session ends at its cookie's expiry
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, self.who.session.expires - time.time()), self._expired)
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await self._error("send JSON text messages")
                    continue
                try:
                    if msg.data[:2] in ("s,", "d,"):
                        await self._line(msg.data)
                        continue
                    try:
                        struct = json.loads(msg.data)
                    except (ValueError, RecursionError):
                        break  # rhizo-server closed the connection on a message that is not JSON
                    await self.handle(struct)
                except HubError as e:
                    await self._error(e.message)
        finally:
            sender.cancel()
            if expiry is not None:
                expiry.cancel()
            await asyncio.get_running_loop().run_in_executor(None, self.bridge.close)
            await self.ws.close()

    async def _error(self, message: str, **about: str) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):  # the client is leaving: nobody to tell
                await self.ws.send_json({"type": "error", "timestamp": _now(),
                                         "parameters": {"message": message, **about}})

    async def _send_loop(self) -> None:
        while True:
            topic, payload = await self.outbox.get()
            try:
                m = wire.parse(payload)
            except HubError:
                continue  # not a message (bad JSON, ...): the persister logs those
            if self.ws.closed:
                return
            if not self.wanted(topic, m.type):
                continue
            await self.ws.send_json({"type": m.type, "timestamp": _now(), "parameters": m.parameters,
                                     "folder": "/" + topic})

    # -- incoming --------------------------------------------------------------------------
    async def handle(self, struct: Any) -> None:
        if not isinstance(struct, dict) or not isinstance(struct.get("type"), str):
            raise BadRequest("send {\"type\": ..., \"parameters\": {...}, \"folder\": optional}")
        kind = struct["type"]
        params = struct.get("parameters", {})
        if not isinstance(params, dict):
            raise BadRequest("parameters must be a JSON object")
        if kind in ("connect", "ping"):
            return
        if kind == "subscribe":
            await self._subscribe(params)
            return
        own = self.who.subject.controller_path
        if kind == "watchdog":
            if own is not None:
                await self._publish(own, wire.build("watchdog", {}))
            return
        if kind in ("update_sequence", "updateSequence", "setNode"):
            await self._update_sequence(params, own)
            return
        folder = struct.get("folder") or own
        if not isinstance(folder, str):
            raise BadRequest(f"message {kind[:40]!r} needs a folder (a path with a leading '/')")
        topic = paths.normalize(folder)
        m = wire.parse(json.dumps({kind: params}).encode(), max_bytes=self.request.app[SETTINGS].MQTT_MAX_PAYLOAD)
        if m.type == wire.UPDATE_SEQUENCE:
            wire.updates(topic, m.parameters)  # refuse here what the persister would refuse
        await self._publish(topic, wire.build(m.type, m.parameters))

    async def _line(self, text: str) -> None:
        own = self.who.subject.controller_path
        if own is None:
            raise BadRequest("'s,' and 'd,' lines go to a controller's own folder: connect with its key")
        payload = text.rstrip("\r\n").encode()
        m = wire.parse(payload, max_bytes=self.request.app[SETTINGS].MQTT_MAX_PAYLOAD)
        if m.type == wire.UPDATE_SEQUENCE:
            wire.updates(own, m.parameters)
        await self._publish(own, payload)

    async def _update_sequence(self, params: dict[str, Any], own: str | None) -> None:
        name = params.get("sequence", params.get("node"))
        if not isinstance(name, str) or not name:
            raise BadRequest("update_sequence needs sequence: a name or a path")
        if not name.startswith("/") and own is None:
            raise BadRequest("a relative sequence name needs a controller key: send an absolute path")
        path = paths.normalize(name) if name.startswith("/") else paths.join(own or "", name)
        folder, seq_name = paths.split(path)
        if folder is None:
            raise BadRequest(f"{name!r} is not a sequence path")
        value = params.get("value")
        item: dict[str, Any] = {"sequence": seq_name, "value": value}
        if params.get("timestamp"):
            item["timestamp"] = params["timestamp"]
        wire.updates(folder, item)
        await self._publish(folder, wire.build(wire.UPDATE_SEQUENCE, item))

    async def _subscribe(self, params: dict[str, Any]) -> None:
        subs = params.get("subscriptions", [])
        if not isinstance(subs, list):
            raise BadRequest("subscriptions must be a list of {\"folder\": ..., \"include_children\": ...}")
        for sub in subs:
            if not isinstance(sub, dict):
                raise BadRequest("each subscription is {\"folder\": \"/path\" or \"self\"}")
            folder = sub.get("folder", sub.get("folderId"))
            if folder in ("self", "[self]"):
                folder = self.who.subject.controller_path
                if folder is None:
                    raise BadRequest("folder 'self' is a controller key's own folder: send a path")
            if not isinstance(folder, str):
                raise BadRequest("a subscription's folder is a path with a leading '/'")
            topic = paths.normalize(folder)
            if await level_of(self.request, self.who, topic) < Level.READ:
                raise Forbidden(f"read access to /{topic} is needed to subscribe")
            type_ = sub.get("message_type", sub.get("messageType"))
            if type_ is not None and not isinstance(type_, str):
                raise BadRequest("a subscription's message_type is a message type (text), or absent for all")
            topics = [topic]
            if sub.get("include_children", sub.get("includeChildren")):
                topics.append(topic + "/#")
            await self._need_folder(topic)
            for t in topics:
                self.subscribed.setdefault(t, set()).add(type_ or None)
                await self.bridge.subscribe(t)

    async def _need_folder(self, topic: str) -> None:
        """NotFound unless `topic` is a folder (the broker drops messages to anything else)."""
        if topic not in self.known:
            await in_session(self.request, resources.get_folder, topic)
            self.known.add(topic)

    async def _publish(self, topic: str, payload: bytes) -> None:
        if await level_of(self.request, self.who, topic) < Level.WRITE:
            raise Forbidden(f"write access to /{topic} is needed")
        await self._need_folder(topic)
        limit = self.request.app[SETTINGS].MQTT_MAX_PAYLOAD
        if len(payload) > limit:
            raise BadRequest(f"message of {len(payload)} bytes is over MQTT_MAX_PAYLOAD ({limit})")
        self.recent.append((topic, payload))
        try:
            await in_thread(self.request, self.request.app[PUBLISHER].publish, topic, payload)
        except HubError as e:  # the broker refused it or is away: say so, with what it was
            if (topic, payload) in self.recent:
                self.recent.remove((topic, payload))
            try:
                type_ = wire.parse(payload).type
            except HubError:
                type_ = ""
            await self._error(e.message, type=type_, folder="/" + topic)


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"
