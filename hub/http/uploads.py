"""File bodies: raw (any Content-Type) or multipart with one part, named `file`,
refused with 413 as soon as they pass MAX_REQUEST_BYTES."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from hub.errors import BadRequest, TooLarge
from hub.http.typedefs import SETTINGS

DEFAULT_TYPE = "application/octet-stream"


async def read_upload(request: web.Request) -> tuple[bytes, str]:
    """(content, content type) of an uploaded file."""
    limit = request.app[SETTINGS].MAX_REQUEST_BYTES
    if request.content_type.startswith("multipart/"):
        try:
            return await _multipart(request, limit)
        except (ValueError, HttpProcessingError) as e:  # no boundary, or a part's headers are broken
            raise BadRequest(f"bad multipart body: {str(e).strip()[:200]}") from None
    data = await request.read()  # bounded by the app's client_max_size
    ctype = request.headers.get("Content-Type", DEFAULT_TYPE)
    return data, ctype


async def _multipart(request: web.Request, limit: int) -> tuple[bytes, str]:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise BadRequest("a multipart upload has one part, named 'file'")
        chunks, size = [], 0
        while chunk := await part.read_chunk(65536):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"file larger than {limit} bytes (MAX_REQUEST_BYTES)")
            chunks.append(chunk)
        return b"".join(chunks), part.headers.get("Content-Type", DEFAULT_TYPE)
    raise BadRequest("multipart upload needs a part named 'file'")
