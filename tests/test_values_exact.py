"""A value is stored exactly as sent: a sequence's `decimal_places` is for display, and
neither encoding nor compaction changes a single bit of a number (SQLite and PostgreSQL)."""

from __future__ import annotations

import struct

import pytest

from hub.errors import BadValue
from hub.storage import codec, resources, revisions, users, values
from hub.storage.codec import Value
from hub.storage.db import Database
from hub.storage.resources import SequenceSpec
from hub.storage.revisions import NewRevision
from tests.support.compaction import compact_db

SEC = 1_000_000
T0 = 1_600_000_000 * SEC
# more decimals than the sequence's one; sums that are not their decimal text; tiny and huge
AWKWARD = [21.47, 22.25, 0.1 + 0.2, 1e-9, 1.5e-300, 1e300, -123456789.987654321, 2.0 ** 60 + 1024,
           20.04, -0.0, 5e-324, 1 / 3, 99.95, 0.05]


def bits(x: float | None) -> bytes | None:
    return None if x is None else struct.pack("<d", x)


def test_encode_keeps_the_number_as_sent() -> None:
    seq = SequenceSpec(data_type="numeric", decimal_places=1)
    for x in AWKWARD:
        assert bits(values.encode(seq, x).num) == bits(x)  # type: ignore[arg-type]
    assert values.encode(SequenceSpec(data_type="numeric", decimal_places=0), "21.47").num == 21.47  # type: ignore[arg-type]


def test_codec_is_bit_exact_for_more_decimals_than_the_sequence_shows() -> None:
    cases = [[Value(T0 + i * SEC, x) for i, x in enumerate(AWKWARD)],
             [Value(T0 + i * SEC, 20 + (i % 100) / 10 + 0.07) for i in range(500)],  # two decimals: scaled
             [Value(T0 + i * SEC, 1e-9 * i) for i in range(500)]]
    for vals in cases:
        back = codec.decode(codec.encode(vals)).values()
        assert [(v.timestamp_us, bits(v.num)) for v in back] == [(v.timestamp_us, bits(v.num)) for v in vals]


def test_stored_and_compacted_values_read_back_bit_exact(db: Database) -> None:
    spec = SequenceSpec(data_type="numeric", decimal_places=1, units="degrees C")
    with db.session() as s:
        users.create_organization(s, "acme")
        rid = resources.create(s, "acme/t", "sequence", sequence=spec).id
    awkward = AWKWARD if db.engine.dialect.name == "postgresql" else [x for x in AWKWARD if bits(x) != bits(-0.0)]
    sent = awkward * 40 + [20 + i / 100 for i in range(1000)]  # SQLite keeps -0.0 as 0 (its REAL storage)
    with db.session() as s:
        seq = resources.sequence_of(s, resources.get(s, "acme/t"))
        rows = [NewRevision(rid, T0 + i * SEC, num=values.encode(seq, x).num, size=8) for i, x in enumerate(sent)]
        assert revisions.append(s, rows) == len(sent)

    def stored() -> list[bytes | None]:
        with db.session() as s:
            return [bits(v.num) for v in revisions.history(s, rid, count=10**6, newest_first=False)]

    assert stored() == [bits(x) for x in sent]
    assert compact_db(db).values == len(sent) - 1  # all but the latest move into blocks
    assert stored() == [bits(x) for x in sent]


def test_text_with_a_nul_is_a_bad_value_on_every_database() -> None:
    """The same refusal over MQTT as over HTTP (422), instead of a row PostgreSQL cannot hold."""
    with pytest.raises(BadValue, match="NUL"):
        values.encode(SequenceSpec(data_type="text"), "a\x00b")
    assert values.encode(SequenceSpec(data_type="text"), "a\\x00b").text == "a\\x00b"  # the escaped text is fine
