"""A rhizo-server-shaped database (PostgreSQL, or SQLite: rhizo-server's default), filled
by the tests and the benchmark.

`SCHEMA` is the project's own DDL for the tables rhizo-server's SQLAlchemy models define
(`main/resources/models.py`, `main/users/models.py` of rhizolab/rhizo-server): the same
tables, columns, types and nullability. `build` fills one with a small but complete
installation: two organizations, users with rhizo-hashed passwords, controllers with keys
in both of rhizo's key-hash forms, sequences of each data type, files, a deleted subtree,
an app, permissions of every kind, controller status, and `revisions` numeric values
(plus some values kept in bulk storage, uploaded to `bulk` when given).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sqlite3
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import psycopg

SCHEMA = """
CREATE TABLE users (
    id SERIAL PRIMARY KEY,
    user_name VARCHAR(50),
    email_address VARCHAR(100) NOT NULL UNIQUE,
    password_hash VARCHAR(128) NOT NULL,
    full_name VARCHAR(100) NOT NULL,
    info_status VARCHAR NOT NULL,
    attributes VARCHAR NOT NULL,
    deleted BOOLEAN NOT NULL,
    creation_timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    role INTEGER NOT NULL
);
CREATE TABLE resources (
    id SERIAL PRIMARY KEY,
    last_revision_id INTEGER,
    organization_id INTEGER REFERENCES resources (id),
    creation_timestamp TIMESTAMP WITHOUT TIME ZONE,
    modification_timestamp TIMESTAMP WITHOUT TIME ZONE,
    parent_id INTEGER REFERENCES resources (id),
    name VARCHAR NOT NULL,
    type INTEGER NOT NULL,
    permissions VARCHAR,
    system_attributes VARCHAR NOT NULL DEFAULT '{}',
    user_attributes VARCHAR,
    deleted BOOLEAN NOT NULL DEFAULT false,
    file_type VARCHAR(20),
    hash VARCHAR(50),
    size BIGINT
);
CREATE INDEX ix_resources_parent_id ON resources (parent_id);
CREATE TABLE resource_revisions (
    id SERIAL PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources (id),
    timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    data BYTEA
);
CREATE INDEX ix_resource_revisions_resource_id ON resource_revisions (resource_id);
CREATE INDEX ix_resource_revisions_timestamp ON resource_revisions (timestamp);
CREATE TABLE resource_views (
    id SERIAL PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    view VARCHAR NOT NULL
);
CREATE TABLE pins (
    id SERIAL PRIMARY KEY,
    pin INTEGER NOT NULL,
    code VARCHAR(80) NOT NULL,
    creation_timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    enter_timestamp TIMESTAMP WITHOUT TIME ZONE,
    user_id INTEGER REFERENCES users (id),
    controller_id INTEGER REFERENCES resources (id),
    key_created BOOLEAN,
    attributes VARCHAR NOT NULL
);
CREATE TABLE controller_status (
    id INTEGER PRIMARY KEY REFERENCES resources (id),
    client_version VARCHAR(80) NOT NULL,
    web_socket_connected BOOLEAN NOT NULL,
    last_connect_timestamp TIMESTAMP WITHOUT TIME ZONE,
    last_watchdog_timestamp TIMESTAMP WITHOUT TIME ZONE,
    watchdog_notification_sent BOOLEAN NOT NULL,
    attributes VARCHAR NOT NULL
);
CREATE TABLE keys (
    id SERIAL PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES resources (id),
    creation_user_id INTEGER NOT NULL REFERENCES users (id),
    revocation_user_id INTEGER REFERENCES users (id),
    creation_timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    revocation_timestamp TIMESTAMP WITHOUT TIME ZONE,
    access_as_user_id INTEGER REFERENCES users (id),
    access_as_controller_id INTEGER REFERENCES resources (id),
    key_part VARCHAR(8) NOT NULL,
    key_hash VARCHAR(128) NOT NULL,
    key_storage VARCHAR,
    key_storage_nonce VARCHAR
);
CREATE TABLE organization_users (
    id SERIAL PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES resources (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    is_admin BOOLEAN NOT NULL DEFAULT false
);
"""

# SCHEMA as SQLAlchemy's create_all writes rhizo-server's models on SQLite (DateTime: DATETIME,
# kept as text 'YYYY-MM-DD HH:MM:SS.ffffff'; Boolean: BOOLEAN, kept as 0/1; LargeBinary: BLOB)
SQLITE_SCHEMA = (SCHEMA.replace("SERIAL PRIMARY KEY", "INTEGER NOT NULL PRIMARY KEY")
                 .replace("TIMESTAMP WITHOUT TIME ZONE", "DATETIME").replace("BYTEA", "BLOB")
                 .replace("DEFAULT false", "DEFAULT 0"))

SALT = "rhizo-test-salt-0123456789"
KEY_PREFIX = "tst"
# rhizo's types and levels (see hub/rhizo_import/mapping.py)
BASIC, ORG, CONTROLLER, FILE, SEQUENCE, APP = 10, 11, 12, 20, 21, 22
T0 = datetime(2024, 3, 1, 12, 0, 0)


def inner(text: str, salt: str = SALT) -> str:
    return base64.standard_b64encode(hashlib.sha512((text + salt).encode()).digest()).decode()


def bcrypt_inner(text: str) -> str:
    # the bcrypt rhizo-server ran cut its input at 72 bytes silently; today's refuses longer input
    return bcrypt.hashpw(inner(text).encode()[:72], bcrypt.gensalt(4)).decode()


def new_key(rng: random.Random) -> str:
    return KEY_PREFIX + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(50))


def plain_url(url: str) -> str:
    """A libpq URL (psycopg.connect) for a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass
class RhizoData:
    """What `build` put in, for the tests to check against."""

    url: str
    keys: dict[str, str] = field(default_factory=dict)  # name -> key text
    passwords: dict[str, str] = field(default_factory=dict)  # email -> password
    numeric_values: int = 0
    bulk_keys: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # bulk key -> value
    ids: dict[str, int] = field(default_factory=dict)  # names of interest -> rhizo ids


class _Sqlite:
    """The few psycopg calls `build` makes, on a sqlite3 connection, with values stored as
    SQLAlchemy stores them there."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)

    @staticmethod
    def _arg(v: Any) -> Any:
        return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        sql = sql.replace("%s", "?").replace("true", "1").replace("false", "0")
        if ";" in sql.strip().rstrip(";"):
            return self.db.executescript(sql)  # type: ignore[return-value]
        return self.db.execute(sql, tuple(self._arg(p) for p in params))

    def rows(self, resource: int, rows: list[tuple[datetime, bytes | None]]) -> None:
        self.db.executemany("INSERT INTO resource_revisions (resource_id, timestamp, data) VALUES (?, ?, ?)",
                            [(resource, self._arg(ts), v) for ts, v in rows])

    def commit(self) -> None:
        self.db.commit()

    def __enter__(self) -> _Sqlite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()


class _Builder:
    def __init__(self, conn: Any, data: RhizoData) -> None:
        self.c, self.data = conn, data

    def resource(self, name: str, type_: int, parent: int | None, org: int | None, *,
                 perms: Any = None, attrs: dict[str, Any] | None = None, deleted: bool = False,
                 user_attrs: dict[str, Any] | None = None) -> int:
        row = self.c.execute(
            "INSERT INTO resources (organization_id, creation_timestamp, modification_timestamp, parent_id, name, "
            "type, permissions, system_attributes, deleted, user_attributes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (org, T0, T0, parent, name, type_, json.dumps(perms) if perms is not None else None,
             json.dumps(attrs or {}), deleted, json.dumps(user_attrs) if user_attrs else None)).fetchone()
        assert row is not None
        return int(row[0])

    def user(self, email: str, password: str, *, role: int = 0, deleted: bool = False,
             password_hash: str | None = None, user_name: str | None = None) -> int:
        row = self.c.execute(
            "INSERT INTO users (user_name, email_address, password_hash, full_name, info_status, attributes, "
            "deleted, creation_timestamp, role) VALUES (%s, %s, %s, %s, '{}', '{}', %s, %s, %s) RETURNING id",
            (user_name, email, password_hash or bcrypt_inner(password), email.split("@")[0].title(), deleted, T0,
             role)).fetchone()
        assert row is not None
        self.data.passwords[email] = password
        return int(row[0])

    def key(self, name: str, org: int, creator: int, *, user: int | None = None, controller: int | None = None,
            slow: bool = False, revoked: bool = False) -> None:
        text = new_key(random.Random(name))
        self.c.execute(
            "INSERT INTO keys (organization_id, creation_user_id, revocation_user_id, creation_timestamp, "
            "revocation_timestamp, access_as_user_id, access_as_controller_id, key_part, key_hash, key_storage, "
            "key_storage_nonce) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, '', '')",
            (org, creator, creator if revoked else None, T0, T0 + timedelta(days=1) if revoked else None, user,
             controller, text[:3] + text[-3:], bcrypt_inner(text) if slow else inner(text)))
        self.data.keys[name] = text

    def revisions(self, resource: int, rows: list[tuple[datetime, bytes | None]]) -> None:
        if isinstance(self.c, _Sqlite):
            self.c.rows(resource, rows)
            return
        with self.c.cursor().copy("COPY resource_revisions (resource_id, timestamp, data) FROM STDIN") as cp:
            for ts, value in rows:
                cp.write_row((resource, ts, value))


def connect(url: str) -> Any:
    """psycopg for PostgreSQL, or the sqlite3 stand-in for `sqlite:///PATH` (created)."""
    if url.startswith("sqlite:///"):
        return _Sqlite(url[len("sqlite:///"):])
    return psycopg.connect(plain_url(url), autocommit=False)


# numbers with more decimals than their sequence's decimal_places 1, and other awkward ones
EXACT_VALUES = [21.47, 22.25, 0.1 + 0.2, 1e-9, 1e300, -123456789.987654321, 2.0 ** 60 + 1024, 99.95, 1 / 3]


def build(url: str, *, revisions: int = 3000, bulk: Any = None, bucket: str = "") -> RhizoData:
    """Create rhizo-server's tables in the empty database at `url` (PostgreSQL, or a new
    SQLite file for `sqlite:///PATH`) and fill them. With `bulk` (a boto3 S3 client) and
    `bucket`, three image values live in bulk storage."""
    data = RhizoData(url)
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        Path(url[len("sqlite:///"):]).unlink(missing_ok=True)
    with connect(url) as conn:
        conn.execute(SQLITE_SCHEMA if sqlite else SCHEMA)
        b = _Builder(conn, data)
        admin = b.user("root@example.com", "root password 1", role=2)
        alice = b.user("alice@example.com", "alice password 1")
        bob = b.user("bob@example.com", "bob password 12")
        b.user("gone@example.com", "gone password 1", deleted=True)
        b.user("long@example.com", "a long pass phrase, " * 5, user_name="Long.User")  # 100 bytes
        b.user("legacy@example.com", "legacy password", password_hash="5f4dcc3b5aa765d61d8327deb882cf99")
        lab = b.resource("lab1", ORG, None, None, attrs={"full_name": "Lab One", "timezone": "UTC"})
        conn.execute("UPDATE resources SET organization_id = id, permissions = %s WHERE id = %s",
                     (json.dumps([[110, lab, 20], [120, lab, 20]]), lab))
        other = b.resource("other", ORG, None, None, attrs={"full_name": "Other"}, perms=[])
        conn.execute("UPDATE resources SET organization_id = id WHERE id = %s", (other,))
        conn.execute("INSERT INTO organization_users (organization_id, user_id, is_admin) VALUES "
                     "(%s, %s, true), (%s, %s, false)", (lab, alice, lab, bob))
        ctrls = b.resource("controllers", BASIC, lab, lab)
        pi1 = b.resource("pi-01", CONTROLLER, ctrls, lab, attrs={
            "watchdog_minutes": 30, "watchdog_recipients": "alice@example.com, +15551234567"})
        b.resource("archive", 13, lab, lab, attrs={"remote_path": "/mnt/archive/lab1"})  # a remote folder
        pi2 = b.resource("pi 02", CONTROLLER, ctrls, lab)  # a name the hub spells pi_02
        shared = b.resource("shared", BASIC, lab, lab, perms=[[130, bob, 10], [100, 0, 10]])
        secret = b.resource("secret", BASIC, other, other)
        data.ids.update(lab=lab, pi1=pi1, pi2=pi2, shared=shared, secret=secret, bob=bob)
        gone = b.resource("old", BASIC, lab, lab, deleted=True)
        b.resource("inside-old", SEQUENCE, gone, lab, attrs={"data_type": 1})
        b.resource("Controllers", APP, other, other)
        temp = b.resource("temp", SEQUENCE, pi1, lab, attrs={
            "data_type": 1, "decimal_places": 1, "units": "degrees C", "max_history": 1_000_000,
            "min_storage_interval": 0}, user_attrs={"location": "bench 3"})
        note = b.resource("note", SEQUENCE, pi1, lab, attrs={"data_type": 2, "max_history": 10000})
        cam = b.resource("cam", SEQUENCE, pi1, lab, attrs={"data_type": 3})
        readme = b.resource("readme.txt", FILE, shared, lab)
        rows = [(T0 + timedelta(seconds=i), repr(EXACT_VALUES[i] if i < len(EXACT_VALUES) else
                                                 round(20 + (i % 1000) / 100, 2)).encode())
                for i in range(revisions - 2)]  # 21.47 and the like at decimal_places 1: kept as sent
        rows.append((T0, b"99.5"))  # the same instant twice: the hub keeps both, 1 us apart
        rows.append((T0 + timedelta(seconds=5, microseconds=1), b"not a number"))
        b.revisions(temp, rows)
        data.numeric_values = revisions - 1
        b.revisions(note, [(T0 + timedelta(minutes=i), f"note {i}".encode()) for i in range(20)])
        b.revisions(readme, [(T0, b"first version"), (T0 + timedelta(days=1), b"second version\n")])
        if bulk is not None:
            for i in range(3):
                rev = conn.execute("INSERT INTO resource_revisions (resource_id, timestamp, data) "
                                   "VALUES (%s, %s, NULL) RETURNING id", (cam, T0 + timedelta(hours=i))).fetchone()
                assert rev is not None
                id_str = f"{cam:09d}"
                key = f"{lab}/{id_str[-9:-6]}/{id_str[-6:-3]}/{id_str[-3:]}/{cam}_{rev[0]}"
                value = bytes([i]) * 1500 + b"\x89PNG"
                bulk.put_object(Bucket=bucket, Key=key, Body=value)
                data.bulk_keys.append(key)
                data.images[key] = value
        b.key("pi1", lab, alice, controller=pi1)
        b.key("pi2", lab, alice, controller=pi2, slow=True)
        b.key("pi1-old", lab, alice, controller=pi1, revoked=True)
        b.key("alice", lab, admin, user=alice, slow=True)
        conn.execute("INSERT INTO controller_status (id, client_version, web_socket_connected, last_connect_timestamp, "
                     "last_watchdog_timestamp, watchdog_notification_sent, attributes) VALUES "
                     "(%s, '0.1.5', false, %s, %s, false, %s)",
                     (pi1, T0, T0 + timedelta(minutes=5), json.dumps({"disk": 12.5})))
        conn.commit()
    return data
