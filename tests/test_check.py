"""`run.py --check`: a good production-like config (PostgreSQL, S3, Mosquitto with the
plugin) passes; a stopped PostgreSQL, a schema behind the code, a missing bucket, a broker
that is down, deaf or on another SECRET_KEY are each reported clearly."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import checks, cli
from hub.settings import ROOT
from hub.storage.db import migrate
from tests.fixtures.broker import BrokerFactory
from tests.support import PgCluster, S3Bucket, clean_env, free_port, write_settings_file
from tests.support.broker import RunningBroker


def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Path) -> tuple[int, str]:
    monkeypatch.setenv("HUB_SETTINGS", str(settings))
    rc = cli.main(["--check"])
    return rc, capsys.readouterr().out


def lines(out: str) -> dict[str, str]:
    """'ok    database: ...' -> {'database': 'ok    database: ...'}"""
    return {ln[6:].split(":", 1)[0]: ln for ln in out.splitlines() if ln[:6] in ("ok    ", "FAIL  ")}


@pytest.fixture
def production(broker_factory: BrokerFactory, pg_database_url: str, s3_bucket: S3Bucket) -> RunningBroker:
    """Mosquitto with the plugin on a PostgreSQL database and S3 bulk storage."""
    return broker_factory(DATABASE_URL=pg_database_url, BULK_STORAGE_URL=s3_bucket.url("values"),
                          S3_ENDPOINT_URL=s3_bucket.endpoint_url, S3_REGION="us-east-1")


@pytest.mark.pg
def test_good_config_passes(production: RunningBroker, s3_bucket: S3Bucket,
                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = check(monkeypatch, capsys, production.settings_path)
    assert rc == 0, out
    got = lines(out)
    assert set(got) == {"settings", "database", "bulk storage", "broker"}
    assert all(v.startswith("ok") for v in got.values()), out
    assert "up to date" in got["database"] and "postgresql" in got["database"]
    assert "write, read and delete work" in got["bulk storage"]
    assert "accepts the hub's service credentials" in got["broker"]
    assert out.rstrip().endswith("all checks passed")
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)
    assert listed["KeyCount"] == 0  # the probe object was removed


@pytest.mark.pg
def test_stopped_postgresql_is_reported_clearly(production: RunningBroker, pg_cluster: PgCluster) -> None:
    """The real command line, as an operator runs it."""
    pg_cluster.stop()
    try:
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--check"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env=clean_env(production.settings_path))
    finally:
        pg_cluster.start()
    assert r.returncode == 1, r.stdout + r.stderr
    got = lines(r.stdout)
    db_line = got["database"]
    assert db_line.startswith("FAIL  database: cannot connect to postgresql+psycopg://postgres@127.0.0.1:"
                              f"{pg_cluster.port}/"), db_line
    assert "is the database server running" in db_line
    assert "Traceback" not in r.stdout + r.stderr
    # The other checks still ran and passed: the operator sees it is the database alone.
    assert got["bulk storage"].startswith("ok") and got["broker"].startswith("ok"), r.stdout
    assert r.stdout.rstrip().endswith("1 check(s) failed")


@pytest.fixture
def deaf_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


def test_what_else_is_wrong_is_said(tmp_path: Path, s3_server: str, deaf_port: int,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(checks, "MQTT_TIMEOUT", 1.0)  # the deaf port costs this long
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0001")  # a database one upgrade behind the code
    base = {"DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "s" * 40, "DATABASE_URL": url,
            "BULK_STORAGE_URL": "s3://no-such-bucket/values", "S3_ENDPOINT_URL": s3_server,
            "S3_REGION": "us-east-1", "MQTT_PORT": deaf_port}
    rc, out = check(monkeypatch, capsys, write_settings_file(tmp_path / "a.py", base))
    got = lines(out)
    assert rc == 1 and out.rstrip().endswith("3 check(s) failed"), out
    assert "has schema 0001" in got["database"] and "run `run.py --migrate`" in got["database"]
    assert got["bulk storage"].startswith("FAIL") and "no-such-bucket" in got["bulk storage"]
    assert "did not answer an MQTT connect" in got["broker"]

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    rc, out = check(monkeypatch, capsys, write_settings_file(
        tmp_path / "b.py", {**base, "DATABASE_URL": empty, "MQTT_PORT": free_port()}))
    got = lines(out)
    assert "has no hub schema: run `run.py --init-db`" in got["database"]
    assert "cannot reach Mosquitto" in got["broker"] and "is it running" in got["broker"]


def test_broker_on_another_secret_key(broker: RunningBroker, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.py"
    shutil.copyfile(broker.settings_path, other)
    with open(other, "a") as f:
        f.write(f"SECRET_KEY = {'x' * 48!r}\n")
    rc, out = check(monkeypatch, capsys, other)
    assert rc == 1
    assert "refused the hub's service credentials" in lines(out)["broker"], out
    assert lines(out)["database"].startswith("ok") and lines(out)["bulk storage"].startswith("ok")
    rc, out = check(monkeypatch, capsys, broker.settings_path)
    assert rc == 0, out
