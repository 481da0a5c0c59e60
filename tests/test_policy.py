"""The plugin's policy without a broker: a snapshot loaded from a real database, the
decisions on it, the cache, revocation kicks, sessions, the reloader and the stats file."""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub import credentials
from hub.access import Subject
from hub.broker_auth import policy as policy_mod
from hub.broker_auth.policy import ACL_READ, ACL_SUBSCRIBE, ACL_UNSUBSCRIBE, ACL_WRITE, Policy
from hub.broker_auth.reloader import Reloader
from hub.broker_auth.snapshot import Snapshot, load
from hub.broker_auth.stats import Counters, read_stats, stats_path
from hub.settings import Settings
from hub.storage import changes, keys, permissions, resources, users
from hub.storage import sessions as ended_sessions
from hub.storage.db import Database
from hub.storage.models import Level, Role

SECRET = secrets.token_hex(24)
# The decisions do not depend on the database: most tests run on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Data:
    db: Database
    ctl_key: str
    alice_key: str
    admin_key: str
    alice_id: int
    orgadmin_id: int


@pytest.fixture
def data(db: Database) -> Data:
    with db.session() as s:
        acme = users.create_organization(s, "acme")
        users.create_organization(s, "other")
        for path, kind in (("acme/greenhouse", "folder"), ("acme/greenhouse/pi-01", "controller"),
                           ("acme/greenhouse/pi-01/cam", "folder"), ("acme/office", "folder"),
                           ("acme/office/desk", "folder"), ("other/pi-x", "controller")):
            resources.create(s, path, kind)
        alice = users.create_user(s, "alice@example.com", "correct horse battery", rounds=4)
        carol = users.create_user(s, "carol@example.com", "correct horse battery", rounds=4)
        root = users.create_user(s, "root@example.com", "correct horse battery", rounds=4, is_admin=True)
        users.set_membership(s, acme, alice)
        users.set_membership(s, acme, carol, Role.ADMIN.value)
        permissions.grant(s, "acme/greenhouse", Level.READ, user_id=alice.id)
        permissions.grant(s, "acme/office/desk", Level.WRITE, organization_id=acme.id)
        permissions.grant(s, "acme/office", Level.READ, controller_path="acme/greenhouse/pi-01")
        _, ctl = keys.create(s, controller_path="acme/greenhouse/pi-01")
        _, alice_key = keys.create(s, user_id=alice.id)
        _, admin_key = keys.create(s, user_id=root.id)
        return Data(db, ctl, alice_key, admin_key, alice.id, carol.id)


def snapshot_of(db: Database) -> Snapshot:
    with db.session() as s:
        return load(s)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, level: int, msg: str) -> None:
        self.lines.append(msg)


@pytest.fixture
def log() -> Log:
    return Log()


_handles = itertools.count(1000)


def connect(p: Policy, password: str | None, username: str | None = "key", client_id: str = "") -> int | None:
    h = next(_handles)
    return h if p.authenticate(h, client_id or f"c{h}", username, password) else None


# -- the snapshot agrees with the HTTP API's rule -----------------------------------
def test_snapshot_levels_match_storage_rule(data: Data) -> None:
    snap = snapshot_of(data.db)
    with data.db.session() as s:
        subjects = [keys.subject_for_key(s, keys.verify(s, k)) for k in (data.ctl_key, data.alice_key,
                                                                         data.admin_key)]
        subjects.append(users.subject_for_user(s, users.get_user(s, data.orgadmin_id)))
        subjects.append(Subject(user_id=9999))
        for subject, path in itertools.product(subjects, list(snap.folders)):
            assert snap.level(subject, path) == permissions.level(s, subject, path), (subject, path)
    assert snap.level(subjects[0], "acme/nowhere") == Level.NONE


