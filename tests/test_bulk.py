"""Bulk storage: the local folder and a real S3 endpoint (moto's server)."""

from __future__ import annotations

import pytest

from hub.errors import NotFound, SettingsError, Unavailable
from hub.storage import resources, revisions, users, values
from hub.storage.bulk import open_bulk
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store


@pytest.fixture(params=["file", "s3"])
def bulk(request, tmp_path):
    if request.param == "file":
        return open_bulk(f"file://{tmp_path / 'bulk'}")
    endpoint = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket").name
    return open_bulk(f"s3://{bucket}/hub", endpoint_url=endpoint, region="us-east-1")


def test_put_get_delete(bulk):
    bulk.check()
    blob = bytes(range(256)) * 1000
    bulk.put("rev/1/123-abc", blob)
    assert bulk.get("rev/1/123-abc") == blob
    bulk.delete("rev/1/123-abc")
    with pytest.raises(NotFound):
        bulk.get("rev/1/123-abc")
    for bad in ["../x", "/abs", "a/../../b", ""]:
        with pytest.raises(ValueError):
            bulk.put(bad, b"x")


def test_bad_urls():
    for url in ["ftp://x/y", "s3:///nobucket", "bucket"]:
        with pytest.raises(SettingsError):
            open_bulk(url)


def test_missing_bucket_is_unavailable(s3_server):
    with pytest.raises(Unavailable):
        open_bulk("s3://no-such-bucket-xyz/p", endpoint_url=s3_server, region="us-east-1").check()


def test_large_values_go_to_bulk_and_read_back(db, bulk):
    store = Store(db, bulk, bulk_threshold=100)
    with db.session() as s:
        users.create_organization(s, "acme")
        img = resources.create(s, "acme/cam", "sequence", sequence=SequenceSpec(data_type="image"))
        seq = resources.sequence_of(s, img)
    small, large = b"tiny", bytes(range(256)) * 40
    with db.session() as s:
        rows = [store.new_revision(img.id, 1, values.encode(seq, small)),
                store.new_revision(img.id, 2, values.encode(seq, large))]
        assert rows[0].bulk_key is None and rows[0].data == small
        assert rows[1].bulk_key and rows[1].data is None and rows[1].size == len(large)
        revisions.append(s, rows)
    with db.session() as s:
        latest = revisions.latest(s, resources.get(s, "acme/cam"))
        assert store.raw(latest) == large
        first = revisions.history(s, img.id, newest_first=False)[0]
        assert store.raw(first) == small
