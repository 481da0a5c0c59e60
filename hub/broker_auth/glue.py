"""The C side of the plugin: Mosquitto's entry points and event callbacks, as cffi
`def_extern`s. Only conversions here (C structs in, return codes out); decisions are in
`policy`, the life cycle in `plugin`, the tick's on/off switch in `tickgate`.

Every callback runs on Mosquitto's only thread. An exception in a callback is logged and
answered with a refusal (`error=`): the plugin fails closed.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from hub.broker_auth import policy as policy_mod
from hub.broker_auth.plugin import ADMITTED, HELD, TICK_INTERVAL_NS, Plugin, describe_failure

PLUGIN_VERSION = 5
_plugin: Plugin | None = None


def attach(ffi: Any, lib: Any) -> None:
    """Define the entry points on cffi's `ffi` (called once by the embedding init code)."""
    assert (lib.MOSQ_ACL_READ, lib.MOSQ_ACL_WRITE, lib.MOSQ_ACL_SUBSCRIBE, lib.MOSQ_ACL_UNSUBSCRIBE) == (
        policy_mod.ACL_READ, policy_mod.ACL_WRITE, policy_mod.ACL_SUBSCRIBE, policy_mod.ACL_UNSUBSCRIBE)
    assert (lib.MOSQ_LOG_INFO, lib.MOSQ_LOG_NOTICE, lib.MOSQ_LOG_WARNING, lib.MOSQ_LOG_ERR) == (
        policy_mod.LOG_INFO, policy_mod.LOG_NOTICE, policy_mod.LOG_WARNING, policy_mod.LOG_ERR)
    string, new, cast, NULL = ffi.string, ffi.new, ffi.cast, ffi.NULL
    ok, auth_refused, acl_denied = lib.MOSQ_ERR_SUCCESS, lib.MOSQ_ERR_AUTH, lib.MOSQ_ERR_ACL_DENIED
    # Any other answer makes Mosquitto close the connection: at connect without a CONNACK, on a
    # publish without a PUBACK (storagegate.py says why that, and not "not authorized").
    hang_up = lib.MOSQ_ERR_UNKNOWN
    callbacks = (
        (lib.MOSQ_EVT_BASIC_AUTH, lib.hub_on_basic_auth),
        (lib.MOSQ_EVT_ACL_CHECK, cast("MOSQ_FUNC_generic_callback", lib.hub_on_acl_check)),
        (lib.MOSQ_EVT_DISCONNECT, lib.hub_on_disconnect),
    )
    identifier: Any = None
    next_tick = [0]  # monotonic ns before which a tick does nothing
    monotonic_ns = time.monotonic_ns

    def log(level: int, msg: str) -> None:
        lib.mosquitto_log_printf(level, b"%s", new("char[]", msg.encode("utf-8", "replace")))

    def text(p: Any) -> str | None:
        return None if p == NULL else string(p).decode("utf-8", "replace")

    def refuse(handle: Any, access: int, topic: bytes) -> bool:
        return False

    def nothing() -> None:
        pass

    # The ACL hot path's view of the plugin (rebound once it is up, and at cleanup).
    clients_get: Any = {}.get
    counters: Any = None
    check: Any = refuse
    attention: list[bool] = [False]
    gate_hot: Any = nothing
    store_closed: list[bool] = [False]  # the storage gate (storagegate.py)
    cuts: Any = refuse

    def on_error(exc_type: Any, exc: Any, tb: Any) -> None:
        log(lib.MOSQ_LOG_ERR, "hub-auth: callback failed, refusing: "
            + "".join(traceback.format_exception(exc_type, exc, tb)).replace("\n", " | "))

    def publish(topic: str, payload: bytes) -> int:
        # to every subscriber (read checks apply), QoS 0, not retained; Mosquitto copies payload
        return int(lib.mosquitto_broker_publish_copy(NULL, topic.encode(), len(payload), payload, 0, False, NULL))

    def register_tick() -> None:
        next_tick[0] = 0  # run at the very next tick, whatever the throttle says
        lib.mosquitto_callback_register(identifier, lib.MOSQ_EVT_TICK, lib.hub_on_tick, NULL, NULL)

    def unregister_tick() -> None:
        lib.mosquitto_callback_unregister(identifier, lib.MOSQ_EVT_TICK, lib.hub_on_tick, NULL)

    @ffi.def_extern()
    def mosquitto_plugin_version(count: int, versions: Any) -> int:
        return PLUGIN_VERSION if any(versions[i] == PLUGIN_VERSION for i in range(count)) else -1

    @ffi.def_extern(error=lib.MOSQ_ERR_UNKNOWN)
    def mosquitto_plugin_init(ident: Any, userdata: Any, options: Any, count: int) -> int:
        global _plugin
        nonlocal identifier, clients_get, counters, check, attention, gate_hot, store_closed, cuts
        identifier = ident
        opts = {text(options[i].key) or "": text(options[i].value) or "" for i in range(count)}
        try:
            plugin = Plugin(opts, log, tick_switch=(register_tick, unregister_tick), publish=publish)
        except Exception as e:  # noqa: BLE001 - any failure stops the broker, with the reason
            log(*describe_failure(e))
            return lib.MOSQ_ERR_UNKNOWN
        for event, cb in (*callbacks, (lib.MOSQ_EVT_TICK, lib.hub_on_tick)):
            rc = lib.mosquitto_callback_register(identifier, event, cb, NULL, NULL)
            if rc != ok:
                log(lib.MOSQ_LOG_ERR, f"hub-auth: cannot register callback for event {event} ({rc})")
                plugin.close()
                return lib.MOSQ_ERR_UNKNOWN
        _plugin = plugin
        policy = plugin.policy
        clients_get, counters, check = policy.clients.get, policy.counters, plugin.checked
        store_closed, cuts = plugin.storage.closed, plugin.storage.cuts
        if plugin.gate is not None:
            attention, gate_hot = plugin.gate.attention, plugin.gate.hot
        return ok

    @ffi.def_extern(error=lib.MOSQ_ERR_UNKNOWN)
    def mosquitto_plugin_cleanup(userdata: Any, options: Any, count: int) -> int:
        global _plugin
        nonlocal clients_get, check, attention, gate_hot, store_closed
        clients_get, check, attention, gate_hot, store_closed = {}.get, refuse, [False], nothing, [False]
        plugin, _plugin = _plugin, None
        if plugin is None:
            return ok
        for event, cb in callbacks:
            lib.mosquitto_callback_unregister(identifier, event, cb, NULL)
        if plugin.gate is None or plugin.gate.on:
            unregister_tick()
        plugin.close()
        return ok

    @ffi.def_extern(error=auth_refused, onerror=on_error)
    def hub_on_basic_auth(event: int, event_data: Any, userdata: Any) -> int:
        ev = cast("struct mosquitto_evt_basic_auth *", event_data)
        plugin = _plugin
        if plugin is None:
            return auth_refused
        username, password = text(ev.username), text(ev.password)
        if plugin.gate is not None and plugin.gate.is_poke(username, password):
            log(lib.MOSQ_LOG_INFO, "hub-auth: the plugin's own wake-up connection (tickgate.py), "
                "refused on purpose")
            return auth_refused
        client_id = text(lib.mosquitto_client_id(ev.client)) or ""
        admitted = plugin.admit(ev.client, client_id, username, password)
        if admitted == ADMITTED:
            plugin.connected(ev.client, text(lib.mosquitto_client_address(ev.client)))
        return ok if admitted == ADMITTED else hang_up if admitted == HELD else auth_refused

    # The hot path: one call per publish and one per delivery to each subscriber (Mosquitto
    # 2.0 caches nothing), so every bytecode counts. The event arrives typed (declared with
    # its own struct type, ABI-identical to void *); the client pointer itself (hashable by
    # address) is the policy's handle; a cached decision is answered here (the cache-hit path
    # of Policy.check, inlined), anything else goes to Policy.check.
    @ffi.def_extern(error=acl_denied, onerror=on_error)
    def hub_on_acl_check(event: int, ev: Any, userdata: Any) -> int:
        if attention[0]:
            gate_hot()
        client = ev.client
        st = clients_get(client)
        if st is not None:
            access = ev.access
            if access == 2 and store_closed[0] and cuts(st):
                return hang_up
            cache = st.read if access == 1 else st.write if access == 2 else None
            if cache is not None:
                topic = string(ev.topic)
                allowed = cache.get(topic)
                if allowed is True:
                    counters.acl_allowed += 1
                    return ok
                if allowed is False:
                    counters.acl_denied += 1
                    return acl_denied
                return ok if check(client, access, topic) else acl_denied
        return ok if check(client, ev.access, string(ev.topic)) else acl_denied

    def kick(client_id: str) -> None:
        # with its will: watchers of a revoked controller see it go (policy allows only that)
        lib.mosquitto_kick_client_by_clientid(client_id.encode(), True)

    # Under load Mosquitto 2.0 ticks once per packet read: the throttle is the first thing done.

    @ffi.def_extern(error=ok, onerror=on_error)
    def hub_on_tick(event: int, event_data: Any, userdata: Any) -> int:
        now = monotonic_ns()
        if now >= next_tick[0]:
            next_tick[0] = now + TICK_INTERVAL_NS
            if _plugin is not None:
                _plugin.tick(kick)
        return ok

    @ffi.def_extern(error=ok, onerror=on_error)
    def hub_on_disconnect(event: int, event_data: Any, userdata: Any) -> int:
        ev = cast("struct mosquitto_evt_disconnect *", event_data)
        keeps = (lib.mosquitto_client_protocol_version(ev.client) == 5
                 or not lib.mosquitto_client_clean_session(ev.client))
        if _plugin is not None:
            _plugin.disconnected(ev.client, keeps)
        return ok
