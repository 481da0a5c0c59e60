"""The shared fixtures work: databases, the PostgreSQL cluster, moto, settings."""

from __future__ import annotations

import socket

import boto3
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from hub.storage.db import Database, migrate
from hub.storage.models import Base
from tests.conftest import SettingsFactory
from tests.support import PgCluster, S3Bucket, free_port

EXPECTED_TABLES = {"alembic_version", "organizations", "users", "memberships", "resources", "rate_events",
                   "sequences", "revisions", "api_keys", "permissions", "changes", "ended_sessions"}


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_migrate_is_idempotent(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    database = Database(database_url)
    try:
        assert EXPECTED_TABLES <= set(inspect(database.engine).get_table_names())
        with database.session() as s:
            assert s.execute(text("select count(*) from alembic_version")).scalar_one() == 1
    finally:
        database.dispose()


def test_migrations_build_what_the_models_describe(database_url: str) -> None:
    """A model changed without its alembic revision (or the reverse) fails here."""
    migrate(database_url)
    database = Database(database_url)
    try:
        with database.engine.connect() as c:
            ctx = MigrationContext.configure(c, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        database.dispose()


def test_db_fixture_opens_sessions(db: Database) -> None:
    with db.session() as s:
        assert s.execute(text("select 1")).scalar_one() == 1


@pytest.mark.pg
def test_pg_cluster_stop_and_start(pg_cluster: PgCluster, pg_database_url: str) -> None:
    name = pg_database_url.rsplit("/", 1)[1]
    with pg_cluster.connect(name) as c:
        c.execute("create table t (x int)")
        c.execute("insert into t values (42)")
    pg_cluster.stop()
    assert not pg_cluster.is_running()
    with pytest.raises(psycopg.OperationalError):
        pg_cluster.connect(name).close()
    pg_cluster.start()
    assert pg_cluster.is_running()
    with pg_cluster.connect(name) as c:
        assert c.execute("select x from t").fetchone() == (42,)


def test_moto_bucket_put_get(s3_bucket: S3Bucket) -> None:
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="a/b", Body=b"hello")
    got = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="a/b")["Body"].read()
    assert got == b"hello"


def test_moto_works_with_default_credential_chain(s3_bucket: S3Bucket) -> None:
    client = boto3.client("s3", endpoint_url=s3_bucket.endpoint_url)  # env credentials, region
    client.put_object(Bucket=s3_bucket.name, Key="k", Body=b"v")
    assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="k")["Body"].read() == b"v"


def test_settings_factory(settings_factory: SettingsFactory) -> None:
    settings, path = settings_factory(HTTP_PORT=18080, DEBUG=True)
    assert settings.HTTP_PORT == 18080 and settings.DEBUG is True
    assert len(settings.SECRET_KEY) == 48
    assert settings.data_path == path.parent / "data"
    assert settings.database_url.startswith("sqlite:///" + str(path.parent))
