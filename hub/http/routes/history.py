"""/api/v1/history/{path}: a sequence's values over a time range (also at
/api/v1/resources/{path}/history, unless a resource is named so).

- `start`, `end` (ISO 8601 or epoch seconds; [start, end)), `count`, `order`;
- `points=N`: about N buckets (count/min/max/mean each) computed by the
  database, so a year of data is one fast request (numeric sequences);
- `format=csv` (or `Accept: text/csv`): the range as a streamed CSV download.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from hub import paths
from hub.errors import Unprocessable
from hub.http.auth import caller_of, require_level
from hub.http.deps import in_session, store_of
from hub.http.params import choice_param, int_param, time_param
from hub.http.routes import API
from hub.storage import resources, revisions, values
from hub.storage.models import DataType, Level, ResourceType
from hub.storage.store import Store

routes = web.RouteTableDef()
MAX_COUNT = 10_000  # values in one JSON answer
MAX_CSV_COUNT = 10**9
CSV_PAGE = 5_000


def _sequence(s: Session, path: str) -> tuple[int, str, str]:
    r = resources.get(s, path, type=ResourceType.SEQUENCE.value)
    seq = resources.sequence_of(s, r)
    return r.id, seq.data_type, seq.units


def _values(s: Session, store: Store, path: str, start: int | None, end: int | None, count: int,
            newest_first: bool) -> dict[str, Any]:
    rid, data_type, units = _sequence(s, path)
    rows = revisions.history(s, rid, start_us=start, end_us=end, count=count, newest_first=newest_first)
    return {"path": paths.normalize(path), "data_type": data_type, "units": units,
            "values": [{"timestamp": values.iso(r.timestamp_us), "value": store.value(data_type, r)}
                       for r in rows]}


def _buckets(s: Session, path: str, start: int | None, end: int | None, points: int) -> dict[str, Any]:
    rid, data_type, units = _sequence(s, path)
    if data_type != DataType.NUMERIC.value:
        raise Unprocessable(f"points= downsamples numeric sequences; {path} holds {data_type}")
    out: dict[str, Any] = {"path": paths.normalize(path), "data_type": data_type, "units": units,
                           "points": points, "buckets": []}
    if start is None or end is None:
        span = revisions.time_range(s, rid)
        if span is None:
            out["start"] = out["end"] = None
            return out
        start = span[0] if start is None else start
        end = span[1] + 1 if end is None else end
    out["start"], out["end"] = values.iso(start), values.iso(end)
    if end <= start:
        return out
    out["buckets"] = [{"timestamp": values.iso(b.start_us), "count": b.count, "min": b.min, "max": b.max,
                       "mean": b.mean} for b in revisions.downsample(s, rid, start, end, points)]
    return out


def _csv_page(s: Session, store: Store, rid: int, data_type: str, start: int | None, end: int | None,
              limit: int, newest_first: bool) -> tuple[str, int | None, int]:
    """One page of CSV lines, the timestamp of its last row, and its row count."""
    rows = revisions.history(s, rid, start_us=start, end_us=end, count=limit, newest_first=newest_first)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        v = store.value(data_type, r)
        w.writerow([values.iso(r.timestamp_us), json.dumps(v) if isinstance(v, (dict, list)) else v])
    return buf.getvalue(), rows[-1].timestamp_us if rows else None, len(rows)


def _buckets_csv(path: str, found: dict[str, Any]) -> web.Response:
    """points= with format=csv: the buckets as CSV (timestamp,count,min,max,mean)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["timestamp", "count", "min", "max", "mean"])
    for b in found["buckets"]:
        w.writerow([b["timestamp"], b["count"], b["min"], b["max"], b["mean"]])
    name = path.replace("/", "_")
    return web.Response(text=buf.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


async def _csv(request: web.Request, path: str, start: int | None, end: int | None, count: int | None,
               newest_first: bool) -> web.StreamResponse:
    store = store_of(request)
    rid, data_type, _ = await in_session(request, _sequence, path)
    name = path.replace("/", "_")
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": f'attachment; filename="{name}.csv"'})
    await resp.prepare(request)
    await resp.write(b"timestamp,value\n")
    left = count
    while left is None or left > 0:
        page = CSV_PAGE if left is None else min(CSV_PAGE, left)
        text, last, n = await in_session(request, _csv_page, store, rid, data_type, start, end, page,
                                         newest_first)
        await resp.write(text.encode())
        if n < page or last is None:
            break
        if left is not None:
            left -= n
        if newest_first:
            end = last
        else:
            start = last + 1
    await resp.write_eof()
    return resp


@routes.get(API + "/history/{path:.+}")
async def history(request: web.Request) -> web.StreamResponse:
    return await history_of(request, paths.normalize(request.match_info["path"]))


async def history_of(request: web.Request, path: str) -> web.StreamResponse:
    """Also serves `GET /resources/{path}/history` (routes/resources.py)."""
    caller = await caller_of(request)
    await require_level(request, caller, path, Level.READ)
    start, end = time_param(request, "start"), time_param(request, "end")
    newest_first = choice_param(request, "order", ("asc", "desc"), "desc") == "desc"
    points = int_param(request, "points", None, 1, MAX_COUNT)
    fmt = choice_param(request, "format", ("json", "csv"), "csv" if "text/csv" in
                       request.headers.get("Accept", "") else "json")
    if fmt == "csv":
        if points is not None:
            return _buckets_csv(path, await in_session(request, _buckets, path, start, end, points))
        count = int_param(request, "count", None, 1, MAX_CSV_COUNT)
        return await _csv(request, path, start, end, count, newest_first)
    if points is not None:
        return web.json_response(await in_session(request, _buckets, path, start, end, points))
    count = min(int_param(request, "count", 1000, 1, MAX_CSV_COUNT) or 1000, MAX_COUNT)
    return web.json_response(await in_session(request, _values, store_of(request), path, start, end, count,
                                              newest_first))
