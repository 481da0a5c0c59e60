"""The C side of the plugin: Mosquitto's entry points and event callbacks, as cffi
`def_extern`s. Only conversions here (C structs in, return codes out); decisions are in
`policy`, the life cycle in `plugin`.

Every callback runs on Mosquitto's only thread. An exception in a callback is logged and
answered with a refusal (`error=`): the plugin fails closed.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from hub.broker_auth import policy as policy_mod
from hub.broker_auth.plugin import TICK_INTERVAL_NS, Plugin, describe_failure

PLUGIN_VERSION = 5
_plugin: Plugin | None = None
_registered: list[tuple[int, Any]] = []


def attach(ffi: Any, lib: Any) -> None:
    """Define the entry points on cffi's `ffi` (called once by the embedding init code)."""
    assert (lib.MOSQ_ACL_READ, lib.MOSQ_ACL_WRITE, lib.MOSQ_ACL_SUBSCRIBE, lib.MOSQ_ACL_UNSUBSCRIBE) == (
        policy_mod.ACL_READ, policy_mod.ACL_WRITE, policy_mod.ACL_SUBSCRIBE, policy_mod.ACL_UNSUBSCRIBE)
    assert (lib.MOSQ_LOG_INFO, lib.MOSQ_LOG_NOTICE, lib.MOSQ_LOG_WARNING, lib.MOSQ_LOG_ERR) == (
        policy_mod.LOG_INFO, policy_mod.LOG_NOTICE, policy_mod.LOG_WARNING, policy_mod.LOG_ERR)
    string, new, cast, NULL = ffi.string, ffi.new, ffi.cast, ffi.NULL
    ok, auth_refused, acl_denied = lib.MOSQ_ERR_SUCCESS, lib.MOSQ_ERR_AUTH, lib.MOSQ_ERR_ACL_DENIED

    def log(level: int, msg: str) -> None:
        lib.mosquitto_log_printf(level, b"%s", new("char[]", msg.encode("utf-8", "replace")))

    def text(p: Any) -> str | None:
        return None if p == NULL else string(p).decode("utf-8", "replace")

    def refuse(handle: int, access: int, topic: bytes) -> bool:
        return False

    hot: list[Any] = [refuse]  # Policy.check once the plugin is up

    def on_error(exc_type: Any, exc: Any, tb: Any) -> None:
        log(lib.MOSQ_LOG_ERR, "hub-auth: callback failed, refusing: "
            + "".join(traceback.format_exception(exc_type, exc, tb)).replace("\n", " | "))

    @ffi.def_extern()
    def mosquitto_plugin_version(count: int, versions: Any) -> int:
        return PLUGIN_VERSION if any(versions[i] == PLUGIN_VERSION for i in range(count)) else -1

    @ffi.def_extern(error=lib.MOSQ_ERR_UNKNOWN)
    def mosquitto_plugin_init(identifier: Any, userdata: Any, options: Any, count: int) -> int:
        global _plugin
        opts = {text(options[i].key) or "": text(options[i].value) or "" for i in range(count)}
        try:
            _plugin = Plugin(opts, log)
            hot[0] = _plugin.policy.check
        except Exception as e:  # noqa: BLE001 - any failure stops the broker, with the reason
            log(*describe_failure(e))
            return lib.MOSQ_ERR_UNKNOWN
        for event, cb in ((lib.MOSQ_EVT_BASIC_AUTH, lib.hub_on_basic_auth),
                          (lib.MOSQ_EVT_ACL_CHECK, cast("MOSQ_FUNC_generic_callback", lib.hub_on_acl_check)),
                          (lib.MOSQ_EVT_TICK, lib.hub_on_tick),
                          (lib.MOSQ_EVT_DISCONNECT, lib.hub_on_disconnect)):
            rc = lib.mosquitto_callback_register(identifier, event, cb, NULL, NULL)
            if rc != ok:
                log(lib.MOSQ_LOG_ERR, f"hub-auth: cannot register callback for event {event} ({rc})")
                return lib.MOSQ_ERR_UNKNOWN
            _registered.append((event, cb))
        _registered.append((-1, identifier))
        return ok

    @ffi.def_extern(error=lib.MOSQ_ERR_UNKNOWN)
    def mosquitto_plugin_cleanup(userdata: Any, options: Any, count: int) -> int:
        global _plugin
        identifier = next((cb for event, cb in _registered if event == -1), None)
        for event, cb in _registered:
            if event != -1 and identifier is not None:
                lib.mosquitto_callback_unregister(identifier, event, cb, NULL)
        _registered.clear()
        hot[0] = refuse
        if _plugin is not None:
            _plugin.close()
            _plugin = None
        return ok

    @ffi.def_extern(error=auth_refused, onerror=on_error)
    def hub_on_basic_auth(event: int, event_data: Any, userdata: Any) -> int:
        ev = cast("struct mosquitto_evt_basic_auth *", event_data)
        client_id = text(lib.mosquitto_client_id(ev.client)) or ""
        allowed = _plugin.policy.authenticate(  # type: ignore[union-attr]
            ev.client, client_id, text(ev.username), text(ev.password))
        return ok if allowed else auth_refused

    # The hot path: one call per publish and one per delivery to each subscriber (Mosquitto
    # 2.0 caches nothing). Every attribute access costs here: the ctype is looked up once, and
    # the client pointer itself (hashable by address) is the policy's handle.
    # Declared with the event's own type (ABI-identical to void *): cffi hands it over typed.
    @ffi.def_extern(error=acl_denied, onerror=on_error)
    def hub_on_acl_check(event: int, ev: Any, userdata: Any) -> int:
        return ok if hot[0](ev.client, ev.access, string(ev.topic)) else acl_denied

    def kick(client_id: str) -> None:
        lib.mosquitto_kick_client_by_clientid(client_id.encode(), False)

    # Under load Mosquitto 2.0 ticks once per packet read: the throttle is the first thing done.
    next_tick = [0]
    monotonic_ns = time.monotonic_ns

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
            _plugin.policy.disconnected(ev.client, keeps)
        return ok
