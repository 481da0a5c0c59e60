"""Resources, revisions and history over HTTP (SQLite; the role matrix runs both databases)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
import requests

from hub.settings import load
from tests.fixtures.http import People, RunningHttp, seed_people, start_http_server
from tests.support import free_port, write_settings_file
from tests.support.compaction import compact_url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHttp]:
    root = tmp_path_factory.mktemp("http-res")
    path = write_settings_file(root / "config.py", {
        "DATA_DIR": str(root / "data"), "SECRET_KEY": "r" * 48, "PASSWORD_HASH_ROUNDS": 4,
        "HTTP_PORT": free_port(), "MQTT_PORT": free_port(), "BULK_THRESHOLD": 1000})
    with start_http_server(load(path, env={}), path) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: RunningHttp) -> People:
    return seed_people(server.settings)


class Api:
    def __init__(self, server: RunningHttp, headers: dict[str, str]) -> None:
        self.server, self.headers = server, headers

    def __call__(self, method: str, path: str, **kw: object) -> requests.Response:
        headers = {**self.headers, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return requests.request(method, self.server.api(path), headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api(server: RunningHttp, people: People) -> Api:
    return Api(server, people.auth("writer"))


def test_folders_children_and_pages(api: Api) -> None:
    assert api("POST", "/resources/acme/site/room", json={"type": "folder", "attributes": {"floor": 2}}
               ).status_code == 201
    for i in range(5):
        assert api("POST", f"/resources/acme/site/room/s{i}", json={"type": "sequence"}).status_code == 201
    page = api("GET", "/resources/acme/site/room?limit=2").json()
    assert page["type"] == "folder" and page["attributes"] == {"floor": 2} and page["total"] == 5
    assert [c["name"] for c in page["children"]] == ["s0", "s1"] and page["next"] == "s1"
    page2 = api("GET", "/resources/acme/site/room?limit=2&after=s1").json()
    assert [c["name"] for c in page2["children"]] == ["s2", "s3"]
    last = api("GET", "/resources/acme/site/room?limit=2&after=s3").json()
    assert [c["name"] for c in last["children"]] == ["s4"] and last["next"] is None
    assert api("POST", "/resources/acme/site/room", json={"type": "folder"}).json()["error"]["code"] == "conflict"


def test_sequence_values_checked_like_the_persister(api: Api) -> None:
    r = api("POST", "/resources/acme/site/temp", json={
        "type": "sequence", "data_type": "numeric", "units": "C", "min_value": -40, "max_value": 60,
        "decimal_places": 1, "value": 20.04, "timestamp": "2024-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    assert r.json()["value"] == 20.04 and r.json()["sequence"]["units"] == "C"  # as sent: decimal_places is for display
    assert r.headers["Location"].endswith("/resources/acme/site/temp")
    r = api("PUT", "/resources/acme/site/temp", json={"value": 21.5})
    assert r.status_code == 200 and r.json()["stored"] is True
    got = api("GET", "/resources/acme/site/temp").json()
    assert got["value"] == 21.5 and got["timestamp"] > "2024"
    assert api("PUT", "/resources/acme/site/temp", json={"value": 99}).json()["error"]["code"] == "bad_value"
    assert api("PUT", "/resources/acme/site/temp", json={"value": "warm"}).status_code == 422
    assert api("PUT", "/resources/acme/site/temp", json={"value": 1, "timestamp": "2999-01-01T00:00:00Z"}
               ).status_code == 422
    again = api("PUT", "/resources/acme/site/temp", json={"value": 5, "timestamp": "2024-01-01T00:00:00Z"})
    assert again.json()["stored"] is False  # that timestamp is already stored: left as it was
    assert api("PUT", "/resources/acme/site/temp", json={"nothing": 1}).status_code == 400
    assert api("POST", "/resources/acme/site/bad", json={"type": "sequence", "data_type": "weird"}
               ).status_code == 400


def test_files_raw_multipart_revisions_and_bulk(api: Api) -> None:
    r = api("POST", "/resources/acme/site/notes.txt", data=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    got = api("GET", "/resources/acme/site/notes.txt")
    assert got.content == b"hello" and got.headers["Content-Type"].startswith("text/plain")
    big = bytes(range(256)) * 20  # over BULK_THRESHOLD: kept in bulk storage
    r = api("PUT", "/resources/acme/site/notes.txt", files={"file": ("n.bin", big, "application/x-thing")})
    assert r.status_code == 200, r.text
    got = api("GET", "/resources/acme/site/notes.txt")
    assert got.content == big and got.headers["Content-Type"] == "application/x-thing"
    revs = api("GET", "/revisions/acme/site/notes.txt").json()["revisions"]
    assert len(revs) == 2 and revs[0]["size"] == len(big) and revs[1]["size"] == 5
    old = api("GET", f"/resources/acme/site/notes.txt?revision={revs[1]['id']}")
    assert old.content == b"hello"
    meta = api("GET", "/resources/acme/site/notes.txt?meta=true").json()
    assert meta["type"] == "file" and meta["size"] == len(big) and meta["revision"] == revs[0]["id"]
    assert api("GET", "/resources/acme/site/notes.txt?revision=999999").status_code == 404
    r = api("POST", "/resources/acme/site/j.json?type=file", data=b'{"a":1}',
            headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and api("GET", "/resources/acme/site/j.json").json() == {"a": 1}
    r = api("POST", "/resources/acme/site/t.txt", json={"type": "file", "content": "text"})
    assert api("GET", "/resources/acme/site/t.txt").text == "text"


def test_patch_rename_move_attributes_and_delete(api: Api) -> None:
    api("POST", "/resources/acme/site/a", json={"type": "folder"})
    api("POST", "/resources/acme/site/a/x", json={"type": "sequence", "value": 1})
    r = api("PATCH", "/resources/acme/site/a", json={"path": "acme/site/b", "attributes": {"k": "v"}})
    assert r.status_code == 200 and r.json()["path"] == "acme/site/b" and r.json()["attributes"] == {"k": "v"}
    assert api("GET", "/resources/acme/site/b/x").json()["value"] == 1
    assert api("GET", "/resources/acme/site/a").status_code == 404
    r = api("PATCH", "/resources/acme/site/b/x", json={"units": "%", "max_history": 10})
    assert r.json()["sequence"]["units"] == "%" and r.json()["sequence"]["max_history"] == 10
    assert api("PATCH", "/resources/acme/site/b", json={"units": "%"}).status_code == 409  # a folder
    assert api("PATCH", "/resources/acme/site/b", json={"colour": "red"}).status_code == 400
    assert api("PATCH", "/resources/acme/site/b", json={"path": "other/b"}).status_code == 404
    assert api("DELETE", "/resources/acme/site/b").json()["error"]["code"] == "conflict"
    r = api("DELETE", "/resources/acme/site/b?recursive=true")
    assert r.status_code == 200 and r.json()["deleted"] == 2
    assert api("GET", "/resources/acme/site/b/x").status_code == 404


@pytest.mark.parametrize("compacted", [False, True], ids=["rows", "compacted"])
def test_history_values_points_and_csv(api: Api, server: RunningHttp, compacted: bool) -> None:
    h_path = "acme/site/h-packed" if compacted else "acme/site/h"
    api("POST", f"/resources/{h_path}", json={"type": "sequence"})
    base = 1_700_000_000
    for i in range(20):
        r = api("PUT", f"/resources/{h_path}", json={"value": i, "timestamp": base + i * 60})
        assert r.status_code == 200, r.text
    if compacted:  # all but the latest value move into a block, before anything has read them
        assert compact_url(server.settings.database_url).values >= 19
    h = api("GET", f"/history/{h_path}?start={base}&count=5&order=asc").json()
    assert [v["value"] for v in h["values"]] == [0, 1, 2, 3, 4]
    h = api("GET", f"/history/{h_path}?count=3").json()
    assert [v["value"] for v in h["values"]] == [19, 18, 17]
    b = api("GET", f"/history/{h_path}?points=4").json()
    assert sum(x["count"] for x in b["buckets"]) == 20
    assert b["buckets"][0]["min"] == 0 and b["buckets"][-1]["max"] == 19
    assert abs(sum(x["mean"] * x["count"] for x in b["buckets"]) - sum(range(20))) < 1e-6
    r = api("GET", f"/history/{h_path}?format=csv&order=asc&start={base + 600}")
    assert r.headers["Content-Type"].startswith("text/csv") and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["timestamp", "value"] and [float(x[1]) for x in rows[1:]] == list(range(10, 20))
    r = api("GET", f"/history/{h_path}?points=3&format=csv")  # the buckets as CSV
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["timestamp", "count", "min", "max", "mean"] and sum(int(x[1]) for x in rows[1:]) == 20
    assert api("GET", f"/history/{h_path}?start=yesterday").status_code == 400
    assert api("GET", f"/history/{h_path}?start=2026-02-30").status_code == 400  # no such day: not a format: date
    api("POST", "/resources/acme/site/words", json={"type": "sequence", "data_type": "text", "value": "hi"})
    assert api("GET", "/history/acme/site/words?points=10").status_code == 422  # text: nothing to average
    assert api("GET", "/history/acme/site/words").json()["values"][0]["value"] == "hi"
    # the same under the resource's own path, unless a resource is named "history"
    same = api("GET", f"/history/{h_path}?count=3").json()
    assert api("GET", f"/resources/{h_path}/history?count=3").json() == same
    assert api("GET", "/resources/acme/site/nothing/history").status_code == 404
    api("POST", "/resources/acme/site/history", json={"type": "folder"})
    assert api("GET", "/resources/acme/site/history").json()["type"] == "folder"


@pytest.mark.parametrize("compacted", [False, True], ids=["rows", "compacted"])
def test_csv_streams_many_pages(api: Api, server: RunningHttp, monkeypatch: pytest.MonkeyPatch,
                                compacted: bool) -> None:
    from hub.http.routes import history

    monkeypatch.setattr(history, "CSV_PAGE", 7)
    path = "acme/site/many-packed" if compacted else "acme/site/many"
    api("POST", f"/resources/{path}", json={"type": "sequence"})
    for i in range(30):  # 0.. in steps of 997 s: about 8 hours, several blocks once compacted
        api("PUT", f"/resources/{path}", json={"value": i, "timestamp": 1_600_000_000 + i * 997})
    if compacted:
        assert compact_url(server.settings.database_url).values >= 29
    rows = list(csv.reader(io.StringIO(api("GET", f"/history/{path}?format=csv").text)))
    assert [float(x[1]) for x in rows[1:]] == list(range(29, -1, -1))
    rows = list(csv.reader(io.StringIO(api("GET", f"/history/{path}?format=csv&count=10&order=asc").text)))
    assert [float(x[1]) for x in rows[1:]] == list(range(10))
    rows = list(csv.reader(io.StringIO(api("GET", f"/history/{path}?format=csv&start=1600005000").text)))
    assert [float(x[1]) for x in rows[1:]] == list(range(29, 5, -1))


def test_a_corrupt_compacted_block_shows_in_health_and_the_rest_reads(api: Api, server: RunningHttp) -> None:
    from sqlalchemy import select, update

    from hub.storage import blocks
    from hub.storage.db import Database
    from hub.storage.models import RevisionBlock

    path = "acme/site/damaged"
    api("POST", f"/resources/{path}", json={"type": "sequence"})
    base = 1_600_000_000 - 1_600_000_000 % 3600  # an hour edge
    for i in range(6):  # two values in each of three hours
        api("PUT", f"/resources/{path}", json={"value": i, "timestamp": base + i * 1800})
    compact_url(server.settings.database_url)  # other tests' old values in this database are packed too
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            rid = resources_get_id(s, path)
            mine = s.scalars(select(RevisionBlock.span_us).where(RevisionBlock.resource_id == rid)).all()
            assert len(mine) == 3, mine  # one block per hour
            s.execute(update(RevisionBlock).where(RevisionBlock.resource_id == rid,
                                                  RevisionBlock.span_us == blocks.span_of((base + 3600) * 10**6))
                      .values(data=b"not a block"))
    finally:
        db.dispose()
    got = api("GET", f"/history/{path}?order=asc").json()["values"]
    assert [v["value"] for v in got] == [0, 1, 4, 5]  # the damaged hour is missing, the rest reads
    health = requests.get(server.api("/health"), timeout=30).json()
    assert health["status"] == "degraded"
    entry = next(e for e in health["corrupt_blocks"] if e["sequence"] == path)
    assert (entry["first"], entry["last"], entry["count"]) == ("2020-09-13T13:00:00Z", "2020-09-13T13:30:00Z", 2)


def resources_get_id(s: object, path: str) -> int:
    from hub.storage import resources

    return resources.get(s, path).id  # type: ignore[arg-type]


def test_cached_reads_see_other_writers_within_a_poll(api: Api, server: RunningHttp) -> None:
    """A value stored by another process (here: straight through the storage
    layer, as the persister does) shows within about POLL_SECONDS."""
    import time

    from hub.storage import resources, revisions
    from hub.storage.db import Database
    from hub.storage.revisions import NewRevision
    from hub.storage.values import now_us

    api("POST", "/resources/acme/site/polled", json={"type": "sequence", "value": 1})
    assert api("GET", "/resources/acme/site/polled").json()["value"] == 1  # cached now
    db = Database(server.settings.database_url)
    try:
        with db.session() as s:
            r = resources.get(s, "acme/site/polled")
            revisions.append(s, [NewRevision(r.id, now_us() + 1000, num=2.0, size=8)])
    finally:
        db.dispose()
    deadline = time.monotonic() + 5
    while api("GET", "/resources/acme/site/polled").json()["value"] != 2:
        assert time.monotonic() < deadline, "the other writer's value never showed"
        time.sleep(0.05)


def test_home_lists_topmost_granted_folders(server: RunningHttp, people: People) -> None:
    """A member whose only grant is deep in a tree starts browsing there; an
    organization admin sees the organization; a controller its own folder."""
    def home(who: str) -> list[tuple[str, str]]:
        r = requests.get(server.api("/resources"), headers=people.auth(who), timeout=30)
        assert r.status_code == 200, r.text
        return [(c["path"], c["type"]) for c in r.json()["children"]]

    assert home("member") == [("acme/site", "folder")]
    assert home("orgadmin") == [("acme", "organization")]
    assert home("controller") == [("acme/site/pi-01", "controller")]
    assert home("outsider") == []


def test_reads_say_the_callers_own_level(server: RunningHttp, people: People) -> None:
    """One cached body for every reader; X-Access is each caller's (the console hides
    the buttons for what a caller may not do)."""
    def access(who: str, path: str = "acme/site") -> str | None:
        r = requests.get(server.api(f"/resources/{path}"), headers=people.auth(who), timeout=30)
        assert r.status_code == 200, r.text
        return r.headers.get("X-Access")

    assert [access(w) for w in ("member", "writer", "orgadmin", "admin", "member")] == \
        ["read", "write", "admin", "admin", "read"]
    assert access("controller", "acme/site/pi-01") == "write"  # its own folder


def test_folder_listing_carries_small_latest_values(api: Api) -> None:
    assert api("POST", "/resources/acme/site/vals", json={"type": "folder"}).status_code == 201
    assert api("POST", "/resources/acme/site/vals/t", json={"type": "sequence", "value": 21.5}).status_code == 201
    assert api("POST", "/resources/acme/site/vals/empty", json={"type": "sequence"}).status_code == 201
    assert api("POST", "/resources/acme/site/vals/big", json={
        "type": "sequence", "data_type": "text", "value": "x" * 5000}).status_code == 201
    kids = {c["name"]: c for c in api("GET", "/resources/acme/site/vals").json()["children"]}
    assert kids["t"]["value"] == 21.5 and kids["t"]["timestamp"] and kids["t"]["sequence"]["data_type"] == "numeric"
    assert kids["empty"]["timestamp"] is None and "value" not in kids["empty"]
    assert "value" not in kids["big"] and kids["big"]["timestamp"]  # large: fetched on its own
    assert api("GET", "/resources/acme/site/vals/big").json()["value"] == "x" * 5000
