"""`run.py --export ORG PATH` / `--import PATH`: an organization with its full
history (bulk values on S3 included) moves into an empty database unchanged."""

from __future__ import annotations

import gzip
import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub import cli, transfer
from hub.storage import keys, permissions, resources, revisions, users, values
from hub.storage.bulk import open_bulk
from hub.storage.db import Database, migrate
from hub.storage.models import Organization, Permission, Resource, Revision, Sequence
from hub.storage.resources import SequenceSpec
from hub.storage.store import Store
from tests.support import PgCluster, S3Bucket, write_settings_file
from tests.support.compaction import compact_db

THRESHOLD = 100
N_NUMERIC = 2500  # more than one import batch


def _settings(path: Path, url: str, bucket: S3Bucket, prefix: str) -> Path:
    return write_settings_file(path, {
        "DATA_DIR": str(path.parent / "data"), "SECRET_KEY": secrets.token_hex(24), "DATABASE_URL": url,
        "BULK_STORAGE_URL": bucket.url(prefix), "S3_ENDPOINT_URL": bucket.endpoint_url,
        "S3_REGION": "us-east-1", "BULK_THRESHOLD": THRESHOLD})


def _run(monkeypatch: pytest.MonkeyPatch, settings: Path, *argv: str) -> int:
    monkeypatch.setenv("HUB_SETTINGS", str(settings))
    return cli.main(list(argv))


