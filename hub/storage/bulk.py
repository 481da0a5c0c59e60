"""Bulk storage for large values: a local folder or S3, one interface.

`open_bulk(url)` picks the back end: `file:///path` or `s3://bucket/prefix`.
Keys are relative (`rev/12/1700000000000000-ab12cd`); they never contain `..`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from hub.errors import NotFound, SettingsError, Unavailable


class Bulk(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"bad bulk key {key!r}")
    return key


class LocalBulk:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"bulk object {key} is missing") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise Unavailable(f"bulk folder {self.root} is not writable")


class S3Bulk:
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, region: str | None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None,
                                   config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                 connect_timeout=5, read_timeout=30))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)

    def _call(self, what: str, fn, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kw)
        except ClientError as e:
            if "Key" in kw and e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"bulk object {kw.get('Key')} is missing") from None
            raise Unavailable(f"S3 {what} failed on bucket {self.bucket}: {e}") from None
        except BotoCoreError as e:
            raise Unavailable(f"S3 {what} failed on bucket {self.bucket}: {e}") from None

    def put(self, key: str, data: bytes) -> None:
        self._call("put", self.client.put_object, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        return self._call("get", self.client.get_object, Key=self._key(key))["Body"].read()

    def delete(self, key: str) -> None:
        self._call("delete", self.client.delete_object, Key=self._key(key))

    def check(self) -> None:
        self._call("check", self.client.head_bucket)


def open_bulk(url: str, *, endpoint_url: str = "", region: str = "") -> Bulk:
    u = urlparse(url)
    if u.scheme == "file":
        return LocalBulk(Path(u.netloc + u.path) if u.netloc else Path(u.path))
    if u.scheme == "s3":
        if not u.netloc:
            raise SettingsError(f"BULK_STORAGE_URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3Bulk(u.netloc, u.path, endpoint_url, region)
    raise SettingsError(f"BULK_STORAGE_URL {url!r}: use file:///path or s3://bucket/prefix")
