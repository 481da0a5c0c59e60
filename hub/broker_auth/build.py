"""Build the Mosquitto plugin with cffi's embedding mode: `python -m hub.broker_auth.build build/`.

The `.so` exports Mosquitto's v5 plugin entry points (`mosquitto_plugin_version`, `_init`,
`_cleanup`); cffi implements them by starting a Python interpreter inside the broker the first
time one is called and running `INIT_CODE`, which imports `hub.broker_auth.glue`: all the logic
is Python. The C side is only declarations (`CDEF`) and Mosquitto's `#include`s.

The interpreter embedded in Mosquitto needs PYTHONHOME (the base Python's prefix) in the
broker's environment; `runner.py` sets it, and the project root plus the venv's site-packages
are baked in below as a fallback for PYTHONPATH.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

import cffi

MODULE = "_hub_auth"
TARGET = "hub_auth.so"
ROOT = Path(__file__).resolve().parent.parent.parent

CDEF = """
typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;
typedef struct mqtt5__property mosquitto_property;
struct mosquitto;
struct mosquitto_opt { char *key; char *value; };

#define MOSQ_ERR_SUCCESS ...
#define MOSQ_ERR_AUTH ...
#define MOSQ_ERR_ACL_DENIED ...
#define MOSQ_ERR_UNKNOWN ...
#define MOSQ_ERR_PLUGIN_DEFER ...
#define MOSQ_ERR_NOT_FOUND ...
#define MOSQ_ACL_READ ...
#define MOSQ_ACL_WRITE ...
#define MOSQ_ACL_SUBSCRIBE ...
#define MOSQ_ACL_UNSUBSCRIBE ...
#define MOSQ_LOG_INFO ...
#define MOSQ_LOG_NOTICE ...
#define MOSQ_LOG_WARNING ...
#define MOSQ_LOG_ERR ...
#define MOSQ_LOG_DEBUG ...

enum mosquitto_plugin_event {
    MOSQ_EVT_RELOAD = 1, MOSQ_EVT_ACL_CHECK = 2, MOSQ_EVT_BASIC_AUTH = 3,
    MOSQ_EVT_EXT_AUTH_START = 4, MOSQ_EVT_EXT_AUTH_CONTINUE = 5, MOSQ_EVT_CONTROL = 6,
    MOSQ_EVT_MESSAGE = 7, MOSQ_EVT_PSK_KEY = 8, MOSQ_EVT_TICK = 9, MOSQ_EVT_DISCONNECT = 10,
};

struct mosquitto_evt_basic_auth { struct mosquitto *client; char *username; char *password; ...; };
struct mosquitto_evt_acl_check { struct mosquitto *client; const char *topic; int access; ...; };
struct mosquitto_evt_tick { long now_ns; long next_ns; ...; };
struct mosquitto_evt_disconnect { struct mosquitto *client; int reason; ...; };

typedef int (*MOSQ_FUNC_generic_callback)(int, void *, void *);
int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event,
                                MOSQ_FUNC_generic_callback cb_func, const void *event_data,
                                void *userdata);
int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event,
                                  MOSQ_FUNC_generic_callback cb_func, const void *event_data);
void mosquitto_log_printf(int level, const char *fmt, ...);
const char *mosquitto_client_id(const struct mosquitto *client);
const char *mosquitto_client_address(const struct mosquitto *client);
bool mosquitto_client_clean_session(const struct mosquitto *client);
int mosquitto_client_protocol_version(const struct mosquitto *client);
int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will);
int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties);

extern "Python" int hub_on_basic_auth(int, void *, void *);
extern "Python" int hub_on_acl_check(int, struct mosquitto_evt_acl_check *, void *);
extern "Python" int hub_on_tick(int, void *, void *);
extern "Python" int hub_on_disconnect(int, void *, void *);
"""

EMBEDDING_API = """
int mosquitto_plugin_version(int supported_version_count, const int *supported_versions);
int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count);
int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count);
"""

SOURCE = """
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
"""


def init_code(extra_paths: list[str]) -> str:
    """Python run once inside the broker, before the first entry point returns."""
    return f"""
import sys
for _p in {extra_paths!r}:
    if _p not in sys.path:
        sys.path.append(_p)
from {MODULE} import ffi, lib
from hub.broker_auth import glue
glue.attach(ffi, lib)
"""


def fallback_paths() -> list[str]:
    """The project root and this environment's site-packages (PYTHONPATH wins over these)."""
    return [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]


def make_builder() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.embedding_api(EMBEDDING_API)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ffi.set_source(MODULE, SOURCE, extra_link_args=[f"-Wl,-rpath,{libdir}"] if libdir else [])
    ffi.embedding_init_code(init_code(fallback_paths()))
    return ffi


def build(out_dir: Path) -> Path:
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "cffi-tmp"
    try:
        result = make_builder().compile(tmpdir=str(tmp), target=str(out_dir / TARGET), verbose=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Path(result)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "build"
    print(f"built {build(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
