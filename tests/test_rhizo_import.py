"""`run.py --import-rhizo`: a real rhizo-server-shaped PostgreSQL database (built by
tests/support/rhizo_db.py), values in moto's S3, imported with the real command; then the
old keys over HTTP and MQTT, and the old passwords at log-in."""

from __future__ import annotations

import base64
import secrets
import struct
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from sqlalchemy import func, select, text

from hub.storage import revisions, users, values
from hub.storage.db import Database, migrate
from hub.storage.models import (
    ApiKey,
    ControllerStatus,
    Membership,
    Organization,
    Permission,
    Resource,
    Revision,
    RhizoKey,
    Sequence,
    User,
)
from hub.storage.store import Store
from tests.support import PgCluster, S3Bucket, clean_env, free_port
from tests.support.broker import RunningBroker, mqtt_client
from tests.support.compaction import compact_db
from tests.support.rhizo_db import SALT, T0, RhizoData, build, inner, plain_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.pg


def run_cli(settings_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], env=clean_env(settings_path),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture
def rhizo(pg_database_url: str, s3_bucket: S3Bucket) -> RhizoData:
    return build(pg_database_url, revisions=3000, bulk=s3_bucket.client, bucket=s3_bucket.name)


def make_hub(settings_factory: Callable[..., Any], s3_bucket: S3Bucket, url: str) -> tuple[Any, Path]:
    settings, path = settings_factory(DATABASE_URL=url, RHIZO_SALT=SALT, S3_ENDPOINT_URL=s3_bucket.endpoint_url,
                                      PASSWORD_HASH_ROUNDS=4, BULK_STORAGE_URL=s3_bucket.url("hub"))
    migrate(settings.database_url)
    return settings, path


@pytest.fixture
def hub_settings(settings_factory: Callable[..., Any], s3_bucket: S3Bucket, tmp_path: Path) -> tuple[Any, Path]:
    """A hub on SQLite, its bulk storage in the same S3 bucket as rhizo's (another prefix)."""
    return make_hub(settings_factory, s3_bucket, f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.fixture(params=["sqlite", "pg"])
def any_hub(request: pytest.FixtureRequest, settings_factory: Callable[..., Any], s3_bucket: S3Bucket,
            pg_cluster: PgCluster, tmp_path: Path) -> tuple[Any, Path]:
    """A hub on SQLite, or on its own PostgreSQL database."""
    if request.param == "sqlite":
        return make_hub(settings_factory, s3_bucket, f"sqlite:///{tmp_path / 'hub.db'}")
    return make_hub(settings_factory, s3_bucket, pg_cluster.create_database("hub_" + secrets.token_hex(6)))


def counts(db: Database | str) -> dict[str, int]:
    """Rows per table; given a URL, on an engine of its own, disposed at once (an engine left
    to the garbage collector on a database the fixture drops WITH (FORCE) raises later, in
    whichever test is running then)."""
    if isinstance(db, str):
        own = Database(db)
        try:
            return counts(own)
        finally:
            own.dispose()
    with db.session() as s:
        return {m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Organization, User, Membership, Resource, Revision, Permission, ApiKey, RhizoKey)}


