"""Every benchmark still runs, at a tiny size, and ends with the figures its issue asks
for (a `key=value` last line). The figures themselves are not judged here: a benchmark
is for reading, not a timed test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.settings import clean_env

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "storage.py": (["--rows", "3000", "--append-scale", "0.05", "--compact-values", "3000"],
                   ["sqlite_batch1000_per_s", "pg_batch1000_per_s", "pg_latest_ms", "pg_downsample_ms",
                    "pg_bytes_per_value", "pg_bytes_per_value_compacted", "compact_per_s", "compacted_range_10k_ms",
                    "compacted_downsample_ms"]),
    "broker_auth.py": (["--messages", "30000", "--connects", "300", "--rounds", "1"],
                       ["plugin_vs_anonymous_cpu_per_msg", "plugin_vs_aclfile_cpu_per_msg",
                        "plugin_vs_pwfile_cpu_per_connect"]),
    "ingest.py": (["--messages", "600", "--values", "20"], ["raw_per_s", "pg_per_s", "sqlite_per_s", "pg_ratio"]),
    "http.py": (["--seconds", "0.3", "--concurrency", "4", "--revisions", "3000", "--downsample-requests", "3"],
                ["bare_rps", "latest_rps", "latest_vs_bare", "latest_uncached_vs_bare", "latest_uncached_cpu_vs_bare",
                 "listing_rps", "downsample_p50_ms"]),
    "transfer.py": (["--rows", "2000", "--bulk", "5"], ["plain_export_per_s", "plain_import_per_s"]),
    "notify.py": (["--messages", "2000", "--emails", "10", "--pins", "5", "--lone", "3"],
                  ["filter_us", "emails_per_s"]),
    "console_latency.py": (["--updates", "10"], ["page_p50_ms"]),
    "rhizo_import.py": (["--revisions", "2000"], ["rhizo_import_per_s", "revisions", "pg_rhizo_import_per_s",
                                                 "sqlite_source_import_per_s",
                                                 "rhizo_vs_transfer_import"]),
    "chaos.py": (["--seconds", "15", "--controllers", "3", "--restarts", "5", "--pg-down", "2",
                  "--kill-seconds", "4", "--rhizo-controllers", "1"],
                 ["acked", "stored", "lost", "duplicated", "restarts", "max_gap_s", "broker_kill_lost",
                  "qos0_sent", "qos0_stored", "qos0_lost", "qos0_lost_during_broker_restarts",
                  "qos0_lost_outside_broker_restarts"]),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_bench_runs_and_prints_its_figures(script: str) -> None:
    args, keys = CASES[script]
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], env=clean_env(),
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    last = dict(pair.split("=", 1) for pair in r.stdout.strip().splitlines()[-1].split())
    missing = [k for k in keys if k not in last]
    assert not missing, (missing, r.stdout[-1000:])
    for k in keys:
        float(last[k])  # a number
    if script == "chaos.py":  # QoS 0 values go only while Mosquitto restarts
        assert int(last["qos0_sent"]) > 0 and last["qos0_lost_outside_broker_restarts"] == "0", r.stdout[-3000:]
