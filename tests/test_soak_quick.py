"""The chaos soak's CI-sized smoke (bench/soak.py --smoke), so it cannot rot.

It runs the soak as a user would: real simulator and exporter processes, on loopback, with four
faults in about 45 s after the warm-up (cloud 5xx, an API server restart, a credential rotation,
malformed objects in the store), and checks what the full soak checks: the exporter never crashed,
no credential in its log, /metrics or / page, no failed steady scrape, and every fault seen and
recovered from within its expectation. The full figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_smoke_soak_detects_and_recovers_from_every_fault(tmp_path):
    report_file = tmp_path / "soak.json"
    # 250 nodes: half the full soak's cluster, for time; the scale scenario's churn as in the full soak.
    soak = subprocess.Popen([sys.executable, str(REPO / "bench" / "soak.py"), "--smoke", "--nodes", "250",
                             "--json", str(report_file), "--keep", str(tmp_path / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        stdout, stderr = soak.communicate(timeout=300)  # about 80 s on an idle 2-core machine
    except subprocess.TimeoutExpired:
        soak.terminate()  # SIGTERM: the soak stops its simulator and exporter (SIGKILL would orphan them)
        stdout, stderr = soak.communicate(timeout=60)
        pytest.fail(f"the smoke soak did not finish within 300 s:\n{stdout}\n{stderr[-3000:]}")
    assert report_file.exists(), stdout + stderr
    report = json.loads(report_file.read_text())
    detail = stdout + "\n" + stderr[-3000:]

    assert report["crashes"] == 0, report["crash_detail"]
    assert report["secrets_found"] == 0, report["secret_detail"]
    assert report["scanned"]["/metrics bodies"] > 10 and report["scanned"]["/ pages"] > 10
    assert report["failed_scrapes"] == 0, report["failed_scrape_detail"]
    assert report["sts_credentials_issued"] >= 2, "the exporter renewed its STS credentials"

    faults = {f["fault"]: f for f in report["faults"]}
    assert set(faults) == {"5xx#1", "restart#1", "rotation#1", "malformed#1"}, detail
    # Must take their sources down, then back: the cloud's with a success after the fault, the
    # API server's with their watches resumed.
    assert faults["5xx#1"]["detect"] is not None and faults["5xx#1"]["fresh"] is not None, detail
    assert faults["restart#1"]["detect"] is not None and faults["restart#1"]["up"] is not None, detail
    for name in ("rotation#1", "malformed#1"):  # must be ridden out, and seen
        assert faults[name]["down_sources"] == [], detail
        assert faults[name]["evidence_seconds"] is not None, detail
    assert "4/4 objects skipped" in faults["malformed#1"]["evidence"], detail
    for fault in report["faults"]:
        assert fault["ok"], f"{fault['fault']}: {fault['verdict']}\n{detail}"
    assert soak.returncode == 0, detail