def test_import_moves_everything_and_a_second_run_adds_nothing(rhizo: RhizoData, s3_bucket: S3Bucket,
                                                               any_hub: tuple[Any, Path]) -> None:
    settings, path = any_hub
    r = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"s3://{s3_bucket.name}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "import rhizo-server history [" in r.stderr  # progress on stderr
    assert "created: " in r.stdout and f"{rhizo.numeric_values + 20 + 2 + 3} revisions" in r.stdout, r.stdout
    assert "1 values a numeric sequence cannot hold" in r.stdout and "1 deleted users" in r.stdout
    assert "renamed 'pi 02' to lab1/controllers/pi_02" in r.stdout

    store = Store.from_settings(settings)
    db = store.db
    try:
        first = counts(db)
        with db.session() as s:
            orgs = {o.name: o for o in s.scalars(select(Organization))}
            assert set(orgs) == {"lab1", "other"} and orgs["lab1"].full_name == "Lab One"
            assert orgs["lab1"].timezone == "UTC" and orgs["lab1"].created_at == T0
            people = {u.email: u for u in s.scalars(select(User))}
            assert set(people) == {"root@example.com", "alice@example.com", "bob@example.com", "legacy@example.com",
                              "long@example.com"}
            assert people["root@example.com"].is_admin and not people["alice@example.com"].is_admin
            roles = {(m.user_id, m.role) for m in s.scalars(select(Membership))}
            assert roles == {(people["alice@example.com"].id, "admin"), (people["bob@example.com"].id, "member")}
            paths = {r.path: r.type for r in s.scalars(select(Resource))}
            assert paths["lab1/controllers/pi-01"] == "controller" and paths["lab1/controllers/pi_02"] == "controller"
            assert paths["lab1/shared/readme.txt"] == "file" and "lab1/controllers/pi-01/status" in paths
            assert not any(p.startswith("lab1/old") for p in paths) and "other/Controllers" not in paths
            temp = s.scalar(select(Resource).where(Resource.path == "lab1/controllers/pi-01/temp"))
            assert temp is not None
            spec = s.get(Sequence, temp.id)
            assert spec is not None and (spec.data_type, spec.units, spec.decimal_places, spec.max_history) == \
                ("numeric", "degrees C", 1, 1_000_000)
            assert '"min_storage_interval": 0' in (temp.attributes or "") and '"location": "bench 3"' in temp.attributes
            archive = s.scalars(select(Resource).where(Resource.path == "lab1/archive")).one()
            assert archive.type == "folder" and '"remote_path": "/mnt/archive/lab1"' in (archive.attributes or "")
            assert people["long@example.com"].user_name == "long.user"
            assert temp.modified_at == T0 and temp.created_at == T0  # rhizo's times, not the import's
            stamps = list(s.scalars(select(Revision.timestamp_us).where(Revision.resource_id == temp.id)
                                    .order_by(Revision.timestamp_us).limit(2)))
            t0 = values.to_us(values.from_us(stamps[0]))
            assert stamps == [t0, t0 + 1]  # rhizo's two values at one instant both arrive
            assert s.scalar(select(func.count()).where(Revision.resource_id == temp.id)) == rhizo.numeric_values
            cam = s.scalar(select(Resource).where(Resource.path == "lab1/controllers/pi-01/cam"))
            assert cam is not None
            images = [store.value("image", rev) for rev in s.scalars(
                select(Revision).where(Revision.resource_id == cam.id).order_by(Revision.timestamp_us))]
            assert [base64.b64decode(v) for v in images] == list(rhizo.images.values())
            readme = s.scalar(select(Resource).where(Resource.path == "lab1/shared/readme.txt"))
            assert readme is not None and readme.last_revision_id is not None
            latest = s.get(Revision, readme.last_revision_id)
            assert latest is not None and store.raw(latest) == b"second version\n"
            grants = {(s.get(Resource, p.resource_id).path, p.level, p.user_id, p.organization_id,  # type: ignore[union-attr]
                       p.controller_id) for p in s.scalars(select(Permission))}
            assert ("lab1", 2, None, orgs["lab1"].id, None) in grants  # the organization's users
            assert sum(1 for g in grants if g[0] == "lab1" and g[4]) == 2  # its controllers, each
            assert ("lab1/shared", 1, people["bob@example.com"].id, None, None) in grants
            prefixes = {k.name: (k.revoked_at is not None) for k in s.scalars(select(ApiKey))}
            assert len(prefixes) == 4 and sum(prefixes.values()) == 1
            status = s.scalars(select(ControllerStatus).where(ControllerStatus.client_version != "")).one()
            assert status.client_version == "0.1.5" and status.status == '{"disk": 12.5}'
            assert (status.watchdog_minutes, status.watchdog_recipients) == (30, "alice@example.com, +15551234567")
        assert compact_db(db).values > 0  # rhizo's old values move into blocks: still "already here"
        first = counts(db)
        again = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"s3://{s3_bucket.name}")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "created: nothing" in again.stdout, again.stdout
        assert counts(db) == first
        # rhizo kept running meanwhile: the next run brings only what is new
        with psycopg.connect(plain_url(rhizo.url)) as conn:
            conn.execute("INSERT INTO resource_revisions (resource_id, timestamp, data) SELECT id, %s, %s "
                         "FROM resources WHERE name = 'temp'", (T0 + timedelta(days=30), b"30.5"))
        third = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"s3://{s3_bucket.name}")
        assert third.returncode == 0 and "created: 1 revisions" in third.stdout, third.stdout
        assert counts(db)["revisions"] == first["revisions"] + 1
    finally:
        store.close()


