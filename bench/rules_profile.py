#!/usr/bin/env python3
"""What the shipped rules cost a real Prometheus at scale, and how two versions of them compare.

Starts the scale scenario's simulator and the exporter (as bench/run.py does), then one Prometheus
(Debian's, default scrape headers, 10 s interval) that loads both versions of the rules: the shipped
file and an older one taken from git (`--baseline REV`). Every group of each version is renamed
with its version, so both are evaluated on the very same data in the same process, and the figures
are ratios measured in one run. Each rule's and each group's evaluation time is read from
`GET /api/v1/rules` (`evaluationTime`) once per evaluation, and the median of `--samples` readings
is reported.

    python bench/rules_profile.py --nodes 5000 --baseline HEAD~1 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from loopback_ports import free_port
from probes import Process, Prometheus, http, wait_until_ready
from run import RULES, Options, exporter_argv, start_simulator

REPO = Path(__file__).resolve().parents[1]


def rules_at(rev: str) -> str:
    """The shipped rules file as it was at `rev`."""
    path = RULES.relative_to(REPO).as_posix()
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout


def renamed(text: str, version: str) -> str:
    """The rules with every group renamed `<name> (<version>)`, so two versions load side by side."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        group["name"] = f"{group['name']} ({version})"
    return yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--baseline", default="HEAD", help="git revision of the rules to compare with")
    parser.add_argument("--samples", type=int, default=9, help="readings, one per evaluation (10 s)")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="terway-rules-profile-"))
    old, new = root / "old.rules.yaml", root / "new.rules.yaml"
    old.write_text(renamed(rules_at(args.baseline), "old"))
    new.write_text(renamed(RULES.read_text(), "new"))
    sim, env, cloud_url, _ = start_simulator(args.nodes, root)
    exporter = prometheus = None
    try:
        port = free_port()
        argv = exporter_argv("exporter", port, cloud_url, Options(nodes=[args.nodes]))
        exporter = Process.start("exporter", argv, env, root)
        ready = wait_until_ready(f"http://127.0.0.1:{port}", exporter, timeout=900)
        # What the first sync spent its time on: each source's last poll or list (/readyz waits for all).
        _, body = http(f"http://127.0.0.1:{port}/metrics", timeout=60.0)
        print(f"/readyz after {ready:.1f} s; source durations:", file=sys.stderr)
        for line in body.decode().splitlines():
            if line.startswith("terway_exporter_source_duration_seconds{"):
                print("  " + line, file=sys.stderr)
        prometheus = Prometheus.start(root / "prometheus", f"127.0.0.1:{port}", [old, new], free_port())
        prometheus.wait_for_scrapes(3, timeout=300)
        medians = prometheus.median_rule_times(10.0 * (args.samples - 1) + 1.0)
    finally:
        for process in (prometheus.process if prometheus else None, exporter, sim):
            if process is not None:
                process.stop()

    keys = sorted(medians)
    print(f"rule evaluation at {args.nodes} nodes, median of {args.samples} evaluations (ms); "
          f"old = rules at {args.baseline}, new = the working tree's")
    print(f"{'group or rule':70s} {'old':>8s} {'new':>8s} {'new/old':>8s}")
    for key in keys:
        if "(old)" not in key:
            continue
        twin = key.replace("(old)", "(new)")
        before, after = medians[key] * 1000, medians.get(twin, 0.0) * 1000
        if before < 1.0 and after < 1.0 and " / " in key:
            continue  # rules that cost nothing either way
        ratio = f"{after / before:.2f}" if before else "-"
        print(f"{key.replace(' (old)', ''):70s} {before:8.1f} {after:8.1f} {ratio:>8s}")
    if args.json:
        args.json.write_text(json.dumps({"nodes": args.nodes, "baseline": args.baseline, "samples": args.samples,
                                         "medians_seconds": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
