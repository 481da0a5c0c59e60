"""The tables. Schema changes go through alembic (hub/storage/migrations)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ResourceType(str, enum.Enum):
    FOLDER = "folder"
    ORGANIZATION = "organization"
    CONTROLLER = "controller"
    FILE = "file"
    SEQUENCE = "sequence"

    @property
    def is_folder(self) -> bool:
        return self in (ResourceType.FOLDER, ResourceType.ORGANIZATION, ResourceType.CONTROLLER)


class DataType(str, enum.Enum):
    NUMERIC = "numeric"
    TEXT = "text"
    JSON = "json"
    IMAGE = "image"


class Role(str, enum.Enum):
    MEMBER = "member"
    ADMIN = "admin"


class Level(enum.IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    timezone: Mapped[str | None] = mapped_column(String(64))  # an IANA name, e.g. Europe/Berlin (display only)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # For text messages (send_text_message, watchdog alerts): E.164, e.g. +15551234567.
    phone: Mapped[str | None] = mapped_column(String(32))
    # optional; log-in by it or by email (users.USER_NAME_PATTERN, lower case, unique)
    user_name: Mapped[str | None] = mapped_column(String(50), unique=True)
    attributes: Mapped[str | None] = mapped_column(Text)  # JSON object (e.g. brought over from rhizo-server)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(10), default=Role.MEMBER.value)


class Resource(Base):
    """A node of the tree. `path` is the full path; live paths are unique."""

    __tablename__ = "resources"
    __table_args__ = (
        Index("ix_resources_live_path", "path", unique=True,
              sqlite_where=text("deleted = 0"), postgresql_where=text("NOT deleted")),
        Index("ix_resources_parent", "parent_id", "deleted", "name"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(16))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Latest revision of a file or sequence: "latest value" is one PK look-up.
    last_revision_id: Mapped[int | None] = mapped_column(BigId)
    # Free-form attributes: a file's content type, a controller's status, ...
    attributes: Mapped[str | None] = mapped_column(Text)


class Sequence(Base):
    __tablename__ = "sequences"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    data_type: Mapped[str] = mapped_column(String(10), default=DataType.NUMERIC.value)
    units: Mapped[str] = mapped_column(String(40), default="")
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    decimal_places: Mapped[int | None] = mapped_column(Integer)
    max_history: Mapped[int | None] = mapped_column(Integer)


class Revision(Base):
    """One value of a sequence or one version of a file.

    `timestamp_us` is microseconds since the epoch (UTC): integer buckets make
    downsampling portable SQL, and (resource, timestamp) is unique, which is
    what makes a redelivered update a no-op.
    """

    __tablename__ = "revisions"
    __table_args__ = (
        Index("ix_revisions_resource_ts", "resource_id", "timestamp_us", unique=True,
              postgresql_include=["num"]),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    resource_id: Mapped[int] = mapped_column(Integer)
    timestamp_us: Mapped[int] = mapped_column(BigInteger)
    num: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    bulk_key: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer, default=0)


class Rollup(Base):
    """Aggregates of a sequence's numeric revisions per fixed time bucket
    (`width_s` seconds, bucket start `bucket_us`), kept by `revisions.append`
    in the same transaction, so a chart over a year reads thousands of rollup
    rows instead of millions of revisions."""

    __tablename__ = "revision_rollups"
    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)


class RevisionBlock(Base):
    """Compacted values of one sequence: every value whose time falls in the span
    [span_us, span_us + blocks.SPAN_US), packed by `hub.storage.codec` (`data`).
    Values move here from `revisions` once they are COMPACT_AFTER_SECONDS old
    (`hub.storage.compaction`); `first_us`/`last_us`/`count` describe what is in
    it, and `min`/`max`/`sum` its numbers when every value is a number."""

    __tablename__ = "revision_blocks"
    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    span_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)
    sum: Mapped[float | None] = mapped_column(Float)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)  # at most once a minute (HTTP, MQTT)
    last_used_from: Mapped[str | None] = mapped_column(String(64))  # the client's address then


class RhizoKey(Base):
    """How rhizo-server stored a key that `run.py --import-rhizo` brought over: its
    `key_part` (first and last three characters: the look-up, not unique) and its hash,
    base64(SHA-512(key + rhizo's SALT)), or bcrypt of that for a key rhizo never saw used.
    The `api_keys` row with the same prefix is the key itself (owner, revocation);
    `hub.rhizo_import.keys` checks a presented key against this row."""

    __tablename__ = "rhizo_keys"
    prefix: Mapped[str] = mapped_column(ForeignKey("api_keys.prefix"), primary_key=True)
    key_part: Mapped[str] = mapped_column(String(8), index=True)
    key_hash: Mapped[str] = mapped_column(String(128))


class Permission(Base):
    """`level` on `resource` and below for exactly one subject."""

    __tablename__ = "permissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    level: Mapped[int] = mapped_column(Integer)


class EndedSession(Base):
    """A browser session ended before its cookie expired (log-out). Sessions are signed
    cookies (`hub.http.sessions`); this row makes one stop working. Rows go once the
    cookie would have expired anyway."""

    __tablename__ = "ended_sessions"
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class RateEvent(Base):
    """A rate-limited event (a failed log-in, a PIN request), counted by every HTTP worker
    (`hub.storage.rate_events`). `key` is a hash of "kind:value", never the typed text."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Change(Base):
    """Append-only log of access-relevant changes (keys, users, permissions,
    memberships, folders). The broker plugin polls max(id) to refresh."""

    __tablename__ = "changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(100), default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeadLetter(Base):
    """The last bad messages the persister dropped, for operators."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    topic: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(500))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class Pin(Base):
    """A provisioning PIN: a controller asks for one (POST /pins), a user attaches it to a
    controller folder, the controller trades PIN + pin code for a key, once."""

    __tablename__ = "pins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pin: Mapped[str] = mapped_column(String(16), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the long pin code
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong pin codes so far
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    attached_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    attached_at: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    key_prefix: Mapped[str | None] = mapped_column(String(16))


class ControllerStatus(Base):
    """What a controller last reported and when it was last heard, plus its watchdog."""

    __tablename__ = "controller_status"
    controller_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    client_version: Mapped[str | None] = mapped_column(String(40))
    last_connect_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str | None] = mapped_column(Text)  # the JSON object of its last `status` message
    status_at: Mapped[datetime | None] = mapped_column(DateTime)
    watchdog_minutes: Mapped[int | None] = mapped_column(Integer)  # None: no watchdog
    watchdog_recipients: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    watchdog_set_at: Mapped[datetime | None] = mapped_column(DateTime)
    watchdog_alerted_at: Mapped[datetime | None] = mapped_column(DateTime)  # set while silent


class OutgoingMessage(Base):
    """Every email / text message asked for (sent, refused or throttled): the throttle
    counts these, operators read them when a sender misbehaves."""

    __tablename__ = "outgoing_messages"
    __table_args__ = (Index("ix_outgoing_sender_at", "sender", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sender: Mapped[str] = mapped_column(String(500))  # the folder the message was published to
    kind: Mapped[str] = mapped_column(String(10))  # email | sms
    recipients: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12))  # sent | failed | throttled | refused
    detail: Mapped[str] = mapped_column(String(500), default="")


class AccountCode(Base):
    """A one-time link code of an invitation or a password reset (`hub.storage.accounts`):
    only SHA-256 of the code is kept; `used_at` set once it was used (or replaced)."""

    __tablename__ = "account_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # invite | reset
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # reset: whose
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10), default="member")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class AccountRequest(Base):
    """Someone asking for an account (ACCOUNT_REQUESTS on): pending until an admin decides."""

    __tablename__ = "account_requests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    organization: Mapped[str] = mapped_column(String(100), default="")  # the one asked to join ("" any)
    message: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | approved | refused
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)


class AccountEmail(Base):
    """An email of the account flows waiting for the notifier (`hub.notify.outbox`): the HTTP
    server never speaks SMTP. The body (it holds the link) is cleared once sent."""

    __tablename__ = "account_emails"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)  # queued|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    detail: Mapped[str] = mapped_column(String(500), default="")


class TokenSession(Base):
    """A browser session that was given an MQTT token: what a password reset or change
    ends in `ended_sessions` too, so the broker closes those connections (sessions are
    signed cookies the server keeps no list of). Rows go once the session would have expired."""

    __tablename__ = "token_sessions"
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