@pytest.fixture
def target_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second, empty, migrated database of the same kind as `database_url`."""
    if database_url.startswith("sqlite"):
        url, drop = f"sqlite:///{tmp_path / 'target.db'}", None
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        drop = "hub_target_" + secrets.token_hex(6)
        url = cluster.create_database(drop)
    migrate(url)
    yield url
    if drop is not None and cluster.is_running():
        cluster.drop_database(drop)


def _populate(db: Database, store: Store) -> None:
    """An organization with every kind of resource and value, moved and deleted ones, permissions."""
    big_image = bytes(range(256)) * 4
    big_text = "long text " * 40
    with db.session() as s:
        users.create_organization(s, "acme", "Acme Greenhouses")
        users.create_organization(s, "other")
        u = users.create_user(s, "ann@example.com", "a good password", rounds=4)
        resources.create(s, "acme/site", "folder", attributes={"city": "Lyon"})
        resources.create(s, "acme/site/pi-01", "controller")
        resources.create(s, "acme/later", "folder")  # created after pi-01, then pi-01 moves into it
        resources.create(s, "acme/site/pi-01/temp", "sequence",
                         sequence=SequenceSpec(units="°C", min_value=-40, max_value=85, decimal_places=2,
                                               max_history=100000))
        resources.create(s, "acme/site/pi-01/cam", "sequence", sequence=SequenceSpec(data_type="image"))
        resources.create(s, "acme/site/pi-01/log", "sequence", sequence=SequenceSpec(data_type="text"))
        resources.create(s, "acme/site/pi-01/cfg", "sequence", sequence=SequenceSpec(data_type="json"))
        resources.create(s, "acme/site/old", "sequence")
        resources.create(s, "other/x", "sequence")
        org = users.get_organization(s, "acme")
        permissions.grant(s, "acme/site", 1, organization_id=org.id)
        permissions.grant(s, "acme/site", 2, controller_path="acme/site/pi-01")
        permissions.grant(s, "acme/site", 3, user_id=u.id)  # names a user: not exported
        keys.create(s, controller_path="acme/site/pi-01")
    with db.session() as s:
        specs = {p: resources.sequence_of(s, resources.get(s, f"acme/site/pi-01/{p}"))
                 for p in ("temp", "cam", "log", "cfg")}
        ids = {p: q.resource_id for p, q in specs.items()}
        t0 = 1_700_000_000_000_000
        rows = [store.new_revision(ids["temp"], t0 + i * 1_000_000, values.encode(specs["temp"], (i % 500) / 7))
                for i in range(N_NUMERIC)]
        for i, v in enumerate([b"tiny", big_image, big_image[::-1]]):
            rows.append(store.new_revision(ids["cam"], t0 + i, values.encode(specs["cam"], v)))
        for i, v in enumerate(["short", big_text, "héllo\nwörld"]):
            rows.append(store.new_revision(ids["log"], t0 + i, values.encode(specs["log"], v)))
        rows.append(store.new_revision(ids["cfg"], t0, values.encode(specs["cfg"], {"a": [1, 2.5, None]})))
        old = resources.get(s, "acme/site/old")
        rows.append(store.new_revision(old.id, t0, values.encode(resources.sequence_of(s, old), 1)))
        revisions.append(s, rows)
    with db.session() as s:
        resources.delete(s, "acme/site/old")
        resources.move(s, "acme/site/pi-01", "acme/later/pi-01")


def _snapshot(db: Database, store: Store, org_name: str) -> dict[str, Any]:
    """Everything an export promises to carry, without database ids (permissions naming a
    user are not exported: users are not part of an organization's export)."""
    with db.session() as s:
        org = s.scalar(select(Organization).where(Organization.name == org_name))
        assert org is not None
        rows = list(s.scalars(select(Resource).where(Resource.organization_id == org.id)))
        by_id = {r.id: r for r in rows}
        out: dict[str, Any] = {"org": (org.name, org.full_name, org.created_at), "resources": {}}
        for r in rows:
            seq = s.get(Sequence, r.id)
            revs = revisions.history(s, r.id, count=10**7, newest_first=False)  # rows and compacted alike
            latest = s.get(Revision, r.last_revision_id) if r.last_revision_id else None
            perms = sorted((p.level, p.organization_id == org.id,
                            by_id[p.controller_id].path if p.controller_id else None)
                           for p in s.scalars(select(Permission).where(
                               Permission.resource_id == r.id, Permission.user_id.is_(None))))
            out["resources"][(r.path, r.deleted)] = {
                "fields": (r.name, r.type, r.created_at, r.modified_at, r.deleted_at, r.attributes,
                           by_id[r.parent_id].path if r.parent_id else None),
                "sequence": None if seq is None else (seq.data_type, seq.units, seq.min_value, seq.max_value,
                                                      seq.decimal_places, seq.max_history),
                "revisions": [(v.timestamp_us, v.num, v.text, v.data, v.size, v.bulk_key is not None,
                               store.raw(v)) for v in revs],
                "latest": latest.timestamp_us if latest else None,
                "permissions": perms,
            }
        return out


@pytest.mark.parametrize("compacted", [False, True], ids=["rows", "compacted"])
def test_export_then_import_into_empty_database(
        db: Database, target_url: str, s3_bucket: S3Bucket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], compacted: bool) -> None:
    src = Store(db, open_bulk(s3_bucket.url("src"), endpoint_url=s3_bucket.endpoint_url), THRESHOLD)
    _populate(db, src)
    before = _snapshot(db, src, "acme")
    if compacted:  # the old values live in blocks now: the export reads them there
        assert compact_db(db).values >= N_NUMERIC - 1
        assert _snapshot(db, src, "acme") == before
    in_bulk = [rev for r in before["resources"].values() for rev in r["revisions"] if rev[5]]
    assert len(in_bulk) == 3  # two images and one text live in S3

    export = tmp_path / "acme.jsonl.gz"
    assert _run(monkeypatch, _settings(tmp_path / "src.py", db.url, s3_bucket, "src"),
                "--export", "acme", str(export)) == 0
    err = capsys.readouterr().err
    assert "export acme [" in err and "100%" in err and f"{N_NUMERIC + 8:,}/{N_NUMERIC + 8:,}" in err
    lines = [json.loads(line) for line in gzip.open(export, "rt")]
    assert lines[0]["kind"] == "header" and lines[-1]["kind"] == "end"
    assert not any(r["path"].startswith("other") for r in lines if r["kind"] == "resource")
    assert "secret_hash" not in export.read_bytes().decode("latin-1")

    assert _run(monkeypatch, _settings(tmp_path / "dst.py", target_url, s3_bucket, "dst"),
                "--import", str(export)) == 0
    assert "import acme [" in capsys.readouterr().err
    target = Database(target_url)
    try:
        dst = Store(target, open_bulk(s3_bucket.url("dst"), endpoint_url=s3_bucket.endpoint_url), THRESHOLD)
        after = _snapshot(target, dst, "acme")
        assert after == before
        if compacted:  # and the imported ones compact the same
            compact_db(target)
            assert _snapshot(target, dst, "acme") == before
        listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="dst/")
        assert listed["KeyCount"] == 3  # the bulk values were uploaded to the target's storage
        with target.session() as s:
            assert s.scalar(select(Organization).where(Organization.name == "other")) is None
            pi = resources.get(s, "acme/later/pi-01")
            assert keys.list_keys(s, controller_ids=[pi.id]) == []  # keys stay behind
            latest = revisions.latest(s, resources.get(s, "acme/later/pi-01/temp"))
            assert latest is not None and latest.num == ((N_NUMERIC - 1) % 500) / 7  # as sent, every bit
    finally:
        target.dispose()