# -- authentication -----------------------------------------------------------------
@sqlite_only
def test_authenticate(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    prefix = credentials.key_prefix(data.alice_key)
    good = [data.ctl_key, data.alice_key, credentials.issue_token(SECRET, data.alice_id, 60)]
    for password in good:
        assert connect(p, password) is not None
    assert connect(p, data.alice_key, username=None) is not None
    for name in (credentials.PERSISTER_USERNAME, credentials.SERVICE_USERNAME):
        assert connect(p, credentials.service_password(SECRET, name), username=name) is not None
        assert connect(p, data.alice_key, username=name) is None
    bad = [None, "", "x", f"hk_{prefix}_{secrets.token_urlsafe(32)}", credentials.new_key().key,
           credentials.issue_token(SECRET, data.alice_id, -1), credentials.issue_token("y" * 48, 1, 60),
           credentials.issue_token(SECRET, 424242, 60)]
    for password in bad:
        assert connect(p, password) is None, password
    assert p.counters.connects_allowed == 6 and p.counters.connects_refused == len(bad) + 2
    text = "\n".join(log.lines)
    assert f"key {prefix}: wrong secret" in text
    assert data.alice_key.split("_", 2)[2] not in text


@sqlite_only
def test_expired_tokens_are_ended(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    now = time.time()
    short = connect(p, credentials.issue_token(SECRET, data.alice_id, 30, now=now), client_id="short")
    long = connect(p, credentials.issue_token(SECRET, data.alice_id, 300, now=now), client_id="long")
    key = connect(p, data.alice_key, client_id="key")
    assert None not in (short, long, key)
    assert p.next_expiry == int(now + 30)
    assert p.expire(now + 10) == []
    assert p.expire(now + 31) == ["short"]
    assert p.check(short, ACL_READ, b"acme/greenhouse") is False  # being kicked: nothing passes
    p.forget_kicked()
    assert short not in p.clients and long in p.clients and key in p.clients
    assert p.next_expiry == int(now + 300) and p.counters.kicks == 1
    assert "'short' (token of user" in "\n".join(log.lines) and "its token expired" in log.lines[-1]
    assert p.expire(now + 1000) == ["long"]
    p.forget_kicked()
    assert p.next_expiry == math.inf and list(p.clients) == [key]


# -- ACL ------------------------------------------------------------------------------
@sqlite_only
def test_controller_user_and_admin_decisions(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    ctl, alice = connect(p, data.ctl_key), connect(p, data.alice_key)
    admin = connect(p, data.admin_key)
    carol_token = connect(p, credentials.issue_token(SECRET, data.orgadmin_id, 60))
    assert None not in (ctl, alice, admin, carol_token)
    expect = {
        (ctl, ACL_WRITE, "acme/greenhouse/pi-01"): True,
        (ctl, ACL_WRITE, "acme/greenhouse/pi-01/cam"): True,
        (ctl, ACL_WRITE, "acme/greenhouse/pi-01/nofolder"): False,
        (ctl, ACL_WRITE, "acme/greenhouse"): False,
        (ctl, ACL_READ, "acme/office/desk"): True,  # a permission granted to the controller
        (ctl, ACL_WRITE, "acme/office/desk"): False,  # organization grants are for members
        (ctl, ACL_WRITE, "other/pi-x"): False,
        (alice, ACL_READ, "acme/greenhouse/pi-01/cam"): True,
        (alice, ACL_WRITE, "acme/greenhouse"): False,
        (alice, ACL_WRITE, "acme/office/desk"): True,  # through her organization
        (alice, ACL_READ, "acme/office"): False,
        (alice, ACL_READ, "$SYS/broker/uptime"): False,
        (carol_token, ACL_WRITE, "acme"): True,  # organization admin
        (carol_token, ACL_READ, "other/pi-x"): False,
        (admin, ACL_WRITE, "other/pi-x"): True,
        (admin, ACL_WRITE, "nowhere"): False,  # no folder, whoever asks
        (admin, ACL_UNSUBSCRIBE, "#"): True,
    }
    for (h, access, topic), allowed in expect.items():
        assert p.check(h, access, topic.encode()) is allowed, (h, access, topic)  # type: ignore[arg-type]
    assert p.check(123456789, ACL_READ, b"acme") is False  # unknown client


@sqlite_only
def test_subscription_rules(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    alice = connect(p, data.alice_key)
    persister = connect(p, credentials.service_password(SECRET, credentials.PERSISTER_USERNAME),
                        username=credentials.PERSISTER_USERNAME)
    service = connect(p, credentials.service_password(SECRET, credentials.SERVICE_USERNAME),
                      username=credentials.SERVICE_USERNAME)
    cases = {
        alice: {"acme/greenhouse/#": True, "acme/greenhouse/+/cam": True, "acme/greenhouse": True,
                "#": False, "+/#": False, "acme/#": False, "acme/+/pi-01": False, "$SYS/#": False,
                "$share/g/acme/greenhouse/#": False, "acme/office/#": False, "acme/ghost/#": False},
        persister: {"$share/persist/#": True, "$share//#": False, "$share/g": False,
                    "$share/g/$SYS/#": False, "#": False, "acme/greenhouse": False},
        service: {"#": True, "acme/+": True, "$SYS/#": False, "$share/persist/#": False},
    }
    for h, topics in cases.items():
        for topic, allowed in topics.items():
            assert p.check(h, ACL_SUBSCRIBE, topic.encode()) is allowed, (h, topic)  # type: ignore[arg-type]
    assert p.check(persister, ACL_READ, b"anything/at/all")  # type: ignore[arg-type]
    assert not p.check(persister, ACL_WRITE, b"acme")  # type: ignore[arg-type]
    assert p.check(service, ACL_WRITE, b"acme/office")  # type: ignore[arg-type]
    assert not p.check(service, ACL_WRITE, b"acme/ghost")  # type: ignore[arg-type]
    assert any(line.startswith("hub-auth: denied subscribe '#' to client") for line in log.lines)


@sqlite_only
def test_decisions_are_cached_and_refusals_logged_once(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    alice = connect(p, data.alice_key)
    assert alice is not None
    for _ in range(100):
        assert not p.check(alice, ACL_WRITE, b"acme/greenhouse")
        assert p.check(alice, ACL_READ, b"acme/greenhouse")
    assert p.clients[alice].write == {b"acme/greenhouse": False}
    assert sum("denied publish" in line for line in log.lines) == 1
    assert p.counters.acl_denied == 100 and p.counters.acl_allowed == 100
    policy_mod.CACHE_SIZE, old = 3, policy_mod.CACHE_SIZE
    try:
        for i in range(10):
            p.check(alice, ACL_READ, f"acme/t{i}".encode())
        assert len(p.clients[alice].read) <= 3
    finally:
        policy_mod.CACHE_SIZE = old


# -- changes --------------------------------------------------------------------------
def test_install_refreshes_decisions_and_kicks_revoked(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    ctl = connect(p, data.ctl_key, client_id="pi-01")
    alice = connect(p, data.alice_key, client_id="alice-key")
    alice_token = connect(p, credentials.issue_token(SECRET, data.alice_id, 60), client_id="alice-browser")
    assert None not in (ctl, alice, alice_token)
    assert not p.check(alice, ACL_READ, b"acme/office")  # type: ignore[arg-type]
    with data.db.session() as s:
        permissions.grant(s, "acme/office", Level.READ, user_id=data.alice_id)
    assert p.install(snapshot_of(data.db)) == []
    assert p.check(alice, ACL_READ, b"acme/office")  # type: ignore[arg-type]
    assert p.check(alice_token, ACL_READ, b"acme/office")  # type: ignore[arg-type]
    with data.db.session() as s:
        keys.revoke(s, credentials.key_prefix(data.ctl_key) or "")
    assert p.install(snapshot_of(data.db)) == ["pi-01"]
    # until its kick returned, only its last will to its own folder passes
    assert p.check(ctl, ACL_WRITE, b"acme/greenhouse/pi-01/status")  # type: ignore[arg-type]
    assert not p.check(ctl, ACL_WRITE, b"acme/office")  # type: ignore[arg-type]
    assert not p.check(ctl, ACL_READ, b"acme/greenhouse/pi-01")  # type: ignore[arg-type]
    p.forget_kicked()
    assert not p.check(ctl, ACL_WRITE, b"acme/greenhouse/pi-01")  # type: ignore[arg-type]
    with data.db.session() as s:
        users.delete_user(s, data.alice_id)
    assert sorted(p.install(snapshot_of(data.db))) == ["alice-browser", "alice-key"]
    p.forget_kicked()
    assert p.counters.kicks == 3 and p.clients == {}
    assert any("disconnecting client 'pi-01' (key" in line and "key revoked" in line for line in log.lines)


@sqlite_only
def test_controller_folder_deleted_kicks_its_key(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    assert connect(p, data.ctl_key, client_id="pi-01") is not None
    with data.db.session() as s:
        resources.delete(s, "acme/greenhouse", recursive=True)
    assert p.install(snapshot_of(data.db)) == ["pi-01"]


@sqlite_only
def test_sessions_outlive_connections_until_taken_over(data: Data, log: Log) -> None:
    p = Policy(SECRET, snapshot_of(data.db), log)
    clean = connect(p, data.alice_key, client_id="browser")
    persistent = connect(p, data.alice_key, client_id="persister-like")
    assert clean is not None and persistent is not None
    p.disconnected(clean, keeps_session=False)
    p.disconnected(persistent, keeps_session=True)
    assert clean not in p.clients and p.online == 0
    assert p.check(persistent, ACL_READ, b"acme/greenhouse")  # messages still queue for it
    again = connect(p, data.alice_key, client_id="persister-like")
    assert again is not None and p.by_id["persister-like"] == again
    p.disconnected(persistent, keeps_session=True)  # the old handle's late event: forgotten
    assert persistent not in p.clients and p.online == 1
    with data.db.session() as s:
        keys.revoke(s, credentials.key_prefix(data.alice_key) or "")
    p.disconnected(again, keeps_session=True)
    assert p.install(snapshot_of(data.db)) == []  # offline: nothing to kick, but no longer judged
    assert not p.check(again, ACL_READ, b"acme/greenhouse")


@sqlite_only
def test_offline_sessions_are_bounded(data: Data, log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_mod, "MAX_OFFLINE", 5)
    p = Policy(SECRET, snapshot_of(data.db), log)
    handles = [connect(p, data.alice_key, client_id=f"c{i}") for i in range(8)]
    for h in handles:
        p.disconnected(h, keeps_session=True)  # type: ignore[arg-type]
    assert len(p.clients) == 5 and len(p.offline) == 5 and len(p.by_id) == 5
    assert handles[0] not in p.clients and handles[-1] in p.clients


# -- reloader and stats -------------------------------------------------------------
@pytest.fixture
def reloader(data: Data, tmp_path: Path) -> Iterator[Reloader]:
    snap = snapshot_of(data.db)
    r = Reloader(data.db, snap.change_id, Counters(), stats_file=tmp_path / "mosquitto" / "hub_auth_stats.json",
                 interval=0.02)
    (tmp_path / "mosquitto").mkdir()
    yield r
    r.stop()


@sqlite_only
def test_reloader_loads_only_when_the_change_log_moves(data: Data, reloader: Reloader) -> None:
    assert reloader.poll_once() is False and reloader.take() is None
    with data.db.session() as s:
        resources.create(s, "acme/new", "folder")
    assert reloader.poll_once() is True
    snap = reloader.take()
    assert snap is not None and "acme/new" in snap.folders and reloader.take() is None
    assert reloader.counters.reloads == 1


@sqlite_only
def test_log_out_patches_the_snapshot_and_ends_the_sessions_tokens(data: Data, reloader: Reloader, log: Log) -> None:
    """A log-out needs no whole reload: the ended session is patched into the snapshot in
    use, and the live connection made with that session's token is ended."""
    reloader.current = snapshot_of(data.db)
    p = Policy(SECRET, reloader.current, log)
    mine = connect(p, credentials.issue_token(SECRET, data.alice_id, 60, session="n" * 16), client_id="mine")
    other = connect(p, credentials.issue_token(SECRET, data.alice_id, 60, session="m" * 16), client_id="other")
    assert mine is not None and other is not None
    with data.db.session() as s:
        ended_sessions.end(s, "n" * 16, data.alice_id, int(time.time()) + 60)
    assert reloader.poll_once() is True
    snap = reloader.take()
    assert snap is not None and snap.ended_sessions == {"n" * 16}
    assert snap.folders is reloader.current.folders and reloader.counters.reloads == 0  # patched, not reloaded
    with data.db.session() as s:
        assert snap.change_id == changes.latest(s)
    assert p.install(snap) == ["mine"]
    p.forget_kicked()
    assert other in p.clients and "its session was logged out" in log.lines[-1]
    assert connect(p, credentials.issue_token(SECRET, data.alice_id, 60, session="n" * 16)) is None


@sqlite_only
def test_key_changes_patch_the_snapshot(data: Data, reloader: Reloader, log: Log) -> None:
    """A key created or revoked is read alone (no whole reload) and takes effect: the new
    key connects, the revoked key's connection is ended."""
    reloader.current = snapshot_of(data.db)
    p = Policy(SECRET, reloader.current, log)
    with data.db.session() as s:
        row, new_key = keys.create(s, user_id=data.alice_id)
        prefix = row.prefix
    assert reloader.poll_once() is True
    snap = reloader.take()
    assert snap is not None and prefix in snap.keys and snap.folders is reloader.current.folders
    p.install(snap)
    assert connect(p, new_key, client_id="fresh") is not None
    with data.db.session() as s:
        keys.revoke(s, prefix)
        resources.create(s, "acme/after", "folder")  # and something a patch cannot do
    assert reloader.poll_once() is True
    snap = reloader.take()
    assert snap is not None and prefix not in snap.keys and "acme/after" in snap.folders
    assert p.install(snap) == ["fresh"]
    assert (reloader.counters.patches, reloader.counters.reloads) == (1, 1)
    with data.db.session() as s:
        keys.revoke(s, credentials.key_prefix(data.alice_key) or "")
    assert reloader.poll_once() is True
    snap = reloader.take()
    assert snap is not None and credentials.key_prefix(data.alice_key) not in snap.keys
    assert (reloader.counters.patches, reloader.counters.reloads) == (2, 1)


@sqlite_only
def test_reloader_thread_and_stats_file(data: Data, reloader: Reloader, tmp_path: Path) -> None:
    settings = Settings(DATA_DIR=str(tmp_path), SECRET_KEY=SECRET)
    assert stats_path(settings) == reloader.stats_file
    assert read_stats(settings) is None
    reloader.start()
    with data.db.session() as s:
        resources.create(s, "acme/new", "folder")
    deadline = time.monotonic() + 5
    snap = None
    while snap is None and time.monotonic() < deadline:
        time.sleep(0.02)
        snap = reloader.take()
    assert snap is not None and "acme/new" in snap.folders
    stats = read_stats(settings)
    while (stats is None or stats["reloads"] < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
        stats = read_stats(settings)
    assert stats is not None and stats["change_id"] >= 0 and stats["db_ok"] is True
    assert 0 <= stats["age_s"] < 5


def test_reloader_survives_a_broken_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every poll fails
    r = Reloader(db, 0, Counters(), interval=0.01)
    r.start()
    try:
        deadline = time.monotonic() + 5
        while r.counters.reload_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.counters.reload_errors >= 3
        assert len(r.messages) == 1 and "still using the last ones loaded" in r.messages[0][1]
    finally:
        r.stop()
        db.dispose()
