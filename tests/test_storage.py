"""The storage layer against real SQLite and PostgreSQL (the `db` fixture is
parametrised over both)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from hub import paths
from hub.access import Subject
from hub.errors import BadPath, BadRequest, BadValue, Conflict, HubError, NotFound, Unauthenticated, Unprocessable
from hub.storage import changes, keys, permissions, resources, revisions, sessions, users, values
from hub.storage.models import Change, Level, Resource, Revision, Role
from hub.storage.resources import SequenceSpec
from tests.support.compaction import compact_db

PW = "correct horse battery"


@pytest.fixture
def tree(db):
    """acme/{greenhouse/pi-01/temp, office}, beta; users admin, orgadmin, member, outsider."""
    with db.session() as s:
        acme = users.create_organization(s, "acme")
        beta = users.create_organization(s, "beta")
        resources.create(s, "acme/greenhouse", "folder")
        resources.create(s, "acme/greenhouse/pi-01", "controller")
        resources.create(s, "acme/greenhouse/pi-01/temp", "sequence",
                         sequence=SequenceSpec(units="C", min_value=-50, max_value=100))
        resources.create(s, "acme/office", "folder")
        resources.create(s, "beta/lab", "folder")
        ids = {}
        for name, admin in [("admin", True), ("orgadmin", False), ("member", False), ("outsider", False)]:
            ids[name] = users.create_user(s, f"{name}@example.com", PW, rounds=4, is_admin=admin).id
        users.set_membership(s, acme, users.get_user(s, ids["orgadmin"]), Role.ADMIN.value)
        users.set_membership(s, acme, users.get_user(s, ids["member"]), Role.MEMBER.value)
        users.set_membership(s, beta, users.get_user(s, ids["outsider"]), Role.MEMBER.value)
        ids["acme"], ids["beta"] = acme.id, beta.id
    return ids


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("bad", ["", "/", "a//b", "a/../b", "..", "a/./b", "a b", "a/b/", "ä", "x" * 101,
                                 "/".join(["a"] * 21), "a/" * 200 + "a", "a\nb", "a/b%2f"])
def test_bad_paths_raise_one_error_type(bad):
    with pytest.raises(BadPath):
        paths.normalize(bad)


def test_path_helpers():
    assert paths.normalize("/acme/x") == "acme/x"
    assert paths.ancestors("a/b/c") == ["a", "a/b", "a/b/c"]
    assert paths.join("a/b", "c/d") == "a/b/c/d"
    assert paths.join("a/b", "/z/y") == "z/y"
    assert paths.is_within("a/b/c", "a/b") and not paths.is_within("a/bc", "a/b")


def test_tree_create_find_list(db, tree):
    with db.session() as s:
        folder = resources.get(s, "/acme/greenhouse")
        assert folder.type == "folder" and folder.organization_id == tree["acme"]
        assert [c.name for c in resources.children(s, resources.get(s, "acme"))] == ["greenhouse", "office"]
        assert [c.name for c in resources.children(s, resources.get(s, "acme"), after="greenhouse")] == ["office"]
        seq = resources.sequence_of(s, resources.get(s, "acme/greenhouse/pi-01/temp"))
        assert seq.units == "C" and seq.max_value == 100


@pytest.mark.parametrize("path,type_,error", [
    ("acme/greenhouse", "folder", Conflict),
    ("acme/nowhere/x", "folder", NotFound),
    ("acme/greenhouse/pi-01/temp/x", "folder", Conflict),  # parent is a sequence
    ("toplevel", "folder", Conflict),
    ("acme/x", "organization", Conflict),
    ("acme/x", "gizmo", BadRequest),
    ("acme/../beta", "folder", BadPath),
])
def test_bad_creates_leave_database_as_it_was(db, tree, path, type_, error):
    before = count(db, Resource), changes_latest(db)
    with pytest.raises(error):
        with db.session() as s:
            resources.create(s, "acme/greenhouse/new-ok", "folder")  # would succeed...
            resources.create(s, path, type_)  # ...but this fails: all rolled back
    assert (count(db, Resource), changes_latest(db)) == before


def changes_latest(db) -> int:
    with db.session() as s:
        return changes.latest(s)


def test_bad_sequence_specs():
    with pytest.raises(BadRequest):
        SequenceSpec(data_type="float")
    with pytest.raises(Unprocessable):  # each is fine alone: a rule no schema states
        SequenceSpec(min_value=5, max_value=1)
    with pytest.raises(BadRequest):
        SequenceSpec(max_history=0)


def test_move_renames_subtree_and_delete_needs_recursive(db, tree):
    with db.session() as s:
        resources.move(s, "acme/greenhouse", "acme/office/greenhouse")
    with db.session() as s:
        assert resources.get(s, "acme/office/greenhouse/pi-01/temp").type == "sequence"
        assert resources.find(s, "acme/greenhouse/pi-01") is None
    with pytest.raises(Conflict):
        with db.session() as s:
            resources.delete(s, "acme/office")
    with pytest.raises(Conflict):
        with db.session() as s:
            resources.move(s, "acme/office", "beta/office")
    with db.session() as s:
        assert resources.delete(s, "acme/office", recursive=True) == 4
    with db.session() as s:
        assert resources.find(s, "acme/office/greenhouse/pi-01/temp") is None
        resources.create(s, "acme/office", "folder")  # the path is free again after a soft delete


def test_values_checked_against_sequence(db, tree):
    with db.session() as s:
        seq = resources.sequence_of(s, resources.get(s, "acme/greenhouse/pi-01/temp"))
    assert values.encode(seq, 21.5).num == 21.5
    assert values.encode(seq, "3").num == 3.0
    for bad in ["warm", True, None, [1], 1000, -51, float("nan")]:
        with pytest.raises(BadValue):
            values.encode(seq, bad)
    seq.data_type = "image"
    assert values.encode(seq, "aGVsbG8=").data == b"hello"
    with pytest.raises(BadValue):
        values.encode(seq, "not base64!")
    with pytest.raises(BadValue):
        values.parse_timestamp("yesterday")
    with pytest.raises(BadValue):
        values.parse_timestamp("2999-01-01T00:00:00Z")
    assert values.parse_timestamp("2024-01-01T00:00:00.000001Z") == 1704067200000001
    assert values.iso(1704067200000001) == "2024-01-01T00:00:00.000001Z"


@pytest.mark.parametrize("compacted", [False, True], ids=["rows", "compacted"])
def test_revisions_append_idempotent_latest_history_downsample_trim(db, tree, compacted):
    with db.session() as s:
        rid = resources.get(s, "acme/greenhouse/pi-01/temp").id
    batch = [revisions.NewRevision(rid, 1_000_000 + i, num=float(i), size=8) for i in range(1000)]
    with db.session() as s:
        assert revisions.append(s, batch) == 1000
    if compacted:
        assert compact_db(db).values == 999
    with db.session() as s:  # redelivery of the same batch stores nothing new
        assert revisions.append(s, batch[500:] + [revisions.NewRevision(rid, 5_000_000, num=-1.0)]) == 1
    with db.session() as s:
        r = resources.get(s, "acme/greenhouse/pi-01/temp")
        assert revisions.latest(s, r).num == -1.0
        hist = revisions.history(s, rid, start_us=1_000_010, end_us=1_000_020, newest_first=False)
        assert [h.num for h in hist] == [float(i) for i in range(10, 20)]
        buckets = revisions.downsample(s, rid, 1_000_000, 1_001_000, 10)
        assert len(buckets) == 10 and all(b.count == 100 for b in buckets)
        assert (buckets[0].min, buckets[0].max, buckets[0].mean) == (0.0, 99.0, 49.5)
    if compacted:  # the redelivered batch went nowhere; the new latest value is a row to compact later
        assert compact_db(db).values == 1
    with db.session() as s:
        revisions.trim(s, rid, 10)
        assert [h.num for h in revisions.history(s, rid)] == [-1.0] + [float(i) for i in range(999, 990, -1)]
    assert count(db, Revision) == (1 if compacted else 10)
    with db.session() as s:
        assert revisions.latest(s, resources.get(s, "acme/greenhouse/pi-01/temp")).num == -1.0


def test_keys_create_verify_revoke(db, tree):
    with db.session() as s:
        row, secret = keys.create(s, controller_path="acme/greenhouse/pi-01", name="pi")
        urow, usecret = keys.create(s, user_id=tree["member"])
    assert secret.startswith("hk_" + row.prefix + "_")
    with db.session() as s:
        stored = keys.get(s, row.prefix)
        assert secret not in (stored.secret_hash, stored.prefix) and len(stored.secret_hash) == 64
        subj = keys.subject_for_key(s, keys.verify(s, secret))
        assert subj.controller_path == "acme/greenhouse/pi-01"
        assert keys.subject_for_key(s, keys.verify(s, usecret)).user_id == tree["member"]
    for bad in ["", "hk_", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "hk_" + "a" * 10 + "_" + "x" * 43,
                usecret.replace(urow.prefix, row.prefix)]:
        with pytest.raises(Unauthenticated):
            with db.session() as s:
                keys.verify(s, bad)
    before = changes_latest(db)
    with db.session() as s:
        keys.revoke(s, row.prefix, by_user_id=tree["admin"])
    assert changes_latest(db) > before
    with pytest.raises(Unauthenticated):
        with db.session() as s:
            keys.verify(s, secret)
    with pytest.raises(Conflict):
        with db.session() as s:
            keys.revoke(s, row.prefix)
    with pytest.raises(BadRequest):
        with db.session() as s:
            keys.create(s)
    with pytest.raises(Conflict):
        with db.session() as s:
            keys.create(s, controller_path="acme/greenhouse")  # a folder, not a controller


def test_access_levels_inherit_down_the_tree(db, tree):
    with db.session() as s:
        subj = {n: users.subject_for_user(s, users.get_user(s, tree[n]))
                for n in ("admin", "orgadmin", "member", "outsider")}
        lvl = lambda who, p: permissions.level(s, subj[who], p)  # noqa: E731
        assert lvl("admin", "beta/lab") == Level.ADMIN
        assert lvl("orgadmin", "acme/greenhouse/pi-01") == Level.ADMIN
        assert lvl("orgadmin", "beta/lab") == Level.NONE
        assert lvl("member", "acme/greenhouse") == Level.NONE  # membership alone grants nothing
        permissions.grant(s, "acme/greenhouse", Level.READ, user_id=tree["member"])
        permissions.grant(s, "beta", Level.WRITE, organization_id=tree["beta"])
        assert lvl("member", "acme/greenhouse/pi-01/temp") == Level.READ
        assert lvl("member", "acme/office") == Level.NONE
        assert lvl("outsider", "beta/lab/new/deeper") == Level.WRITE
        assert lvl("outsider", "acme") == Level.NONE
        ctrl = Subject(controller_id=resources.get(s, "acme/greenhouse/pi-01").id,
                       controller_path="acme/greenhouse/pi-01")
        assert permissions.level(s, ctrl, "acme/greenhouse/pi-01/status") == Level.WRITE
        assert permissions.level(s, ctrl, "acme/greenhouse") == Level.NONE
        with pytest.raises(NotFound):
            permissions.require(s, subj["member"], "acme/office", Level.READ)
        with pytest.raises(HubError) as e:
            permissions.require(s, subj["member"], "acme/greenhouse", Level.WRITE)
        assert e.value.status == 403


def test_grant_replaces_and_revoke(db, tree):
    with db.session() as s:
        p1 = permissions.grant(s, "acme/office", Level.READ, user_id=tree["member"])
        p2 = permissions.grant(s, "acme/office", Level.WRITE, user_id=tree["member"])
        assert p1.id == p2.id and len(permissions.on(s, "acme/office")) == 1
        with pytest.raises(BadRequest):
            permissions.grant(s, "acme/office", Level.READ)
        with pytest.raises(BadRequest):
            permissions.grant(s, "acme/office", 7, user_id=tree["member"])
        with pytest.raises(NotFound):
            permissions.revoke(s, p1.id, path="acme/greenhouse")
        permissions.revoke(s, p1.id)
        assert permissions.on(s, "acme/office") == []


def test_users(db, tree):
    for email, pw, err in [("nope", PW, BadRequest), ("new@example.com", "short", BadRequest),
                           ("new@example.com", "aaaaaaaaaaaa", Unprocessable),
                           ("new@example.com", "\u00e9" * 40, Unprocessable),  # 40 characters, 80 bytes
                           ("new@example.com", "xy12" * 257, BadRequest),
                           ("x" * 250 + "@example.com", PW, BadRequest),
                           ("MEMBER@example.com", PW, Conflict)]:
        with pytest.raises(err):
            with db.session() as s:
                users.create_user(s, email, pw, rounds=4)
    with db.session() as s:
        assert users.authenticate(s, "Member@Example.com", PW).id == tree["member"]
        for email, pw in [("member@example.com", "wrong password"), ("ghost@example.com", PW)]:
            with pytest.raises(Unauthenticated):
                users.authenticate(s, email, pw)
        _, secret = keys.create(s, user_id=tree["member"])
    with db.session() as s:
        users.delete_user(s, tree["member"], by_user_id=tree["admin"])
    with db.session() as s:
        with pytest.raises(Unauthenticated):
            keys.verify(s, secret)
        with pytest.raises(Unauthenticated):
            users.authenticate(s, "member@example.com", PW)
        with pytest.raises(Conflict):
            users.create_organization(s, "acme")


def test_ended_sessions_are_kept_until_the_cookie_expires(db, tree):
    now = int(time.time())
    with db.session() as s:
        sessions.end(s, "old", tree["member"], now - 10)  # already past: pruned by the next end
        sessions.end(s, "live", tree["member"], now + 3600)
        sessions.end(s, "live", tree["member"], now + 3600)  # twice: one row, one change
        assert sessions.ended(s, "live") and not sessions.ended(s, "other")
    with db.session() as s:
        assert not sessions.ended(s, "old") and sessions.ended(s, "live")
        assert s.scalar(select(func.count()).select_from(Change).where(Change.kind == "session")) == 2
