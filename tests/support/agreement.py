"""`terway-exporter check` run on the simulators of a running demo, and its findings set beside the alerts
Prometheus fires for the same demo: the helpers of the agreement test in test_e2e_alerts.py.

`check` runs through the CLI's entry point (`terway_exporter.cli.main`) against the simulated cloud
and API server the demo process serves, so both read the same world at the same
moment of its clock (waiting pods' ages, time steps). Only the credentials, region and kubeconfig
come from the scenario and the demo's log.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cli import run_cli
from support.stack import MonitoringStack, Process

# The `signal` labels the findings share with the rules: EXPORTER_CALLS marks the branches that judge the API
# calls of the process that makes them; TERWAY_EVENTS the branches that count Terway's Warning events over the
# last 10 minutes (ALERT_WINDOW_SECONDS in sources/kube/events.py). Once a demo has run about that long, events
# that no longer repeat leave both windows, `check`'s (their last time plus 10 minutes) and Prometheus's (their
# first scrape plus 10 minutes), a scrape or more apart: past that age the two are not compared on this signal.
from terway_exporter.findings.credentials import EXPORTER_CALLS as OWN_CALLS
from terway_exporter.findings.credentials import TERWAY_EVENTS
from terway_simulator.cloud_faults import parse_faults
from terway_simulator.world import load_world


@dataclass(frozen=True)
class DemoEndpoints:
    cloud_url: str
    kubeconfig: str


def demo_endpoints(proc: Process) -> DemoEndpoints:
    """The simulators a `terway-exporter demo` process prints it serves."""
    log = proc.log()
    cloud = re.search(r"cloud APIs: (\S+)", log)
    kube = re.search(r"API server: \S+ \(kubeconfig (\S+)\)", log)
    if cloud is None or kube is None:
        raise AssertionError(f"{proc.name} did not print its simulators' endpoints:\n{log[-2000:]}")
    return DemoEndpoints(cloud.group(1), kube.group(1))


def run_check(scenario: str, endpoints: DemoEndpoints) -> tuple[int, dict[str, Any]]:
    """`terway-exporter check --output json` on a demo's simulators, through the CLI's own entry point in this
    process (forty check processes, each importing the clients, cost more CPU than the comparisons they serve;
    test_check_capacity.py runs check as a process for what only a process shows): (exit code, document).
    Not thread-safe: the scenario's credentials go into the environment for the run."""
    world = load_world(scenario)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": world.access_key_id,
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": world.access_key_secret,
           "ALIBABA_CLOUD_REGION_ID": world.region_id}
    code, out = run_cli(["check", "--output", "json", "--kubeconfig", endpoints.kubeconfig,
                         "--ecs-endpoint", endpoints.cloud_url, "--vpc-endpoint", endpoints.cloud_url,
                         "--quotas-endpoint", endpoints.cloud_url], env)
    if not out:
        raise AssertionError(f"check on {scenario} printed nothing (exit {code})")
    return code, json.loads(out)


def process_age(proc: Process) -> float:
    """Seconds since the process started (from /proc: its start time in clock ticks since boot)."""
    fields = Path(f"/proc/{proc.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5), counted after the name
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def one_shot_faults(scenario: str) -> bool:
    """Whether the scenario injects a cloud fault into only the first calls (`first_calls`): only the
    process that calls first sees it, so the demo's own-call signals and `check`'s cannot agree."""
    world = load_world(scenario)
    return any(rule.first_calls for rule in parse_faults(world.cloud).values())


def findings_set(document: dict[str, Any], drop_own_calls: bool, drop_events: bool = False) -> set[str]:
    names = set()
    for finding in document["findings"]:
        evidence = [e for e in finding["evidence"] if not (drop_own_calls and e["label"] == OWN_CALLS)
                    and not (drop_events and e["label"] == TERWAY_EVENTS)]
        own_alert = finding["alert"] == "TerwayExporterCredentialsInvalid"  # own calls only, no signal label
        if evidence and not (drop_own_calls and own_alert):
            names.add(finding["alert"])
    return names


def firing_set(stack: MonitoringStack, scenario: str, drop_own_calls: bool, drop_events: bool = False) -> set[str]:
    """Alert names Prometheus has firing for the scenario now (state firing, `for` elapsed)."""
    names = set()
    for alert in stack.api("alerts")["alerts"]:
        labels = alert["labels"]
        if alert["state"] != "firing" or labels.get("scenario") != scenario:
            continue
        own = labels.get("signal") == OWN_CALLS or labels["alertname"] == "TerwayExporterCredentialsInvalid"
        if (drop_own_calls and own) or (drop_events and labels.get("signal") == TERWAY_EVENTS):
            continue
        names.add(labels["alertname"])
    return names