def test_a_database_that_is_not_rhizo_shaped_is_refused(pg_cluster: PgCluster, hub_settings: tuple[Any, Path]) -> None:
    settings, path = hub_settings
    url = pg_cluster.create_database("not_rhizo_" + secrets.token_hex(6))
    migrate(url)  # a hub database: tables, but not rhizo's
    r = run_cli(path, "--import-rhizo", url)
    assert r.returncode == 2
    assert "is not a rhizo-server database" in r.stderr and "resource_revisions" in r.stderr, r.stderr
    assert counts(settings.database_url)["users"] == 0


def test_bulk_values_need_the_bulk_storage(rhizo: RhizoData, hub_settings: tuple[Any, Path]) -> None:
    settings, path = hub_settings
    r = run_cli(path, "--import-rhizo", rhizo.url)
    assert r.returncode == 2 and "pass --bulk s3://BUCKET" in r.stderr, r.stderr
    assert counts(settings.database_url)["users"] == 0


def test_a_conflicting_target_stops_the_import_and_changes_nothing(rhizo: RhizoData, s3_bucket: S3Bucket,
                                                                  hub_settings: tuple[Any, Path]) -> None:
    from hub.storage import resources

    settings, path = hub_settings
    db = Database(settings.database_url)
    with db.session() as s:
        users.create_organization(s, "lab1")
        resources.create(s, "lab1/controllers", "sequence")
    before = counts(db)
    db.dispose()
    r = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"s3://{s3_bucket.name}")
    assert r.returncode == 2
    assert "already has /lab1/controllers as a sequence" in r.stderr and "nothing was imported" in r.stderr
    assert counts(settings.database_url) == before  # one transaction: nothing half-written


def test_old_keys_work_over_http_and_mqtt_and_old_passwords_log_in(
        rhizo: RhizoData, s3_bucket: S3Bucket, broker_factory: Callable[..., RunningBroker],
        http_server_factory: Callable[..., Any], tmp_path: Path) -> None:
    broker = broker_factory(RHIZO_SALT=SALT, S3_ENDPOINT_URL=s3_bucket.endpoint_url, PASSWORD_HASH_ROUNDS=4,
                            HTTP_PORT=free_port())
    path = broker.settings_path
    r = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"s3://{s3_bucket.name}")
    assert r.returncode == 0, r.stderr[-3000:]
    broker.sync()
    http = http_server_factory(path)
    pi1, pi2 = rhizo.keys["pi1"], rhizo.keys["pi2"]

    # MQTT: the key rhizo kept as SHA-512 connects and publishes to its folder
    c = mqtt_client(broker, pi1)
    try:
        assert c.connected.is_set(), broker.log_tail()
        assert c.subscribe("lab1/controllers/pi-01") == [1]
        assert c.publish("lab1/controllers/pi-01", b'{"update": {"temp": 21.5}}') == 0  # 135 if refused
        assert c.wait_messages(1)[0][0] == "lab1/controllers/pi-01"
    finally:
        c.close()
    assert not mqtt_client(broker, rhizo.keys["pi1-old"]).connected.is_set()  # revoked in rhizo
    assert not mqtt_client(broker, pi1[:-1] + ("A" if pi1[-1] != "A" else "B")).connected.is_set()
    # the key rhizo kept as bcrypt: refused on the broker's thread, checked off it, then accepted
    assert not mqtt_client(broker, pi2).connected.is_set()
    assert broker.wait_log("rhizo-server key rz", timeout=30), broker.log_tail()  # its check is done
    db = Database(broker.settings.database_url)
    with db.session() as s:
        assert inner(pi2) in set(s.scalars(select(RhizoKey.key_hash)))  # stored as the fast hash now
    broker.sync()
    c = mqtt_client(broker, pi2)
    try:
        assert c.connected.is_set(), broker.log_tail()
    finally:
        c.close()

    # HTTP: Basic (as rhizo-client sends it) and Bearer; a bcrypt-kept key is checked and upgraded too
    basic = {"Authorization": "Basic " + base64.b64encode(f"key:{pi2}".encode()).decode()}
    got = requests.get(http.api("/resources/lab1/controllers/pi_02"), headers=basic, timeout=10)
    assert got.status_code == 200, got.text
    got = requests.get(http.api("/resources/lab1/controllers/pi-01/temp"),
                       headers={"Authorization": f"Bearer {pi1}"}, timeout=10)
    assert got.status_code == 200, got.text
    got = requests.get(http.api("/me"), headers={"Authorization": f"Bearer {rhizo.keys['alice']}"}, timeout=10)
    assert got.status_code == 200 and "alice@example.com" in got.text, got.text
    with db.session() as s:
        assert inner(rhizo.keys["alice"]) in set(s.scalars(select(RhizoKey.key_hash)))
    wrong = requests.get(http.api("/resources/lab1/controllers/pi-01/temp"),
                         headers={"Authorization": f"Bearer {rhizo.keys['pi1-old']}"}, timeout=10)
    assert wrong.status_code == 401

    # passwords: rhizo's bcrypt(SHA-512) logs in (and becomes the hub's own hash); others do not
    def login(email: str, password: str) -> requests.Response:
        return requests.post(http.api("/login"), json={"email": email, "password": password},
                             headers={"Origin": http.url}, timeout=10)

    bob_password = rhizo.passwords["bob@example.com"]
    assert login("bob@example.com", "wrong password").status_code == 401
    assert login("bob@example.com", bob_password).status_code == 200
    assert login("legacy@example.com", "legacy password").status_code == 401  # an md5: reset by an admin
    with db.session() as s:
        bob = s.scalars(select(User).where(User.email == "bob@example.com")).one()
        assert bob.password_hash.startswith(users.PREHASHED)
        alice_id = s.scalars(select(User.id).where(User.email == "alice@example.com")).one()
    assert login("bob@example.com", bob_password).status_code == 200
    long_password = rhizo.passwords["long@example.com"]
    assert len(long_password.encode()) == 100
    assert login("long.user", long_password).status_code == 200  # rhizo's user name; no 500 past 72 bytes
    assert login("long@example.com", long_password).status_code == 200  # now in the hub's own form
    assert login("long@example.com", long_password[:72]).status_code == 401
    # a user changes a password still kept in rhizo's form, giving it as the current one
    changed = requests.patch(http.api(f"/users/{alice_id}"), timeout=10,
                             headers={"Authorization": f"Bearer {rhizo.keys['alice']}"},
                             json={"password": "alice new password 9",
                                   "current_password": rhizo.passwords["alice@example.com"]})
    assert changed.status_code == 200, changed.text
    assert login("alice@example.com", "alice new password 9").status_code == 200
    db.dispose()


