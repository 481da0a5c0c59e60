"""Persister counters: written by each persister, summed by `read_stats` (no broker)."""

from __future__ import annotations

import json
import time

from hub.persister.stats import STALE_SECONDS, Stats, read_stats, stats_file


def test_counters_written_throttled_and_summed(settings_factory):
    settings, _ = settings_factory()
    assert read_stats(settings) is None
    a = Stats(stats_file(settings, "p/1"), "p/1", interval=60)
    b = Stats(stats_file(settings, "p2"), "p2", interval=60)
    t0 = time.monotonic() - 0.25
    a.batch(messages=10, stored=8, duplicates=1, rejected=1, ignored=0, oldest_received=t0)
    a.maybe_write(received=12, pending=2, broker_connected=True)
    a.batch(messages=5, stored=5, duplicates=0, rejected=0, ignored=0, oldest_received=t0)
    a.maybe_write(received=15, pending=0, broker_connected=True)  # throttled: not written
    b.batch(messages=3, stored=2, duplicates=0, rejected=0, ignored=1, oldest_received=t0)
    b.database_down("connection refused")
    b.maybe_write(received=3, pending=7, broker_connected=True, force=True)
    got = read_stats(settings)
    assert got is not None
    assert (got["received"], got["messages"], got["stored"], got["rejected"], got["ignored"]) == (15, 13, 10, 1, 1)
    assert got["running"] == 2 and got["pending"] == 9 and got["database_ok"] is False
    assert got["lag_ms"] >= 250 and got["broker_connected"] is True
    assert {p["client_id"] for p in got["persisters"]} == {"p/1", "p2"}
    assert stats_file(settings, "p/1").name == "p_1.json"
    # a persister that stopped writing is not counted as running, its totals still are
    path = stats_file(settings, "p2")
    data = json.loads(path.read_text())
    data["updated_at"] = time.time() - STALE_SECONDS - 1
    path.write_text(json.dumps(data))
    got = read_stats(settings)
    assert got["running"] == 1 and got["database_ok"] is True and got["stored"] == 10
    stats_file(settings, "broken").write_text("{not json")
    assert read_stats(settings)["running"] == 1
