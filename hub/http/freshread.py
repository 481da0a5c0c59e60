"""What GET /resources/{path} shows when it is not in the read cache.

On PostgreSQL through psycopg the one hot query (`hub.storage.latest`) runs on the
event loop (`hub.storage.asyncreads`): a sequence's value or a file's metadata is
answered without a thread. Folders, file content and values kept in bulk storage
(which reading may fetch from S3) take the thread path, as everything does on SQLite.
The caller's access was checked before this is called.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.http import resource_ops as ops
from hub.http.deps import in_thread, store_of
from hub.http.typedefs import ASYNC_READS
from hub.storage import latest
from hub.storage.resources import FOLDER_TYPES
from hub.storage.store import Store


async def read_fresh(request: web.Request, path: str, *, limit: int, after: str | None,
                     meta: bool) -> dict[str, Any] | ops.FileContent:
    store = store_of(request)
    reads = request.app[ASYNC_READS]
    if reads is None:
        return await in_thread(request, ops.read_fresh, store, path, limit=limit, after=after, meta=meta)
    r, seq, rev = await latest.load_async(reads, path)
    leaf = r.type not in FOLDER_TYPES and (r.type != ops.FILE or meta)
    if leaf and (rev is None or rev.bulk_key is None):
        return ops.describe_leaf(store, r, seq, rev)
    return await in_thread(request, _read, store, path, limit, after, meta)


def _read(store: Store, path: str, limit: int, after: str | None, meta: bool) -> dict[str, Any] | ops.FileContent:
    with store.reading() as s:
        return ops.read(s, store, path, limit=limit, after=after, meta=meta)
