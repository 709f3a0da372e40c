"""bench/detection.py's quick run, so the harness cannot rot.

It runs `python bench/detection.py --quick` as a user would: real simulators, exporters, Prometheus,
Alertmanager and the webhook, time compressed 10x (every `for` shortened in proportion: the near misses'
transients last seconds), on two faults (a vSwitch drained to 0, pods that cannot get an IP) and every near
miss (the everyday operations: a node-pool scale-out, a rolling update, an image pull, a DaemonSet upgrade, an
exporter restart, a cloud API blip, a vSwitch at 11% free, the ENI quota at 79%). The figures of a quick run
are not latencies and no timing is asserted here (the full run's figures are in docs/alerts-latency.md):
this checks that every alert the faults must raise reached the webhook and resolved after the fault was
removed, that no near miss sent a single notification, and that both tables were printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.e2e  # a real Prometheus and Alertmanager
def test_quick_detection_run_fires_resolves_and_stays_quiet(tmp_path):
    results_file = tmp_path / "results.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "detection.py"), "--quick", "--json", str(results_file),
                          "--workdir", str(tmp_path / "work")],
                         capture_output=True, text=True, timeout=900, cwd=REPO)  # a bound, not a timing check
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    results = json.loads(results_file.read_text())
    rows = {(row["lane"], row["alert"]): row for row in results["alerts"]}
    assert set(rows) == {("vswitch-exhausted", "TerwayVSwitchIPsExhausted"),
                         ("vswitch-exhausted", "TerwayZoneWithoutIPs"),
                         ("pods-cannot-get-ip", "TerwayPodsCannotGetIP")}
    for key, row in rows.items():
        assert row["fire_seconds"] is not None, f"{key} never reached the webhook"
        assert row["resolve_seconds"] is not None, f"{key} never resolved"
    noisy = {m["lane"]: m["alerts"] for m in results["near_misses"] if m["notifications"]}
    assert noisy == {}
    assert len(results["near_misses"]) == 8
    assert "| alert | severity | fault | time to fire | time to resolve |" in run.stdout
    assert "| scenario | notifications (must be 0) |" in run.stdout
