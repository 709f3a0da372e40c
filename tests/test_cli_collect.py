"""`terway-exporter simulate` + `terway-exporter collect`, as a user runs them, through promtool."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.stack import start_process, wait_until

pytestmark = pytest.mark.slow  # `collect` and `simulate` as processes, each importing the clients: process-level runs


def simulate(scenario: str, workdir: Path):
    kubeconfig = workdir / f"{scenario}.kubeconfig"
    proc = start_process(f"simulate-{scenario}", [sys.executable, "-m", "terway_exporter", "simulate",
                                                   "--scenario", scenario, "--kubeconfig-out", str(kubeconfig)],
                         workdir)
    log = wait_until(lambda: "env file:" in proc.log() and proc.log(), 60, f"simulate {scenario} to start")
    cloud = re.search(r"cloud APIs: (\S+)", log).group(1)
    env_file = Path(re.search(r"env file:\s+(\S+)", log).group(1))
    env = dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())
    return proc, cloud, env


def collect(cloud: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "terway_exporter", "collect", "--ecs-endpoint", cloud, "--vpc-endpoint", cloud,
         "--quotas-endpoint", cloud, *extra],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **env})


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("scenario,exit_code", [("healthy", 0), ("ram-forbidden", 1), ("legacy-ipam", 0)])
def test_collect_prints_clean_metrics_and_exit_code(tmp_path, scenario, exit_code):
    proc, cloud, env = simulate(scenario, tmp_path)
    try:
        result = collect(cloud, env)
    finally:
        proc.stop()
    assert result.returncode == exit_code, result.stderr[-2000:]
    check = promtool_check(result.stdout)
    assert check.returncode == 0, check.stderr
    families = set(re.findall(r"^# TYPE (\S+)", result.stdout, re.M))
    for family in ("terway_vswitch_available_ip_addresses", "terway_node_info", "terway_exporter_source_up",
                   "terway_config_problems", "terway_exporter_cloud_api_requests_total"):
        assert family in families
    ipam = "legacy" if scenario == "legacy-ipam" else "crd"
    assert f'ipam_mode="{ipam}"' in result.stdout
    if exit_code:
        assert re.search(r'terway_exporter_source_up\{source="cloud_eni_leaks"\} 0', result.stdout)
        assert "Forbidden.RAM" in result.stdout  # counted by code in terway_exporter_cloud_api_requests_total
    # A secret never reaches stdout or stderr.
    secret = env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    assert secret not in result.stdout and secret not in result.stderr


def test_family_selection_allowlist_denylist_and_no_node_metrics(tmp_path):
    proc, cloud, env = simulate("healthy", tmp_path)
    try:
        runs = [(), ("--metric-allowlist", "terway_vswitch_.*,terway_exporter_source_up"),
                ("--metric-denylist", "terway_exporter_cloud_api_requests_total,terway_node_ips"),
                ("--no-node-metrics",), ("--metric-allowlist", "a", "--metric-denylist", "b"),
                ("--metric-denylist", "terway_(")]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # six processes, independent
            everything, allowed, denied, no_nodes, both, bad = pool.map(lambda args: collect(cloud, env, *args), runs)
    finally:
        proc.stop()

    def families(result: subprocess.CompletedProcess) -> set[str]:
        assert result.returncode == 0, result.stderr[-2000:]
        assert promtool_check(result.stdout).returncode == 0
        return set(re.findall(r"^# TYPE (\S+)", result.stdout, re.M))

    full = families(everything)
    assert families(allowed) == {f for f in full if f.startswith("terway_vswitch_")} | {"terway_exporter_source_up"}
    assert families(denied) == full - {"terway_exporter_cloud_api_requests_total", "terway_node_ips"}
    kept = families(no_nodes)
    assert not any(f.startswith("terway_node_") for f in kept) and "terway_daemon_container_waiting" not in kept
    assert 'node="' not in no_nodes.stdout
    assert {"terway_vswitch_available_ip_addresses", "terway_config_problems"} <= kept
    for result, text in ((both, "exclusive"), (bad, "not a regular expression")):
        assert result.returncode == 2 and text in result.stderr, result.stderr
