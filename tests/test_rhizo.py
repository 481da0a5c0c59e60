"""rhizo-server compatibility (docs/rhizo-compat.md): each rhizo form is stored exactly
like its native twin; `d,` lines are display only. Write path against real SQLite
(and PostgreSQL with -m pg), no mocks."""

from __future__ import annotations

import json

import pytest

from hub import wire
from hub.errors import BadRequest
from hub.persister.batcher import Incoming
from hub.persister.writer import Writer
from hub.storage import resources, revisions, users
from hub.storage.bulk import open_bulk
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store

T = "2024-05-01T12:00:00.250000Z"


# -- parsing ------------------------------------------------------------------------
def test_rhizo_object_form_is_its_native_twin() -> None:
    assert wire.parse(b'{"send_email": {"emailAddresses": "a@example.com", "subject": "s"}}') == \
        wire.Message("send_email", {"emailAddresses": "a@example.com", "subject": "s"})
    update = wire.parse(json.dumps({"update": {"$t": T, "temp": 21.5, "sub/hum": 40}}))
    assert update == wire.Message(wire.UPDATE_SEQUENCE, {"updates": [
        {"sequence": "temp", "value": 21.5, "timestamp": T},
        {"sequence": "sub/hum", "value": 40, "timestamp": T}]})
    assert wire.updates("acme/pi", update.parameters) == [
        wire.Update("acme/pi/temp", 21.5, T), wire.Update("acme/pi/sub/hum", 40, T)]
    untimed = wire.parse(b'{"update": {"temp": 1}}')
    assert untimed.parameters == {"updates": [{"sequence": "temp", "value": 1}]}


def test_rhizo_text_lines() -> None:
    assert wire.parse(f"s,temp,{T},21.5".encode()) == wire.Message(
        wire.UPDATE_SEQUENCE, {"sequence": "temp", "value": "21.5", "timestamp": T})
    assert wire.parse(f"d,label,{T},a,b".encode()) == wire.Message(
        wire.DISPLAY_VALUE, {"sequence": "label", "value": "a,b", "timestamp": T})
    assert wire.parse(b"s,temp,,7").parameters == {"sequence": "temp", "value": "7"}


@pytest.mark.parametrize("payload,text", [
    (b"s,temp,2024-05-01T12:00:00Z", "s,<sequence>"),
    (b"d,,2024-05-01T12:00:00Z,1", "d,<sequence>"),
    (b'{"update": {"$t": "2024-05-01T12:00:00Z"}}', "no values"),
    (b'{"update": [1, 2]}', "JSON object of parameters"),
    (b'{"parameters": {}}', "no \"type\""),
])
def test_bad_rhizo_forms_say_what_to_send(payload: bytes, text: str) -> None:
    with pytest.raises(BadRequest) as e:
        wire.parse(payload)
    assert text in e.value.message


def test_rhizo_update_cannot_leave_its_folder() -> None:
    m = wire.parse(b'{"update": {"/acme/other/temp": 1}}')
    with pytest.raises(BadRequest):
        wire.updates("acme/pi", m.parameters)


# -- stored like the native twin ------------------------------------------------------
@pytest.fixture
def store(db, tmp_path):  # type: ignore[no-untyped-def]
    with db.session() as s:
        users.create_organization(s, "acme")
        for name in ("native", "rhizo"):
            resources.create(s, f"acme/{name}", "controller")
            resources.create(s, f"acme/{name}/temp", "sequence", sequence=SequenceSpec(decimal_places=1))
            resources.create(s, f"acme/{name}/label", "sequence", sequence=SequenceSpec(data_type="text"))
    return Store(db, open_bulk(f"file://{tmp_path / 'bulk'}"), bulk_threshold=1000)


def rows(store: Store, path: str) -> list[tuple[int, float | None, str | None]]:
    with store.session() as s:
        r = resources.get(s, path)
        return [(rev.timestamp_us, rev.num, rev.text) for rev in revisions.history(s, r.id, newest_first=False)]


def test_each_rhizo_form_is_stored_like_its_native_twin(store: Store) -> None:
    t1, t2, t3 = "2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z", "2024-05-01T12:00:03Z"
    native = [
        wire.batch_message([("temp", 20.25, t1), ("label", "warm", t1)]),
        wire.update_message("temp", 21.5, t2),
        wire.update_message("label", "hot", t3),
    ]
    rhizo = [
        json.dumps({"update": {"$t": t1, "temp": 20.25, "label": "warm"}}).encode(),
        f"s,temp,{t2},21.5".encode(),
        f"s,label,{t3},hot".encode(),
        f"d,temp,{t3},99".encode(),  # display only: never stored
    ]
    w = Writer(store)
    res_n = w.write([Incoming("acme/native", p) for p in native])
    res_r = w.write([Incoming("acme/rhizo", p) for p in rhizo])
    assert res_n.rejected == [] and res_r.rejected == []
    assert (res_n.stored, res_r.stored, res_r.ignored) == (4, 4, 1)
    for seq in ("temp", "label"):
        assert rows(store, f"acme/rhizo/{seq}") == rows(store, f"acme/native/{seq}")
    assert [num for _, num, _ in rows(store, "acme/rhizo/temp")] == [20.2, 21.5]
    # a redelivered rhizo update is a no-op, like a native one
    again = w.write([Incoming("acme/rhizo", rhizo[0])])
    assert (again.stored, again.duplicates) == (0, 2)
