"""The hub's settings: one dataclass, defaults in code.

Load order (later wins):
1. the defaults below;
2. the settings file, a Python file whose UPPERCASE names are settings
   (`settings/config.py`, or the path in the environment variable
   `HUB_SETTINGS`); an unknown name is an error, not a silent typo;
3. environment variables `NAME` or `HUB_NAME` (the prefixed one wins), each
   value parsed as YAML: `HUB_HTTP_PORT=8081`, `HUB_DEBUG=true`,
   `HUB_ALLOWED_ORIGINS='[a, b]'`.

`SECRET_KEY` has no default: on first run it is generated and appended to the
settings file (mode 0600).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = ROOT / "settings" / "config.py"
ENV_PREFIX = "HUB_"


def _s(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class Settings:
    # --- general -----------------------------------------------------------
    DATA_DIR: str = _s("data", "Folder for the SQLite file, local bulk storage, Mosquitto's "
                       "generated config and persistence (relative to the project root).")
    DEBUG: bool = _s(False, "Verbose logs and tracebacks in the server log (never in responses).")
    LOG_LEVEL: str = _s("INFO", "Python logging level for hub processes.")
    SECRET_KEY: str = _s("", "Signs sessions and browser MQTT tokens and derives the internal "
                         "service credentials. Generated on first run if empty; keep it secret.")
    # --- storage -----------------------------------------------------------
    DATABASE_URL: str = _s("", "SQLAlchemy URL. Empty: sqlite file DATA_DIR/hub.db. "
                           "Production: 'postgresql+psycopg://user:pw@host/db' (quote it: it has a colon).")
    BULK_STORAGE_URL: str = _s("", "Where large values go. Empty: file://DATA_DIR/bulk. "
                               "Or 's3://bucket/prefix'.")
    BULK_THRESHOLD: int = _s(16384, "Values larger than this many bytes are kept in bulk storage; "
                             "the revision row keeps the key.")
    S3_ENDPOINT_URL: str = _s("", "S3 endpoint for non-AWS stores (MinIO, moto). Empty: AWS.")
    S3_REGION: str = _s("", "S3 region. Empty: boto3's usual sources.")
    PASSWORD_HASH_ROUNDS: int = _s(12, "bcrypt cost for human passwords (4-16).")
    MIN_PASSWORD_LENGTH: int = _s(10, "Shortest password accepted for a user.")
    # --- MQTT --------------------------------------------------------------
    MQTT_HOST: str = _s("127.0.0.1", "Host the hub's own clients (persister, HTTP) use to reach Mosquitto.")
    MQTT_PORT: int = _s(1883, "Mosquitto's MQTT TCP port.")
    MQTT_WS_PORT: int = _s(9001, "Mosquitto's MQTT-over-websockets port.")
    MQTT_WS_URL: str = _s("", "Websocket URL browsers are told to use. Empty: ws://HTTP host:MQTT_WS_PORT.")
    MQTT_MAX_PAYLOAD: int = _s(1048576, "Largest MQTT message in bytes (Mosquitto's max_packet_size).")
    MQTT_REQUIRE_PERSISTER: bool = _s(True, "The broker plugin takes values only while a persister holds "
                                      "$share/PERSISTER_GROUP/#: until one has subscribed after the broker "
                                      "started, and after the last one left, API-key clients are refused "
                                      "and publishes end their connection unacknowledged (they retry), so "
                                      "no acknowledged value goes unstored. Off: a relay-only hub, values "
                                      "published with no persister reach watchers and are not stored.")
    MQTT_FOLDER_SYNC_SECONDS: float = _s(2.0, "An HTTP create of a folder answers once the broker's plugin "
                                         "accepts it as a topic, waiting at most this long (the create "
                                         "is kept either way; no wait while the broker is unreachable). "
                                         "0: answer at once (the topic opens within about 0.25 s).")
    MQTT_TOKEN_TTL: int = _s(900, "Lifetime in seconds of a browser's MQTT token; the broker ends a "
                                  "connection made with it then (the console reconnects with a newer one).")
    MOSQUITTO_BIN: str = _s("mosquitto", "Mosquitto executable started by run.py.")
    # --- broker ------------------------------------------------------------
    BROKER: str = _s("mosquitto", "mosquitto: one Mosquitto with the hub's plugin (the default, one box). rabbitmq: a "
                     "RabbitMQ cluster answering to the hub's broker-auth service, persisters and notifier on AMQP "
                     "quorum queues (docs/operations.md, \"A RabbitMQ cluster\").")
    RABBITMQ_NODES: list = _s([], "With BROKER=rabbitmq: the nodes, each a dict {host, amqp, mqtt, web_mqtt, "
                              "management, dist} (ports). Empty: RABBITMQ_LOCAL_NODES nodes on 127.0.0.1, node i "
                              "on RABBITMQ_BASE_PORT+10i (AMQP), +1 MQTT, +2 Web MQTT, +3 management, +4 Erlang "
                              "distribution; node 0 takes MQTT_PORT and MQTT_WS_PORT instead.")
    RABBITMQ_LOCAL: bool = _s(True, "run.py --broker starts the RabbitMQ nodes itself, as plain processes under "
                              "DATA_DIR/rabbitmq (development and tests). Off in production: each node is its own "
                              "rabbitmq-server service.")
    RABBITMQ_LOCAL_NODES: int = _s(3, "Nodes of the local cluster (3: client-id tracking needs a majority).")
    RABBITMQ_BASE_PORT: int = _s(25670, "First port of the local cluster (see RABBITMQ_NODES); epmd takes +9.")
    RABBITMQ_SERVER_BIN: str = _s("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server executable of the "
                                  "local cluster (Debian's, run directly: not the wrapper that switches user).")
    RABBITMQ_ADMIN_USER: str = _s("hub-admin", "RabbitMQ user (internal backend, administrator) the hub uses "
                                  "for the management API (revocations) and to declare its queues.")
    RABBITMQ_ADMIN_PASSWORD: str = _s("", "Its password. Empty: derived from SECRET_KEY (the local cluster "
                                      "creates the user with it).")
    RABBITMQ_QUEUE_PREFIX: str = _s("hub", "Names of the hub's quorum queues: PREFIX.persist, PREFIX.notify and "
                                    "their dead-letter queues PREFIX.persist.dead, PREFIX.notify.dead.")
    RABBITMQ_DELIVERY_LIMIT: int = _s(5, "Deliveries of one message to a persister or notifier (each ended by a "
                                      "crash or a reject) before it is dead-lettered as poison.")
    BROKER_AUTH_HOST: str = _s("127.0.0.1", "Address the broker-auth service binds (RabbitMQ's HTTP auth "
                               "backend asks it). Keep it on loopback or a private network: the nodes are its "
                               "only clients, and each request must also carry the secret path derived from "
                               "SECRET_KEY.")
    BROKER_AUTH_PORT: int = _s(8095, "Port of the broker-auth service.")
    # --- HTTP --------------------------------------------------------------
    HTTP_HOST: str = _s("127.0.0.1", "Address the HTTP server binds.")
    HTTP_PORT: int = _s(8080, "Port the HTTP server binds.")
    ALLOWED_ORIGINS: list = _s([], "Extra origins allowed to make cookie-authenticated writes.")
    MAX_REQUEST_BYTES: int = _s(16 * 1024 * 1024, "Largest HTTP request body; larger gets 413.")
    HTTP_READ_CACHE_SECONDS: float = _s(2.0, "Longest an HTTP worker serves a cached resource read (latest "
                                        "value, listing); new values clear it within 0.25 s. 0: no cache.")
    HTTP_ACCESS_LOG: bool = _s(True, "One line per HTTP request on the hub.http.access logger (INFO): the "
                               "common log format, then the request id (X-Request-Id) and the time taken. "
                               "Query values that may be credentials are redacted.")
    # --- persister ---------------------------------------------------------
    AUTO_CREATE_SEQUENCES: bool = _s(True, "Create a sequence on its first update when the "
                                     "publisher may write the folder.")
    PERSISTER_BATCH_SIZE: int = _s(1000, "Most messages stored in one transaction.")
    PERSISTER_BATCH_MS: int = _s(50, "Longest a message waits for its batch to fill, in ms.")
    PERSISTER_GROUP: str = _s("persist", "Shared-subscription group ($share/GROUP/#): persisters in one "
                              "group split the messages, each stored once.")
    PERSISTER_CLIENT_ID: str = _s("", "MQTT client id of this persister; Mosquitto queues its messages "
                                  "under it while it is down. Empty: hub-persister-<hostname>. "
                                  "Give each persister its own.")
    PERSISTER_SESSION_EXPIRY: int = _s(604800, "Seconds Mosquitto keeps a stopped persister's session "
                                       "(and queues its share of the messages); what is still queued "
                                       "when it expires is dropped. The broker plugin reads it too: keep "
                                       "it the same for all persisters.")
    PERSISTER_HANDOVER_ON_STOP: bool = _s(True, "On SIGTERM, leave the shared subscription and store what "
                                          "Mosquitto still holds for this persister before exiting, so "
                                          "nothing waits on a session that may never come back. The last "
                                          "persister connected keeps its session either way (the broker "
                                          "refuses its unsubscribe): values wait there for its next run.")
    PERSISTER_DEAD_LETTERS: int = _s(1000, "How many of the last rejected messages the dead_letters "
                                     "table keeps.")
    PERSISTER_TRIM_SECONDS: float = _s(10.0, "How often the persister trims sequences over their max "
                                       "history (in the background, not on the write path).")
    COMPACT_AFTER_SECONDS: int = _s(86400, "Sequence values older than this are packed, one hour of one "
                                    "sequence at a time, into compressed blocks (a few bytes a value "
                                    "instead of ~160 as rows) by the persister; reads do not notice. "
                                    "0: never compact; otherwise at least 60.")
    # --- notifier: send_email, send_text_message, watchdog -------------------
    NOTIFY_GROUP: str = _s("notify", "Shared-subscription group of the notifier ($share/GROUP/#): "
                           "notifiers in one group split the messages, each handled once.")
    NOTIFY_CLIENT_ID: str = _s("", "MQTT client id of this notifier. Empty: hub-notifier-<hostname>.")
    NOTIFY_MAX_PER_HOUR: int = _s(10, "Emails plus text messages one sender (the folder a message is "
                                  "published to) may send per hour; beyond it they are refused and logged.")
    NOTIFY_ANY_RECIPIENT: bool = _s(False, "Let messages go to any address or number. Off: only to the "
                                    "emails and phones of the sending folder's organization's users.")
    SMTP_HOST: str = _s("", "SMTP server for send_email and watchdog alerts. Empty: email is off "
                        "(requests are refused and logged).")
    SMTP_PORT: int = _s(587, "SMTP server port (587 for STARTTLS, 465 for SSL, 25 for none).")
    SMTP_USER: str = _s("", "SMTP login. Empty: no login.")
    SMTP_PASSWORD: str = _s("", "SMTP password.")
    SMTP_FROM: str = _s("", "From address of the hub's emails. Empty: SMTP_USER.")
    SMTP_TLS: str = _s("starttls", "starttls, ssl or none (none only for a relay on the same host).")
    SMS_URL: str = _s("", "Twilio-compatible endpoint for send_text_message, e.g. "
                      "'https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json' "
                      "({account} is replaced by SMS_ACCOUNT). Empty: text messages are off.")
    SMS_ACCOUNT: str = _s("", "SMS provider account (Twilio: the account SID); the HTTP Basic user.")
    SMS_TOKEN: str = _s("", "SMS provider token (Twilio: the auth token); the HTTP Basic password.")
    SMS_FROM: str = _s("", "Sender number of text messages (E.164, e.g. +15551234567).")
    WATCHDOG_CHECK_SECONDS: float = _s(30.0, "How often the notifier records when controllers were "
                                       "last heard and checks their watchdogs.")
    # --- provisioning ------------------------------------------------------------
    PIN_TTL_SECONDS: int = _s(1800, "Lifetime of a provisioning PIN (POST /api/v1/pins).")
    PIN_MAX_ATTEMPTS: int = _s(5, "Wrong pin codes before a PIN is dead (the controller starts over).")
    PIN_CREATE_PER_HOUR: int = _s(30, "PINs one client address may ask for per hour (per HTTP worker).")
    # --- accounts people open themselves --------------------------------------------
    PUBLIC_URL: str = _s("", "The hub's address as people reach it (e.g. https://hub.example.org), for the "
                         "links in invitation and password-reset emails. Empty: http://HTTP_HOST:HTTP_PORT (links are "
                         "never built from the Host a request names).")
    INVITATION_TTL_SECONDS: int = _s(7 * 24 * 3600, "How long an invitation's link works.")
    PASSWORD_RESET_TTL_SECONDS: int = _s(3600, "How long a password-reset link works.")
    ACCOUNT_REQUESTS: bool = _s(False, "Let people ask for an account (POST /api/v1/account-requests); "
                                "an admin approves (an invitation is emailed) or refuses. Off: 404.")
    ACCOUNT_EMAILS_PER_HOUR: int = _s(5, "Password-reset and account-request emails one address may be "
                                      "sent per hour, and ten times that from one client address.")
    ACCOUNT_EMAIL_POLL_SECONDS: float = _s(2.0, "How often the notifier sends the queued invitation and "
                                           "password-reset emails.")
    # --- moving from rhizo-server ----------------------------------------------
    RHIZO_SALT: str = _s("", "rhizo-server's SALT setting (from its settings/config.py), for keys and "
                         "passwords brought over by run.py --import-rhizo: rhizo hashed both with it. "
                         "Empty: those keys and passwords do not work. Keep it secret.")
    # --- extensions (docs/extensions.md) -----------------------------------------
    EXTENSIONS: list = _s([], "Extensions to load: importable package names, or folders under extensions/ at "
                          "the project root. Their own settings go in this file too; one that fails to load "
                          "stops the hub at start-up.")
    EXTENSIONS_DIR: str = _s("extensions", "The folder of extensions by folder name (relative to the project "
                             "root; git-ignored there).")
    AUTOLOAD_EXTENSIONS: bool = _s(False, "Also load every folder under extensions/, each with the settings in "
                                   "its autoload-config.py (this file and the environment win over them).")
    EXTENSION_API_KEYS: dict = _s({}, "Extension name -> an API key it publishes MQTT messages with, so the "
                                  "broker's access rule applies to it as to any caller. Keep it secret.")
    # Values of the names the extensions declare, and the environment they may come from:
    # checked when the extensions load (hub/extensions/loader.py), not here.
    extension_values: dict = field(default_factory=dict, compare=False, repr=False)
    extension_env: Mapping = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        p = Path(self.DATA_DIR)
        return p if p.is_absolute() else ROOT / p

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.data_path / 'hub.db'}"

    @property
    def bulk_storage_url(self) -> str:
        return self.BULK_STORAGE_URL or f"file://{self.data_path / 'bulk'}"

    @property
    def extensions_path(self) -> Path:
        p = Path(self.EXTENSIONS_DIR)
        return p if p.is_absolute() else ROOT / p

    @property
    def broker_has_mqtt5(self) -> bool:
        """Mosquitto speaks MQTT 5 (PUBACK reason codes, $share); RabbitMQ 3.10 only 3.1.1."""
        return self.BROKER == "mosquitto"

    @property
    def broker_has_plugin(self) -> bool:
        """The broker decides from a snapshot the HTTP server must wait for after a folder
        create (hub/http/brokersync.py): Mosquitto's plugin. RabbitMQ's broker-auth service
        looks at the change log itself when a topic names no folder it knows."""
        return self.BROKER == "mosquitto"

    @property
    def mqtt_ws_url(self) -> str:
        return self.MQTT_WS_URL or f"ws://{self.HTTP_HOST}:{self.MQTT_WS_PORT}{self.mqtt_ws_path}"

    @property
    def mqtt_ws_path(self) -> str:
        return "" if self.BROKER == "mosquitto" else "/ws"  # rabbitmq_web_mqtt's endpoint

    @property
    def mqtt_version(self) -> int:
        """The MQTT protocol level clients should speak: 5, or 4 (3.1.1)."""
        return 5 if self.broker_has_mqtt5 else 4

    @classmethod
    def help_rows(cls) -> list[tuple[str, Any, str]]:
        out = []
        for f in dataclasses.fields(cls):
            if not f.name.isupper():
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out.append((f.name, default, f.metadata.get("help", "")))
        return out


def _coerce(name: str, value: Any, target: Any) -> Any:
    kinds = {"int": int, "bool": bool, "str": str, "list": list, "float": float, "dict": dict}
    kind = kinds.get(target if isinstance(target, str) else getattr(target, "__name__", ""))
    if kind is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is str and isinstance(value, (int, float)):
        return str(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise SettingsError(f"setting {name} must be {kind.__name__}, got {value!r}")


def read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    scope: dict[str, Any] = {"__file__": str(path)}
    try:
        exec(compile(path.read_text(), str(path), "exec"), scope)
    except Exception as e:  # a broken settings file must say where
        raise SettingsError(f"cannot read settings file {path}: {e}") from e
    return {k: v for k, v in scope.items() if k.isupper()}


def settings_path() -> Path:
    return Path(os.environ.get(ENV_PREFIX + "SETTINGS", DEFAULT_SETTINGS_FILE))


def load(path: Path | None = None, env: Mapping[str, str] | None = None,
         generate_secret: bool = True) -> Settings:
    """Build the settings; raise `SettingsError` on unknown names or bad types."""
    environ: Mapping[str, str] = os.environ if env is None else env
    path = settings_path() if path is None else path
    fields = {f.name: f for f in dataclasses.fields(Settings) if f.name.isupper()}
    values: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for name, value in read_file(path).items():
        (values if name in fields else others)[name] = value
    for name in fields:
        for key in (name, ENV_PREFIX + name):
            if key in environ:
                try:
                    values[name] = yaml.safe_load(environ[key]) if environ[key] != "" else ""
                except yaml.YAMLError as e:
                    raise SettingsError(f"environment variable {key} is not valid YAML: {e}") from e
                if values[name] is None:
                    values[name] = ""
    for name, value in values.items():
        values[name] = _coerce(name, value, fields[name].type)
    s = Settings(**values)
    if others and not (s.EXTENSIONS or s.AUTOLOAD_EXTENSIONS):
        name = sorted(others)[0]
        raise SettingsError(f"unknown setting {name} in {path}; known: {', '.join(sorted(fields))}")
    s.extension_values, s.extension_env = others, environ
    if not s.SECRET_KEY:
        if not generate_secret:
            raise SettingsError(f"SECRET_KEY is not set (in {path} or HUB_SECRET_KEY)")
        s.SECRET_KEY = write_secret(path)
    if len(s.SECRET_KEY) < 32:
        raise SettingsError("SECRET_KEY must be at least 32 characters")
    if s.BROKER not in ("mosquitto", "rabbitmq"):
        raise SettingsError(f"setting BROKER must be mosquitto or rabbitmq, got {s.BROKER!r}")
    if s.COMPACT_AFTER_SECONDS != 0 and not 60 <= s.COMPACT_AFTER_SECONDS <= 10 * 366 * 86400:
        raise SettingsError(f"setting COMPACT_AFTER_SECONDS must be 0 (never compact) or from 60 to "
                            f"{10 * 366 * 86400} seconds, got {s.COMPACT_AFTER_SECONDS}")
    return s


def write_secret(path: Path) -> str:
    """Generate a SECRET_KEY and append it to the settings file (0600)."""
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"\n# generated on first run; keep secret\nSECRET_KEY = {key!r}\n")
    return key
