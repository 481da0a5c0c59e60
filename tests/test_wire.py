"""The MQTT wire format: parsing, validation and building (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub import wire
from hub.errors import BadPath, BadRequest, TooLarge
from hub.storage import values


def test_parse_and_build_round_trip():
    payload = wire.build("set_relay", {"on": True})
    assert json.loads(payload) == {"type": "set_relay", "parameters": {"on": True}}
    assert wire.parse(payload) == wire.Message("set_relay", {"on": True})
    assert wire.parse('{"type": "ping"}') == wire.Message("ping", {})


@pytest.mark.parametrize("payload,error,text", [
    (b"", BadRequest, "not JSON"),
    (b"{", BadRequest, "not JSON"),
    (b"\xc3\x28", BadRequest, "UTF-8"),
    (b"42", BadRequest, "not a JSON object"),
    (b'{"type": 5}', BadRequest, "no \"type\""),
    (b'{"type": ""}', BadRequest, "no \"type\""),
    (b'{"type": "' + b"t" * 41 + b'"}', BadRequest, "longer than 40"),
    (b'{"type": "x", "parameters": [1]}', BadRequest, "must be a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, TooLarge, "over the limit"),
])
def test_parse_rejects_with_a_reason(payload, error, text):
    with pytest.raises(error) as e:
        wire.parse(payload, max_bytes=1000)
    assert text in e.value.message


def test_deeply_nested_json_is_a_bad_message_not_a_crash():
    with pytest.raises(BadRequest):
        wire.parse(b"[" * 200_000 + b"]" * 200_000, max_bytes=10_000_000)


def test_type_of_exactly_40_characters_is_fine():
    assert wire.parse(wire.build("t" * 40)).type == "t" * 40
    with pytest.raises(BadRequest):
        wire.build("t" * 41)


def test_updates_three_shapes():
    one = wire.updates("acme/a", {"sequence": "temp", "value": 1.5, "timestamp": "2024-01-01T00:00:00Z"})
    assert one == [wire.Update("acme/a/temp", 1.5, "2024-01-01T00:00:00Z")]
    many = wire.updates("acme/a", {"sequence": "sub/temp", "values": [{"value": 1}, {"value": 2, "timestamp": 5}]})
    assert many == [wire.Update("acme/a/sub/temp", 1), wire.Update("acme/a/sub/temp", 2, 5)]
    batch = wire.updates("acme/a", {"updates": [{"sequence": "/acme/a/x", "value": None},
                                                {"sequence": "y", "value": [1], "extra": 0}]})
    assert batch == [wire.Update("acme/a/x", None), wire.Update("acme/a/y", [1])]


@pytest.mark.parametrize("params,error,text", [
    ({}, BadRequest, "exactly one of"),
    ({"sequence": "t", "value": 1, "updates": []}, BadRequest, "exactly one of"),
    ({"value": 1}, BadRequest, "\"sequence\""),
    ({"sequence": "", "value": 1}, BadRequest, "\"sequence\""),
    ({"sequence": 7, "value": 1}, BadRequest, "\"sequence\""),
    ({"sequence": "../b/x", "value": 1}, BadPath, "bad name"),
    ({"sequence": "/acme/b/x", "value": 1}, BadPath, "outside"),
    ({"sequence": "/acme/ab", "value": 1}, BadPath, "outside"),
    ({"sequence": "/acme", "value": 1}, BadPath, "outside"),
    ({"sequence": "/acme/a", "value": 1}, BadPath, "folder itself"),
    ({"sequence": "a b", "value": 1}, BadPath, "bad name"),
    ({"sequence": "t", "value": 1, "timestamp": True}, BadRequest, "timestamp"),
    ({"sequence": "t", "value": 1, "timestamp": {"a": 1}}, BadRequest, "timestamp"),
    ({"sequence": "t", "value": 1, "timestamp": "2" * 41}, BadRequest, "longer than 40"),
    ({"sequence": "t", "value": 1, "timestamp": float("nan")}, BadRequest, "finite"),
    ({"sequence": "t", "values": []}, BadRequest, "non-empty list"),
    ({"sequence": "t", "values": [1]}, BadRequest, "values[0]"),
    ({"sequence": "t", "values": [{"value": 1}] * (wire.MAX_UPDATES + 1)}, BadRequest, "at most"),
    ({"updates": {"sequence": "t"}}, BadRequest, "non-empty list"),
    ({"updates": [{"sequence": "t", "value": 1}, "x"]}, BadRequest, "updates[1]"),
    ({"updates": [{"sequence": "t", "value": 1}, {"sequence": "/acme/b/t", "value": 1}]}, BadPath, "outside"),
])
def test_updates_rejects_with_a_reason(params, error, text):
    with pytest.raises(error) as e:
        wire.updates("acme/a", params)
    assert text in e.value.message


@pytest.mark.parametrize("topic", ["", "/acme/a", "acme/+", "acme/#", "$SYS/x", "acme//a", "acme/a/",
                                   "acme/../b", "a" * 600])
def test_topics_that_name_no_folder_path(topic):
    with pytest.raises(BadPath):
        wire.folder_of_topic(topic)


def test_builders_make_what_the_parser_accepts():
    ts = wire.format_timestamp(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))
    assert ts == "2024-05-01T12:00:00.123456Z"
    assert values.parse_timestamp(ts) == values.to_us(datetime(2024, 5, 1, 12, 0, 0, 123456))
    us = 1_714_564_800_000_007
    assert values.parse_timestamp(wire.format_timestamp_us(us)) == us
    m = wire.parse(wire.update_message("temp", 1.5, ts))
    assert wire.updates("acme", m.parameters) == [wire.Update("acme/temp", 1.5, ts)]
    m = wire.parse(wire.values_message("temp", [(1, ts), (2, None)]))
    assert wire.updates("acme", m.parameters) == [wire.Update("acme/temp", 1, ts), wire.Update("acme/temp", 2)]
    m = wire.parse(wire.batch_message([("a", 1, None), ("b/c", "x", ts)]))
    assert wire.updates("acme", m.parameters) == [wire.Update("acme/a", 1), wire.Update("acme/b/c", "x", ts)]
    with pytest.raises(BadRequest):
        wire.build("x", {"v": float("inf")})
    with pytest.raises(BadRequest):
        wire.build("x", {"v": object()})


@pytest.mark.parametrize("sequence,value,ts", [
    ("temp", 21.5, "2024-05-01T12:00:00.000001Z"), ("a/b", -3, "t"), ("ü\"x", 1e300, "2024"),
    ("t", 0.1 + 0.2, "x"), ("t", 10**30, "x"), ("t", True, "x"), ("t", "21.5", "x"), ("t", None, "x"),
    ("t", 1.5, None), ("t", [1, {"a": "é"}], "x"),
])
def test_update_message_fast_path_makes_what_json_makes(sequence, value, ts):
    params = {"sequence": sequence, "value": value} | ({} if ts is None else {"timestamp": ts})
    expected = json.dumps({"type": "update_sequence", "parameters": params}, separators=(",", ":"),
                          allow_nan=False).encode()
    assert wire.update_message(sequence, value, ts) == expected


def test_update_message_refuses_non_finite_numbers():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(BadRequest):
            wire.update_message("t", bad, "x")
