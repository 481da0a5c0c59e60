"""moto's S3 server, in this process, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from tests.support.ports import free_port

REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """Run `ThreadedMotoServer`; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint_url: str) -> Any:
    """A client with explicit dummy credentials (never the developer's real ones)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@dataclass
class S3Bucket:
    name: str
    endpoint_url: str
    client: Any

    def url(self, prefix: str = "") -> str:
        """The hub's BULK_STORAGE_URL for this bucket: `s3://name/prefix`."""
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"
