"""The persister's write path against real SQLite and PostgreSQL (the `db`
fixture) and real S3 (moto): no broker needed, batches are built by hand."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from hub import wire
from hub.errors import Unavailable
from hub.persister import deadletters
from hub.persister.batcher import Incoming
from hub.persister.writer import Writer
from hub.storage import resources, revisions, users, values
from hub.storage.bulk import open_bulk
from hub.storage.models import DeadLetter, Revision
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store

T0 = "2024-05-01T12:00:00.000001Z"
T0_US = values.parse_timestamp(T0)


@pytest.fixture
def store(db, tmp_path):
    with db.session() as s:
        users.create_organization(s, "acme")
        for path in ("acme/a", "acme/b", "acme/a/sub"):
            resources.create(s, path, "folder")
        resources.create(s, "acme/a/temp", "sequence", sequence=SequenceSpec(min_value=-50, max_value=100))
        resources.create(s, "acme/a/label", "sequence", sequence=SequenceSpec(data_type="text"))
        resources.create(s, "acme/a/cam", "sequence", sequence=SequenceSpec(data_type="image"))
        resources.create(s, "acme/a/short", "sequence", sequence=SequenceSpec(max_history=3))
        resources.create(s, "acme/b/x", "sequence")
    return Store(db, open_bulk(f"file://{tmp_path / 'bulk'}"), bulk_threshold=1000)


def msg(topic: str, parameters: dict | None = None, type_: str = "update_sequence", **kw) -> Incoming:
    return Incoming(topic, wire.build(type_, parameters if parameters is not None else kw))


def stored(store: Store, path: str) -> list[tuple[int, object]]:
    with store.session() as s:
        r = resources.get(s, path)
        seq = resources.sequence_of(s, r)
        return [(rev.timestamp_us, store.value(seq.data_type, rev))
                for rev in revisions.history(s, r.id, newest_first=False)]


def count(store: Store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_single_update_stored_with_value_timestamp_and_latest(store):
    res = Writer(store).write([msg("acme/a", sequence="temp", value=21.5, timestamp=T0)])
    assert (res.stored, res.rejected, res.duplicates) == (1, [], 0)
    assert stored(store, "acme/a/temp") == [(T0_US, 21.5)]
    with store.session() as s:
        r = resources.get(s, "acme/a/temp")
        assert revisions.latest(s, r).num == 21.5


def test_paths_relative_absolute_and_the_three_shapes(store):
    w = Writer(store)
    batch = [
        msg("acme/a", sequence="/acme/a/temp", value=1, timestamp=1_700_000_000),
        msg("acme", sequence="a/temp", value=2, timestamp=1_700_000_001),
        msg("acme/a", sequence="temp", values=[{"value": 3, "timestamp": 1_700_000_002},
                                                {"value": 4, "timestamp": 1_700_000_003}]),
        msg("acme/a", updates=[{"sequence": "temp", "value": 5, "timestamp": 1_700_000_004},
                               {"sequence": "label", "value": "on", "timestamp": 1_700_000_004}]),
    ]
    res = w.write(batch)
    assert res.rejected == [] and res.stored == 6
    assert [v for _, v in stored(store, "acme/a/temp")] == [1, 2, 3, 4, 5]
    assert stored(store, "acme/a/label") == [(1_700_000_004_000_000, "on")]


def test_redelivery_is_a_no_op(store):
    w = Writer(store)
    batch = [msg("acme/a", sequence="temp", value=i, timestamp=1_700_000_000 + i) for i in range(50)]
    assert w.write(batch).stored == 50
    again = w.write(batch[10:20] + batch[10:12] + [msg("acme/a", sequence="temp", value=99, timestamp=T0)])
    assert (again.stored, again.duplicates) == (1, 12)
    assert len(stored(store, "acme/a/temp")) == 51


def test_missing_timestamps_get_distinct_server_times(store):
    w = Writer(store)
    before = values.now_us()
    res = w.write([msg("acme/a", sequence="temp", values=[{"value": i} for i in range(100)])])
    assert res.stored == 100
    times = [ts for ts, _ in stored(store, "acme/a/temp")]
    assert len(set(times)) == 100 and times[0] >= before


def test_unknown_sequence_created_when_allowed(store):
    res = Writer(store).write([msg("acme/a", sequence="humidity", value=40.5, timestamp=T0),
                               msg("acme/a", sequence="mode", value="auto", timestamp=T0),
                               msg("acme/a", sequence="cfg", value={"k": [1]}, timestamp=T0),
                               msg("acme/a", sequence="humidity", value=41, timestamp=T0[:-2] + "2Z")])
    assert res.rejected == [] and res.stored == 4
    assert [v for _, v in stored(store, "acme/a/humidity")] == [40.5, 41]
    with store.session() as s:
        kinds = [resources.sequence_of(s, resources.get(s, f"acme/a/{n}")).data_type
                 for n in ("humidity", "mode", "cfg")]
    assert kinds == ["numeric", "text", "json"]
    assert stored(store, "acme/a/cfg") == [(T0_US, {"k": [1]})]


def test_unknown_sequence_rejected_when_not_allowed(store):
    res = Writer(store, auto_create=False).write([msg("acme/a", sequence="humidity", value=1)])
    assert res.stored == 0 and "AUTO_CREATE_SEQUENCES" in res.rejected[0][1]
    with store.session() as s:
        assert resources.find(s, "acme/a/humidity") is None


BAD = [
    ("acme/a", b"not json", "not JSON"),
    ("acme/a", b"\xff\xfe", "UTF-8"),
    ("acme/a", b"[1, 2]", "not a JSON object"),
    ("acme/a", b'{"parameters": {}}', "no \"type\""),
    ("acme/a", wire.build("u" * 40, {}).replace(b'"u', b'"uu', 1), "longer than 40"),
    ("acme/a", b'{"type": "update_sequence", "parameters": []}', "must be a JSON object"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp"}), "exactly one of"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": 1, "values": []}),
     "exactly one of"),
    ("acme/a", wire.build("update_sequence", {"value": 1}), "\"sequence\""),
    ("acme/a", wire.build("update_sequence", {"updates": [{"sequence": "temp"}]}), "no \"value\""),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "values": "x"}), "non-empty list"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": "warm"}), "needs a number"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": 500}), "above the maximum"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": True}), "needs a number"),
    ("acme/a", wire.build("update_sequence", {"sequence": "label", "value": 5}), "needs a string"),
    ("acme/a", wire.build("update_sequence", {"sequence": "cam", "value": "!!"}), "base64"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": 1,
                                              "timestamp": "2999-01-01T00:00:00Z"}), "future"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": 1,
                                              "timestamp": "yesterday"}), "ISO 8601"),
    ("acme/a", wire.build("update_sequence", {"sequence": "../b/x", "value": 1}), "bad name"),
    ("acme/a", wire.build("update_sequence", {"sequence": "/acme/b/x", "value": 1}), "outside"),
    ("acme/a", wire.build("update_sequence", {"sequence": "/acme/a", "value": 1}), "folder itself"),
    ("acme/a", wire.build("update_sequence", {"sequence": "sub", "value": 1}), "is a folder"),
    ("acme/a", wire.build("update_sequence", {"sequence": "nofolder/x", "value": 1}), "does not exist"),
    ("nowhere/x", wire.build("update_sequence", {"sequence": "t", "value": 1}), "names no folder"),
    ("acme/a/temp", wire.build("update_sequence", {"sequence": "t", "value": 1}), "not a folder"),
    ("acme//a", wire.build("update_sequence", {"sequence": "t", "value": 1}), "empty segment"),
    ("acme/a", wire.build("update_sequence", {"sequence": "temp", "value": "x" * 3000}), "over the limit"),
]


def test_bad_messages_are_rejected_recorded_and_the_rest_stored(store):
    w = Writer(store, max_payload=2000)
    good = msg("acme/a", sequence="temp", value=20, timestamp=T0)
    res = w.write([Incoming(t, p) for t, p, _ in BAD] + [good])
    assert res.stored == 1 and res.updates == 1
    assert len(res.rejected) == len(BAD)
    order = [(t, p) for t, p, _ in BAD]
    for (topic, _payload, expected), (m, reason) in zip(BAD, sorted(
            res.rejected, key=lambda r: order.index((r[0].topic, r[0].payload))), strict=True):
        assert m.topic == topic and expected in reason, (expected, reason)
    with store.session() as s:
        dead = deadletters.recent(s, 100)
        assert len(dead) == len(BAD)
        assert {d.topic for d in dead} == {t for t, _, _ in BAD}
        assert all(len(d.payload) <= deadletters.MAX_PAYLOAD_KEPT for d in dead)
    assert stored(store, "acme/a/temp") == [(T0_US, 20)]
    with store.session() as s:
        assert resources.find(s, "acme/a/nofolder") is None and resources.find(s, "acme/a/t") is None


def test_a_batch_message_is_all_or_nothing(store):
    res = Writer(store).write([msg("acme/a", updates=[
        {"sequence": "temp", "value": 1, "timestamp": T0}, {"sequence": "temp", "value": 1000}])])
    assert res.stored == 0 and "acme/a/temp: value 1000.0 is above" in res.rejected[0][1]
    assert stored(store, "acme/a/temp") == []


def test_other_message_types_are_ignored(store):
    res = Writer(store).write([msg("acme/a", {"on": True}, type_="set_relay"),
                               msg("nowhere", {}, type_="send_email")])
    assert (res.ignored, res.stored, res.rejected) == (2, 0, [])
    assert count(store, DeadLetter) == 0


def test_max_history_reported_for_background_trim(store):
    res = Writer(store).write([msg("acme/a", sequence="short", values=[
        {"value": i, "timestamp": 1_700_000_000 + i} for i in range(10)])])
    with store.session() as s:
        rid = resources.get(s, "acme/a/short").id
    assert res.trim == {rid: 3} and len(stored(store, "acme/a/short")) == 10


def test_dead_letters_trim_keeps_newest(store):
    w = Writer(store)
    for i in range(5):
        w.write([Incoming("acme/a", f"bad {i}".encode())])
    with store.session() as s:
        assert deadletters.trim(s, 2) == 3
    with store.session() as s:
        assert [d.payload for d in deadletters.recent(s)] == [b"bad 4", b"bad 3"]


def test_large_values_go_to_s3_before_the_row_and_read_back(db, store, s3_bucket):
    s3 = Store(db, open_bulk(s3_bucket.url("hub"), endpoint_url=s3_bucket.endpoint_url), bulk_threshold=1000)
    image = bytes(range(256)) * 40
    doc = {"rows": ["x" * 50] * 40}
    res = Writer(s3).write([
        msg("acme/a", sequence="cam", value=base64.b64encode(image).decode(), timestamp=T0),
        msg("acme/a", sequence="doc", value=doc, timestamp=T0)])
    assert res.stored == 2 and res.rejected == []
    assert stored(s3, "acme/a/cam") == [(T0_US, base64.b64encode(image).decode())]
    assert stored(s3, "acme/a/doc") == [(T0_US, doc)]
    with s3.session() as s:
        keys = [r.bulk_key for r in s.scalars(select(Revision))]
    assert len(keys) == 2 and all(keys)
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="hub/")["Contents"]
    assert {o["Key"] for o in listed} == {f"hub/{k}" for k in keys}
    got = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"hub/{keys[0]}")["Body"].read()
    assert got in (image, json.dumps(doc, separators=(",", ":")).encode())


def test_upload_failure_commits_nothing(db, store, s3_server):
    broken = Store(db, open_bulk("s3://no-such-bucket-xyz/p", endpoint_url=s3_server), bulk_threshold=10)
    batch = [msg("acme/a", sequence="temp", value=1, timestamp=T0),
             msg("acme/a", sequence="label", value="x" * 100, timestamp=T0)]
    with pytest.raises(Unavailable):
        Writer(broken).write(batch)
    assert count(store, Revision) == 0 and count(store, DeadLetter) == 0


def test_sequence_created_meanwhile_by_someone_else_is_used(store):
    from hub.persister import lookup

    with store.session() as s:
        made = resources.create(s, "acme/a/new", "sequence")
        t = lookup.create(s, "acme/a/new", 1.0, True)  # as if our look-up had missed it
        assert (t.resource_id, t.error) == (made.id, None)
        assert lookup.create(s, "acme/a/sub", 1.0, True).error == "acme/a/sub is a folder, not a sequence"


def test_append_batch_mixing_value_kinds(store):
    """One batch with ints, floats, text, bytes and NULLs (PostgreSQL takes it as arrays)."""
    with store.session() as s:
        rid = resources.get(s, "acme/a/temp").id
        rows = [revisions.NewRevision(rid, 1, num=1), revisions.NewRevision(rid, 2, num=2.5),
                revisions.NewRevision(rid, 3, text="t"), revisions.NewRevision(rid, 4, data=b"\x00\xff", size=2),
                revisions.NewRevision(rid, 5, bulk_key="rev/x", size=9)]
        assert revisions.append(s, rows) == 5
        assert revisions.append(s, rows[:2] + [revisions.NewRevision(rid, 6, num=3)]) == 1
    with store.session() as s:
        got = [(r.timestamp_us, r.num, r.text, r.data, r.bulk_key)
               for r in revisions.history(s, rid, newest_first=False)]
    assert got == [(1, 1.0, None, None, None), (2, 2.5, None, None, None), (3, None, "t", None, None),
                   (4, None, None, b"\x00\xff", None), (5, None, None, None, "rev/x"), (6, 3.0, None, None, None)]


def test_the_trimmer_compacts_what_is_older_than_compact_after(store):
    """A controller's offline buffer arrives two days late: the trimmer's first round packs
    it into blocks and it reads back the same; recent values stay rows."""
    from hub.persister.trimmer import Trimmer
    from hub.storage.models import RevisionBlock

    now = values.now_us() // 1_000_000
    old = [{"value": i / 8, "timestamp": now - 2 * 86400 + i * 10} for i in range(720)]  # two hours
    recent = [{"value": i, "timestamp": now - 60 + i} for i in range(5)]
    Writer(store).write([msg("acme/a", sequence="temp", values=old + recent)])
    before = stored(store, "acme/a/temp")
    trimmer = Trimmer(store, 10, 100, compact_after_s=86400)
    trimmer.run_once()
    assert count(store, RevisionBlock) >= 2 and count(store, Revision) == 5
    assert stored(store, "acme/a/temp") == before
    rep = trimmer.compact_once()
    assert rep is not None and rep.values == 0
