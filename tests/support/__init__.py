"""Helpers shared by the tests: real services on free loopback ports."""

from tests.support.pg import PgCluster, find_pg_bindir
from tests.support.ports import free_port
from tests.support.s3 import S3Bucket, moto_server
from tests.support.settings import SETTING_ENV_NAMES, clean_env, write_settings_file

__all__ = [
    "SETTING_ENV_NAMES",
    "PgCluster",
    "S3Bucket",
    "clean_env",
    "find_pg_bindir",
    "free_port",
    "moto_server",
    "write_settings_file",
]
