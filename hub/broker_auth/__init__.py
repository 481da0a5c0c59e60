"""The Mosquitto auth plugin: Python inside the broker, built with cffi's embedding mode.

Files:
- `build.py`: the cffi build (`python -m hub.broker_auth.build build/` -> `build/hub_auth.so`;
  `make plugin` runs it). Declarations and Mosquitto's `#include`s only; the `.so` starts an
  interpreter in the broker and imports `glue`.
- `glue.py`: the entry points and event callbacks (basic auth, ACL check, tick, disconnect);
  C structs in, return codes out.
- `plugin.py`: life cycle: settings (`plugin_opt_settings`), database, first snapshot (any
  failure makes Mosquitto refuse to start), policy, reloader, tick.
- `snapshot.py`: the access-relevant tables in memory; levels by `hub.access.resolve`.
- `policy.py`: credentials (API keys by SHA-256, browser tokens, service passwords), ACL
  decisions, per-client decision caches, sessions, revocation -> kick list.
- `reloader.py`: background thread following `hub.storage.changes` (a `ChangeCursor`) 4 times a second,
  and at once when the HTTP server asks on `$hub/auth/sync` (the tick then announces the
  change id on `$hub/auth/change`: hub/http/brokersync.py).
- `tickgate.py`: keeps the tick callback off while traffic flows (a tick per packet is costly).
- `storagegate.py`: no value is accepted while no persister holds `$share/PERSISTER_GROUP/#`
  (API-key clients held back at connect, publishes end their connection unacknowledged).
- `stats.py`: counters, written to DATA_DIR/mosquitto/hub_auth_stats.json; `read_stats`.
- `runner.py`: the generated config (`mosquitto/hub.conf.template`) and `run.py --broker`.

Running as a non-root broker (production: Mosquitto drops root to `mosquitto` before it
loads plugins), that user must be able to read: the plugin `.so`; the Python installation
named by PYTHONHOME (a Python under /root is not readable: use the system's); the project
tree and the venv's site-packages (PYTHONPATH); the settings file; and with SQLite, read and
write the database file and its folder (WAL). It writes DATA_DIR/mosquitto/ (stats file).

Known limits: a browser token is checked when it connects; a connection outlives the token's
expiry (it is cut when its user is deleted). A live connection whose permission is removed
stays connected; its subscriptions stop delivering and its publishes are refused.
"""
