"""The benchmark's quick run (50 nodes, short phases), so it cannot rot.

It runs `python bench/run.py --quick` as a user would: real simulator, exporter and baseline
processes. Timing thresholds are the benchmark's business, not a unit test's: this checks
the table is complete, the calls per poll stay within budget, and every figure was measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = (
    "cloud calls per regular poll",
    "cloud calls per census (DescribeNetworkInterfaces)",
    "cloud calls, first sync (poll + census)",
    "time to /readyz (s)",
    "/metrics p50 (ms)",
    "/metrics p99 (ms)",
    "scrapes answered",
    "bytes per scrape, gzip (KB)",
    "bytes per scrape, plain (KB)",
    "CPU s per regular poll",
    "CPU s per minute of watch traffic",
    "CPU % of a core during churn",
    "Prometheus: samples per scrape",
    "Prometheus: bytes per scrape on the wire (KB)",
    "Prometheus: scrape_duration_seconds p99 (ms)",
    "Prometheus: slowest rule group, median (ms)",
    "RSS after first sync (MB)",
    "RSS serving Prometheus (MB)",
    "peak RSS (MB)",
    "simulator CPU % during churn",
)
NUMBER = r"-?\d+(?:\.\d+)?"


@pytest.mark.slow
@pytest.mark.e2e  # a real Prometheus scrapes the exporter
def test_quick_benchmark_prints_every_row(tmp_path):
    figures_file = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--json", str(figures_file)],
                         capture_output=True, text=True, timeout=400, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    header = next(line for line in lines if line.startswith("figure"))
    assert header.split() == ["figure", "exp@50", "base@50", "base/exp"]
    for row in ROWS:
        line = next((line for line in lines if line.startswith(row)), None)
        assert line is not None, f"row {row!r} missing:\n{run.stdout}"
        exporter, baseline, _ratio = line[len(row):].split()
        assert re.fullmatch(NUMBER, exporter), line  # the exporter's figure is present
        assert re.fullmatch(NUMBER, baseline), line
    assert "targets:" in run.stdout

    figures = json.loads(figures_file.read_text())["50"]
    for kind in ("exporter", "baseline"):
        measured = figures[kind]
        assert measured["error"] == ""
        per_poll = sum(measured["poll_calls"].values())
        assert 1 <= per_poll <= 10, measured["poll_calls"]
        assert measured["census_calls"] >= 1
        assert measured["scrapes"] > 0 and measured["scrape_errors"] == 0
        assert measured["peak_rss_mb"] >= measured["rss_synced_mb"] > 10
    # A real Prometheus scraped the exporter in OpenMetrics (its first choice), gzip-compressed.
    assert figures["exporter"]["prom_content_type"].startswith("application/openmetrics-text")
    assert figures["exporter"]["prom_samples"] > 100
    assert 0 < figures["exporter"]["prom_wire_bytes"] < figures["exporter"]["body_bytes"]
    # Both read the same cluster and the same cloud: the same calls, about the same exposition.
    assert figures["exporter"]["poll_calls"] == figures["baseline"]["poll_calls"]
    assert (abs(figures["exporter"]["body_bytes"] - figures["baseline"]["body_bytes"])
            < 0.1 * figures["exporter"]["body_bytes"])
