"""HTTP API throughput and latency, against a bare aiohttp handler as the ceiling.

    .venv/bin/python bench/http.py [--seconds 5] [--concurrency 32] [--revisions 1000000]

Everything real and on this machine: a throw-away PostgreSQL cluster, the hub's
HTTP server as `run.py --http` (one process), and a load generator in another
process (aiohttp client, keep-alive, `--concurrency` requests in flight for
`--seconds`). The caller is a plain user with a read grant (not an admin, so
the permission check runs) authenticating with an API key.

Measured:
- bare: a one-route aiohttp app returning a constant (the ceiling);
- latest: GET /resources/{sequence} (the latest value), served from the worker's
  read cache as it is between new values; latest_uncached: the same from a second
  worker with the read cache off (HTTP_READ_CACHE_SECONDS=0): every request reads
  the database, as when the value changes all the time (on the event loop, through
  asyncpg: hub/storage/asyncreads.py);
- listing: GET /resources/{folder}?limit=1000 (a folder of 1,000 sequences);
- downsample: GET /history/{sequence}?points=1000 over 1,000,000 revisions
  (loaded with COPY, rollups rebuilt), one request at a time, p50/p99.

Targets: latest at least 40% of bare's rate, latest_uncached at least 20%; downsample
p50 under 100 ms. Each server's CPU time per request is printed too (`*_cpu_us`): on a
busy machine the rates swing with the neighbours, the CPU a request costs much less.
The last line is `key=value` pairs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `http`: take its folder off the
# import path before anything imports http.client.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.storage import keys, permissions, resources, revisions, rollups, users  # noqa: E402
from hub.storage.db import Database, migrate  # noqa: E402
from hub.storage.models import Level, ResourceType  # noqa: E402
from tests.support import PgCluster, find_pg_bindir, free_port, write_settings_file  # noqa: E402
from tests.support.settings import clean_env  # noqa: E402

START_US = 1_600_000_000_000_000
STEP_US = 10_000_000  # one value every 10 s: 1,000,000 values span ~116 days


# -- child modes ----------------------------------------------------------------------
def bare_server(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"value": 42})

    app = web.Application()
    app.router.add_get("/bare", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def _load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    stop = float("inf")  # set once the connections are warm: a slow warm-up must not eat the run
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        async def worker() -> None:
            nonlocal errors
            while True:  # at least one request each, however slow the machine
                t = time.perf_counter()
                async with session.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t)
                if time.perf_counter() >= stop:
                    break

        for _ in range(min(20, concurrency)):  # warm up connections and caches
            async with session.get(url) as r:
                await r.read()
        t0 = time.perf_counter()
        stop = t0 + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat.sort()
    return {"n": len(lat), "errors": errors, "rps": len(lat) / elapsed,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, headers: dict[str, str], seconds: float, concurrency: int,
         server: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """Run the load generator in its own process (its own core) and return its figures;
    with `server`, also that process's CPU time per request (`cpu_us`)."""
    before = cpu_seconds(server.pid) if server is not None else 0.0
    out = subprocess.run([sys.executable, __file__, "--load", url, json.dumps(headers), str(seconds),
                          str(concurrency)], capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode:
        raise SystemExit(f"load generator failed: {out.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if server is not None:  # (includes the warm-up requests: a few dozen)
        figures["cpu_us"] = 1e6 * (cpu_seconds(server.pid) - before) / max(1, figures["n"])
    return figures


# -- set-up -----------------------------------------------------------------------------
def seed(url: str, n_revisions: int) -> dict[str, str]:
    db = Database(url)
    with db.session() as s:
        users.create_organization(s, "bench")
        u = users.create_user(s, "reader@example.com", "a long bench password", rounds=4)
        resources.create(s, "bench/site", ResourceType.FOLDER.value)
        permissions.grant(s, "bench/site", Level.READ, user_id=u.id)
        _, key = keys.create(s, user_id=u.id, name="bench")
        big = resources.create(s, "bench/site/big", ResourceType.FOLDER.value)
        for i in range(1000):
            resources.create(s, f"bench/site/big/s{i:04d}", ResourceType.SEQUENCE.value,
                             organization_id=big.organization_id)
        temp = resources.create(s, "bench/site/temp", ResourceType.SEQUENCE.value)
        long = resources.create(s, "bench/site/long", ResourceType.SEQUENCE.value)
        temp_id, long_id = temp.id, long.id
    with db.session() as s:
        from hub.storage.revisions import NewRevision

        revisions.append(s, [NewRevision(temp_id, START_US, num=21.5, size=8)])
    t = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY revisions (resource_id, timestamp_us, num, size) FROM STDIN") as copy:
            for i in range(n_revisions):
                copy.write_row((long_id, START_US + i * STEP_US, float(i % 1000), 8))
        raw.commit()
    finally:
        raw.close()
    with db.session() as s:
        rollups.rebuild(s, long_id)
        revisions.touch_latest(s, [long_id])
    print(f"loaded {n_revisions:,} revisions with COPY and rebuilt rollups in {time.perf_counter() - t:.1f} s",
          flush=True)
    with db.engine.connect() as c:
        c.exec_driver_sql("ANALYZE")
        c.commit()
    db.dispose()
    return {"key": key}


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def downsample_latency(url: str, headers: dict[str, str], n: int) -> dict[str, float]:
    import urllib.request

    req = urllib.request.Request(url, headers=headers)
    urllib.request.urlopen(req, timeout=30).read()  # warm
    lat = []
    body: dict[str, Any] = {}
    for _ in range(n):
        t = time.perf_counter()
        body = json.loads(urllib.request.urlopen(req, timeout=30).read())
        lat.append(1000 * (time.perf_counter() - t))
    lat.sort()
    buckets = body["buckets"]
    assert sum(b["count"] for b in buckets) > 0, body
    return {"p50_ms": statistics.median(lat), "p99_ms": lat[int(len(lat) * 0.99)], "buckets": len(buckets),
            "values": sum(b["count"] for b in buckets)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--revisions", type=int, default=1_000_000)
    p.add_argument("--downsample-requests", type=int, default=40)
    args = p.parse_args()
    bindir = find_pg_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (initdb, pg_ctl under /usr/lib/postgresql/*/bin)")
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-http-"))
    cluster = PgCluster(bindir, free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cluster.init()
        cluster.start()
        url = cluster.create_database("bench")
        migrate(url)
        secret = seed(url, args.revisions)
        port, bare_port, port_nc = free_port(), free_port(), free_port()
        settings = write_settings_file(tmp / "config.py", {
            "DATA_DIR": str(tmp / "data"), "SECRET_KEY": "b" * 48, "DATABASE_URL": url, "HTTP_PORT": port,
            "MQTT_PORT": free_port(), "LOG_LEVEL": "WARNING"})
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--http"], env=clean_env(settings)))
        procs.append(subprocess.Popen([sys.executable, __file__, "--bare", str(bare_port)]))
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--http"], env=clean_env(
            settings, HUB_HTTP_PORT=str(port_nc), HUB_HTTP_READ_CACHE_SECONDS="0")))
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_http(base + "/openapi.json", procs[0])
        wait_http(f"http://127.0.0.1:{bare_port}/bare", procs[1])
        wait_http(f"http://127.0.0.1:{port_nc}/api/v1/openapi.json", procs[2])
        auth = {"Authorization": f"Bearer {secret['key']}"}
        c, sec = args.concurrency, args.seconds
        bare = load(f"http://127.0.0.1:{bare_port}/bare", {}, sec, c, procs[1])
        latest = load(base + "/resources/bench/site/temp", auth, sec, c, procs[0])
        uncached = load(f"http://127.0.0.1:{port_nc}/api/v1/resources/bench/site/temp", auth, sec, c, procs[2])
        listing = load(base + "/resources/bench/site/big?limit=1000", auth, sec, min(c, 8))
        down = downsample_latency(base + "/history/bench/site/long?points=1000", auth, args.downsample_requests)
        for name, r in (("bare", bare), ("latest", latest), ("uncached", uncached), ("listing", listing)):
            cpu = f"  server CPU {r['cpu_us']:.0f} us/request" if "cpu_us" in r else ""
            print(f"{name:8} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                  f"({r['n']} requests, {r['errors']} errors)  {r['rps'] / bare['rps']:.2f} of bare{cpu}")
        print(f"downsample {args.revisions:,} revisions to {down['buckets']} buckets: p50 {down['p50_ms']:.1f} ms "
              f"p99 {down['p99_ms']:.1f} ms (target p50 < 100 ms)")
        print(f"latest-value GET is {latest['rps'] / bare['rps']:.0%} of the bare handler (target >= 40%)")
        errors = bare["errors"] + latest["errors"] + uncached["errors"] + listing["errors"]
        print(f"bare_rps={bare['rps']:.0f} latest_rps={latest['rps']:.0f} "
              f"latest_vs_bare={latest['rps'] / bare['rps']:.3f} latest_p50_ms={latest['p50_ms']:.2f} "
              f"latest_p99_ms={latest['p99_ms']:.2f} latest_uncached_rps={uncached['rps']:.0f} "
              f"latest_uncached_vs_bare={uncached['rps'] / bare['rps']:.3f} "
              f"latest_uncached_p50_ms={uncached['p50_ms']:.2f} bare_cpu_us={bare['cpu_us']:.0f} "
              f"latest_cpu_us={latest['cpu_us']:.0f} latest_uncached_cpu_us={uncached['cpu_us']:.0f} "
              f"latest_uncached_cpu_vs_bare={bare['cpu_us'] / uncached['cpu_us']:.3f} listing_rps={listing['rps']:.1f} "
              f"listing_vs_bare={listing['rps'] / bare['rps']:.4f} listing_p50_ms={listing['p50_ms']:.1f} "
              f"downsample_p50_ms={down['p50_ms']:.1f} downsample_p99_ms={down['p99_ms']:.1f} "
              f"revisions={args.revisions} errors={errors}")
        return 0 if errors == 0 else 1
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.destroy()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        bare_server(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--load":
        print(json.dumps(asyncio.run(_load(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]),
                                           int(sys.argv[5])))))
    else:
        sys.exit(main())
