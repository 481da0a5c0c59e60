"""Shared fixtures: real services on free loopback ports, torn down after.

- `pg_cluster` (session): a throw-away PostgreSQL cluster (`PgCluster`), or a skip.
- `database_url` (params sqlite, pg) and `db`: a migrated `hub.storage.db.Database`.
- `pg_database_url`: a fresh PostgreSQL database only (for fault tests).
- `s3_server` (session): moto's S3 endpoint URL; `s3_bucket`: a fresh bucket (`S3Bucket`).
- `settings_factory`: `(**overrides) -> (Settings, path of the settings file)`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings, load
from hub.storage.db import Database, migrate
from tests.support import (
    SETTING_ENV_NAMES,
    PgCluster,
    S3Bucket,
    find_pg_bindir,
    free_port,
    moto_server,
    write_settings_file,
)
from tests.support.s3 import s3_client
from tests.support.settings import LISTEN_PORTS

# Each component's fixtures live in its own module under tests/fixtures/.
pytest_plugins = ["tests.fixtures.broker", "tests.fixtures.persister", "tests.fixtures.http"]

SettingsFactory = Callable[..., tuple[Settings, Path]]


# -- test order ---------------------------------------------------------------
# pytest-randomly shuffles the tests (and reseeds `random` before each one); it names its seed
# in the header, which -q (as `make test` runs) hides: say it at the start and in the summary,
# so a failure that only shows in one order can be replayed with the same order.
def _order_line(config: pytest.Config) -> str | None:
    if not config.pluginmanager.hasplugin("randomly") or not config.getoption("randomly_reorganize"):
        return None
    seed = config.getoption("randomly_seed")
    return f"random order: replay with --randomly-seed={seed} (make test PYTEST_ARGS=--randomly-seed={seed})"


def pytest_sessionstart(session: pytest.Session) -> None:
    line = _order_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None and session.config.get_verbosity() < 0:  # else the header says it
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = _order_line(config)
    if line:
        terminalreporter.write_sep("-", line)


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    """Dummy AWS credentials (boto3's default chain finds them, moto accepts them; real
    ones are never used), and no hub setting leaking in from the developer's shell."""
    with pytest.MonkeyPatch.context() as mp:
        for name in SETTING_ENV_NAMES:
            mp.delenv(name, raising=False)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


# -- PostgreSQL ---------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = find_pg_bindir()
    if bindir is None:
        reason = ("PostgreSQL server binaries not found (looked for initdb and pg_ctl under "
                  "/usr/lib/postgresql/*/bin and on PATH): ALL PostgreSQL TESTS ARE SKIPPED")
        if os.environ.get("HUB_TEST_REQUIRE_PG"):
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = PgCluster(bindir, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_database_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database `hub_<random>` on the session cluster; dropped after."""
    pg_cluster.start()  # a fault test before this one may have left it stopped
    name = "hub_" + secrets.token_hex(6)
    url = pg_cluster.create_database(name)
    yield url
    if pg_cluster.is_running():
        pg_cluster.drop_database(name)


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgresql", id="pg", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """`Database` on a migrated `database_url`; disposed after."""
    migrate(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


# -- S3 (moto) ----------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on a free loopback port."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_server: str) -> S3Bucket:
    """A fresh, empty bucket on `s3_server`."""
    client = s3_client(s3_server)
    name = "hub-test-" + secrets.token_hex(6)
    client.create_bucket(Bucket=name)
    return S3Bucket(name=name, endpoint_url=s3_server, client=client)


# -- settings -----------------------------------------------------------------
@pytest.fixture
def settings_factory(tmp_path: Path) -> SettingsFactory:
    """`make(**overrides)` writes `tmp_path/config.py` (DATA_DIR in tmp_path, a 48-char
    SECRET_KEY, free HTTP and MQTT ports, the same for every call of one test, and the
    overrides) and returns `(settings, path)`; give subprocesses
    `tests.support.clean_env(path)` so they load the same file through HUB_SETTINGS.
    (Never the default ports: tests run side by side on pytest-xdist's workers.)"""
    ports = {name: free_port() for name in LISTEN_PORTS}  # one set for every call of the test

    def make(**overrides: Any) -> tuple[Settings, Path]:
        values: dict[str, Any] = {"DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": secrets.token_hex(24), **ports}
        values.update(overrides)
        path = write_settings_file(tmp_path / "config.py", values)
        return load(path, env={}), path

    return make