def test_import_refuses_existing_org_and_damaged_files(
        tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate(url)
    db = Database(url)
    try:
        _populate(db, Store(db, open_bulk(s3_bucket.url("src"), endpoint_url=s3_bucket.endpoint_url), THRESHOLD))
    finally:
        db.dispose()
    settings = _settings(tmp_path / "src.py", url, s3_bucket, "src")
    export = tmp_path / "acme.jsonl"
    assert _run(monkeypatch, settings, "--export", "acme", str(export)) == 0

    assert _run(monkeypatch, settings, "--import", str(export)) == 2
    assert "organization acme already exists" in capsys.readouterr().err

    empty_url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate(empty_url)
    empty = _settings(tmp_path / "empty.py", empty_url, s3_bucket, "dst")
    lines = export.read_text().splitlines(keepends=True)
    cases = {
        "truncated": (lines[:-40], "truncated"),
        "no header": (lines[1:], "not a hub export file"),
        "bad line": ([*lines[:5], "{oops\n", *lines[5:]], "line 6 of the export file is not JSON"),
        "escaping path": ([*lines[:2], lines[2].replace('"path":"acme/', '"path":"other/', 1), *lines[3:]],
                          "does not belong in organization acme"),
        "miscounted": ([ln for ln in lines if '"t":1700000000000000,' not in ln or '"text"' not in ln],
                       "damaged"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text("".join(content))
        assert _run(monkeypatch, empty, "--import", str(bad)) == 2, name
        assert message in capsys.readouterr().err, name
    assert _run(monkeypatch, empty, "--import", str(tmp_path / "missing.jsonl")) == 2
    assert "no export file" in capsys.readouterr().err
    check = Database(empty_url)
    try:
        with check.session() as s:  # every failed import left the database as it was
            assert s.scalar(select(Organization.id)) is None and s.scalar(select(Resource.id)) is None
    finally:
        check.dispose()
    assert _run(monkeypatch, empty, "--import", str(export)) == 0


def test_export_is_one_snapshot_while_writers_go_on(db: Database, tmp_path: Path) -> None:
    """A live hub keeps writing during an export: the file still says what it holds (or the
    import would refuse it) and holds one moment's state."""
    store = Store(db, open_bulk(f"file://{tmp_path / 'bulk'}"), THRESHOLD)
    with db.session() as s:
        users.create_organization(s, "acme")
        temp = resources.create(s, "acme/temp", "sequence")
        revisions.append(s, [store.new_revision(temp.id, 1_000 + i, values.encode(resources.sequence_of(s, temp), i))
                             for i in range(10)])

    class WritesMeanwhile(io.StringIO):
        def write(self, text: str) -> int:
            if self.tell() == 0:  # while the header goes out, a controller and the persister go on
                with db.session() as s:
                    seq = resources.get(s, "acme/temp")
                    new = resources.create(s, "acme/humidity", "sequence")
                    spec = resources.sequence_of(s, seq)
                    revisions.append(s, [store.new_revision(seq.id, 5_000, values.encode(spec, 99)),
                                         store.new_revision(new.id, 5_000, values.encode(spec, 1))])
            return super().write(text)

    out = WritesMeanwhile()
    counts = transfer._export(store, "acme", out, None)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    held = {k: sum(r["kind"] == k[:-1] for r in lines) for k in ("resources", "permissions", "revisions")}
    assert counts == held == lines[0]["counts"] == lines[-1]["counts"] == \
        {"resources": 2, "permissions": 0, "revisions": 10}  # the organization folder and temp
    with db.session() as s:  # the writes themselves went through
        assert resources.find(s, "acme/humidity") is not None
