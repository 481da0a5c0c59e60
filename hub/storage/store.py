"""The storage facade: database + bulk storage, for every hub process.

Large values go to bulk storage *before* the row that points at them is
written, so a failed upload leaves no dangling row (at worst an orphaned
object, which costs space, never correctness).
"""

from __future__ import annotations

import secrets
from typing import Any

from hub.settings import Settings
from hub.storage import values
from hub.storage.bulk import Bulk, open_bulk
from hub.storage.codec import Value
from hub.storage.db import Database
from hub.storage.latest import RevisionRow
from hub.storage.models import DataType, Revision
from hub.storage.revisions import NewRevision


class Store:
    def __init__(self, db: Database, bulk: Bulk, bulk_threshold: int) -> None:
        self.db, self.bulk, self.bulk_threshold = db, bulk, bulk_threshold
        self.session = db.session
        self.reading = db.reading

    @classmethod
    def from_settings(cls, settings: Settings, **engine_kw: object) -> Store:
        return cls(Database(settings.database_url, dotless_folders=settings.BROKER == "rabbitmq", **engine_kw),
                   open_bulk(settings.bulk_storage_url, endpoint_url=settings.S3_ENDPOINT_URL,
                             region=settings.S3_REGION),
                   settings.BULK_THRESHOLD)

    def new_revision(self, resource_id: int, timestamp_us: int, enc: values.Encoded) -> NewRevision:
        """A row for `enc`, uploading the value to bulk storage first when large."""
        size = enc.size
        if size <= self.bulk_threshold:
            return NewRevision(resource_id, timestamp_us, enc.num, enc.text, enc.data, None, size)
        key = f"rev/{resource_id}/{timestamp_us}-{secrets.token_hex(4)}"
        blob = enc.data if enc.data is not None else (enc.text or "").encode()
        self.bulk.put(key, blob)
        return NewRevision(resource_id, timestamp_us, None, None, None, key, size)

    def raw(self, rev: Revision | Value) -> bytes | str | float | None:
        """The stored value as kept: number, text or bytes (bulk fetched)."""
        if rev.bulk_key is None:
            return rev.num if rev.num is not None else rev.text if rev.text is not None else rev.data
        return self.bulk.get(rev.bulk_key)

    def value(self, data_type: str, rev: Revision | Value | RevisionRow) -> Any:
        """The API form of a sequence value (images as base64)."""
        if rev.bulk_key is None:
            return values.decode(data_type, rev.num, rev.text, rev.data)
        blob = self.bulk.get(rev.bulk_key)
        if data_type == DataType.IMAGE.value:
            return values.decode(data_type, None, None, blob)
        return values.decode(data_type, None, blob.decode(), None)

    def close(self) -> None:
        self.db.dispose()