def test_an_import_killed_midway_leaves_the_hub_as_it_was(pg_database_url: str, hub_settings: tuple[Any, Path]) -> None:
    settings, path = hub_settings
    source = build(pg_database_url, revisions=150_000)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--import-rhizo", source.url],
                            env=clean_env(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the structure is written (not committed) and the history is being copied
            if line.startswith("import rhizo-server history ["):
                break
        proc.kill()
    finally:
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -9, "the import ended before it could be killed midway"
    assert counts(settings.database_url) == {"organizations": 0, "users": 0, "memberships": 0, "resources": 0,
                                             "revisions": 0, "permissions": 0, "api_keys": 0, "rhizo_keys": 0}
    r = run_cli(path, "--import-rhizo", source.url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert counts(settings.database_url)["revisions"] == source.numeric_values + 20 + 2


@pytest.fixture(params=["sqlite", "pg"])
def any_source(request: pytest.FixtureRequest, tmp_path: Path) -> RhizoData:
    """A rhizo-server database on SQLite (rhizo's default) or PostgreSQL, no bulk values."""
    url = f"sqlite:///{tmp_path / 'rhizo.db'}" if request.param == "sqlite" else \
        str(request.getfixturevalue("pg_database_url"))
    return build(url, revisions=600)


def test_values_come_over_bit_exact_from_sqlite_and_postgresql(any_source: RhizoData,
                                                               hub_settings: tuple[Any, Path]) -> None:
    settings, path = hub_settings
    r = run_cli(path, "--import-rhizo", any_source.url)
    assert r.returncode == 0, r.stderr[-3000:]
    src = Database(any_source.url)
    try:
        with src.session() as s:
            sent = [float(bytes(d)) for d in s.scalars(text(
                "SELECT data FROM resource_revisions WHERE resource_id = (SELECT id FROM resources "
                "WHERE name = 'temp') AND data != :nan ORDER BY timestamp, id"), {"nan": b"not a number"})]
    finally:
        src.dispose()
    assert len(sent) == any_source.numeric_values and 21.47 in sent
    db = Database(settings.database_url)

    def stored() -> list[bytes]:
        with db.session() as s:
            rid = s.scalars(select(Resource.id).where(Resource.path == "lab1/controllers/pi-01/temp")).one()
            return [struct.pack("<d", v.num) for v in revisions.history(s, rid, count=10**6, newest_first=False)]

    try:
        want = [struct.pack("<d", x) for x in sent]
        assert sorted(stored()) == sorted(want)  # every value, bit for bit: decimal_places 1 rounds nothing
        assert compact_db(db).values > 0
        assert sorted(stored()) == sorted(want)
        with db.session() as s:
            spec = s.scalars(select(Sequence).join(Resource, Resource.id == Sequence.resource_id)
                             .where(Resource.path == "lab1/controllers/pi-01/temp")).one()
            assert spec.decimal_places == 1
    finally:
        db.dispose()


def test_bad_source_urls_and_a_role_that_cannot_read_give_rc_2_and_write_nothing(
        pg_database_url: str, pg_cluster: PgCluster, hub_settings: tuple[Any, Path], tmp_path: Path) -> None:
    settings, path = hub_settings
    missing = tmp_path / "no" / "rhizo.db"
    for url, said in ((f"sqlite:///{missing}", "names no SQLite file that exists"),
                      ("http://rhizo.example.com/", "is not a database URL the import reads"),
                      ("not a url", "is not a database URL")):
        r = run_cli(path, "--import-rhizo", url)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not missing.parent.exists()  # nothing created
    build(pg_database_url, revisions=10)
    name = pg_database_url.rsplit("/", 1)[1]
    role = "reader_" + secrets.token_hex(4)
    with pg_cluster.connect(name) as c:
        c.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")  # no grants: it may connect, not read
    host = pg_database_url.split("@", 1)[1] if "@" in pg_database_url else pg_database_url.split("//", 1)[1]
    r = run_cli(path, "--import-rhizo", f"postgresql://{role}:pw@{host}")
    assert r.returncode == 2 and "may not read table" in r.stderr and "GRANT SELECT" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert counts(settings.database_url)["users"] == 0


def test_a_wrong_bulk_location_gives_rc_2_before_anything_is_written(rhizo: RhizoData, s3_bucket: S3Bucket,
                                                                     hub_settings: tuple[Any, Path],
                                                                     tmp_path: Path) -> None:
    settings, path = hub_settings
    missing = tmp_path / "no" / "such" / "folder"
    r = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", f"file://{missing}")
    assert r.returncode == 2 and "no such folder" in r.stderr, r.stderr[-2000:]
    assert not missing.exists()  # read, never created
    empty = tmp_path / "empty"
    empty.mkdir()
    for bulk in (f"file://{empty}", f"s3://{s3_bucket.name}/not-there"):
        r = run_cli(path, "--import-rhizo", rhizo.url, "--bulk", bulk)
        assert r.returncode == 2 and "holds none of 3 values" in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    assert counts(settings.database_url)["users"] == 0


def test_check_rhizo_key_says_whether_the_salt_is_right_before_and_after(
        rhizo: RhizoData, s3_bucket: S3Bucket, settings_factory: Callable[..., Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    _, made = settings_factory(DATABASE_URL=url, RHIZO_SALT="not rhizo's salt", S3_ENDPOINT_URL=s3_bucket.endpoint_url)
    wrong = tmp_path / "wrong_salt.py"
    wrong.write_text(made.read_text())  # the factory rewrites one file: keep this one aside
    settings, path = make_hub(settings_factory, s3_bucket, url)
    bulk = ("--bulk", f"s3://{s3_bucket.name}")
    r = run_cli(wrong, "--check-rhizo-key", rhizo.keys["pi1"], "--import-rhizo", rhizo.url, *bulk)
    assert r.returncode == 2 and "does not match under RHIZO_SALT" in r.stderr, r.stderr[-2000:]
    assert counts(url)["users"] == 0  # the import never started
    r = run_cli(path, "--check-rhizo-key", rhizo.keys["pi2"], "--import-rhizo", rhizo.url, *bulk)
    assert r.returncode == 0 and "the key matches in the rhizo-server database" in r.stdout, r.stderr[-2000:]
    assert "created: " in r.stdout  # and then imported
    for key in (rhizo.keys["pi1"], rhizo.keys["pi2"]):  # the SHA-512 form and the bcrypt form
        r = run_cli(path, "--check-rhizo-key", key)
        assert r.returncode == 0 and "the hub's imported rhizo keys" in r.stdout, r.stderr
        assert run_cli(wrong, "--check-rhizo-key", key).returncode == 2
    r = run_cli(path, "--check-rhizo-key", "tst" + "Z" * 50)
    assert r.returncode == 2 and "no key in the hub's imported rhizo keys" in r.stderr
