"""Each shipped scenario, collected once through the real clients: the metric values that identify
its problem are there, and the healthy scenario shows none of them.

Runs the simulators and one `Runtime.collect_once()` in-process (the same code path as
`terway-exporter collect`), then reads the exposition with prometheus_client's parser.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.config import resolve
from terway_exporter.runtime import Runtime
from terway_simulator.run import start_simulators
from terway_simulator.world import load_world

Sample = tuple[str, dict[str, str], float]


async def collect(scenario: str, tmp_path) -> list[Sample]:
    world = load_world(scenario)
    sims = await start_simulators(world, str(tmp_path / "kubeconfig"))
    saved = dict(os.environ)
    try:
        os.environ.update(sims.exporter_environment(world))
        options = resolve("collect", {"ecs_endpoint": sims.cloud_url, "vpc_endpoint": sims.cloud_url,
                                      "quotas_endpoint": sims.cloud_url}, os.environ)
        runtime = Runtime(options)
        text, _ = await runtime.collect_once()
        runtime.cloud_source.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        await sims.close()
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text.decode()) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> list[float]:
    return [v for n, sample_labels, v in samples
            if n == name and all(sample_labels.get(k) == want for k, want in labels.items())]


def problems(samples: list[Sample]) -> dict[str, float]:
    return {labels["check"]: v for n, labels, v in samples if n == "terway_config_problems" and v > 0}


Check = Callable[[list[Sample]], None]


def vswitch_exhausted(s: list[Sample]) -> None:
    free = {labels["vswitch_id"]: v for n, labels, v in s if n == "terway_vswitch_available_ip_addresses"}
    assert sorted(free.values())[:2] == [0.0, 7.0]


def leaked(s: list[Sample]) -> None:
    assert value(s, "terway_enis_leaked", creator="terway") == [3.0]
    # 3 per-pod ENIs sit detached past the grace period; the fixed-IP pod's (PodENI default/web-0) is not leaked.
    assert value(s, "terway_enis", status="Available", type="Secondary", creator="terway-controller") == [3.0]
    assert value(s, "terway_enis_leaked", creator="terway-controller") == [2.0]
    assert value(s, "terway_enis_held_by_podeni", phase="Unbind") == [1.0]
    assert sum(value(s, "terway_enis_held_by_podeni")) == 1.0


def quota(used: float, total: float) -> Check:
    def check(s: list[Sample]) -> None:
        assert value(s, "terway_eni_quota") == [total]
        assert value(s, "terway_eni_quota_usage", source="quota_center") == [used]
        assert value(s, "terway_eni_quota_usage") == [used]  # one series: the account's usage, not the VPC's
    return check


def api_code(code: str) -> Check:
    def check(s: list[Sample]) -> None:
        assert sum(value(s, "terway_exporter_cloud_api_requests_total", code=code)) > 0
        assert 0.0 in value(s, "terway_exporter_source_up")
    return check


def config_problem(*checks: str) -> Check:
    def check(s: list[Sample]) -> None:
        assert set(checks) <= set(problems(s)), problems(s)
    return check


def crash(code: str) -> Check:
    def check(s: list[Sample]) -> None:
        assert value(s, "terway_daemon_pods", state="crash_looping")[0] >= 1
        assert value(s, "terway_daemon_crash_cause", code=code), "no crash cause " + code
    return check


def waiting_with(code: str) -> Check:
    def check(s: list[Sample]) -> None:
        assert sum(value(s, "terway_pods_waiting_for_network")) > 0
        assert max(value(s, "terway_pods_waiting_for_network_oldest_seconds")) > 300
        assert sum(value(s, "terway_network_errors_total", code=code)) > 0
    return check


def all_of(*checks: Check) -> Check:
    def check(s: list[Sample]) -> None:
        for c in checks:
            c(s)
    return check


def node_eni_limit(s: list[Sample], node: str) -> list[float]:
    """The node's ENI limit as the rules join it: its own override, else its instance type's."""
    own = value(s, "terway_node_eni_limit_override", node=node)
    if own:
        return own
    types = {labels["instance_type"] for n, labels, v in s if n == "terway_node_info" and labels["node"] == node}
    return [v for n, labels, v in s if n == "terway_instance_type_eni_limit" and labels["instance_type"] in types]


def eni_limit(s: list[Sample]) -> None:
    nodes = {labels["node"] for n, labels, v in s if n == "terway_node_enis"}
    full = [n for n in nodes if value(s, "terway_node_enis", node=n) == node_eni_limit(s, n)
            and value(s, "terway_node_ips", node=n, state="idle") == [0.0]]
    assert full, "no node at its ENI limit without idle IPs"
    # The exporter's own judgement (TerwayNodeENILimitReached reads it) names exactly those nodes.
    reached = sorted(labels["node"] for n, labels, v in s if n == "terway_node_eni_limit_reached" and v == 1.0)
    assert reached == sorted(full)


def pool_below_minimum(s: list[Sample]) -> None:
    low = [labels["node"] for n, labels, v in s if n == "terway_node_ips" and labels["state"] == "idle"
           and v < value(s, "terway_node_pool_min_ips", node=labels["node"])[0]]
    assert low == ["cn-hangzhou.192.168.0.10"]
    below = [labels["node"] for n, labels, v in s if n == "terway_node_ip_pool_below_minimum" and v == 1.0]
    assert below == low  # the exporter's judgement (TerwayIPPoolBelowMinimum reads it): it has room to grow


def cni_missing(s: list[Sample]) -> None:
    assert value(s, "terway_node_cni_not_ready") == [1.0, 1.0]


def replicas(name: str) -> Check:
    def check(s: list[Sample]) -> None:
        assert value(s, name, state="available") == [0.0]
    return check


def degraded(s: list[Sample]) -> None:
    assert value(s, "terway_controlplane_degradation", level="l1") == [1.0]
    assert value(s, "terway_controlplane_degradation", level="none") == [0.0]


def controlplane_down(s: list[Sample]) -> None:
    assert value(s, "terway_controlplane_replicas", state="available") == [0.0]
    assert value(s, "terway_controlplane_in_cluster") == [1.0]


def sync_stale(s: list[Sample]) -> None:
    import time
    oldest = min(value(s, "terway_node_last_openapi_sync_timestamp_seconds"))
    assert time.time() - oldest > 24 * 3600
    # The one node 30 h behind is the one overdue node (the other two synced at the scenario's start).
    overdue = [(labels["node"], v) for n, labels, v in s if n == "terway_node_openapi_sync_overdue_timestamp_seconds"]
    assert overdue == [("cn-hangzhou.192.168.16.10", oldest)]


def legacy(s: list[Sample]) -> None:
    modes = {labels["ipam_mode"] for n, labels, v in s if n == "terway_node_info"}
    assert modes == {"legacy"}
    assert sum(value(s, "terway_node_enis")) > 0  # per-node ENIs from the cloud census


def insufficient_ip(s: list[Sample]) -> None:
    assert 1.0 in value(s, "terway_node_insufficient_ip")


def errors_total(s: list[Sample]) -> dict[tuple[str, str], float]:
    return {(labels["code"], labels["reason"]): v for n, labels, v in s if n == "terway_network_errors_total"}


NODE_H, NODE_I = "cn-hangzhou.192.168.0.10", "cn-hangzhou.192.168.16.10"


def terway_v116(s: list[Sample]) -> None:
    # Kubelets without PodReadyToStartContainers: the three pods with sandbox failure events count; the image
    # pulls and the hostNetwork pod on the other node (ContainerCreating too, no such event) do not.
    assert {labels["node"]: v for n, labels, v in s if n == "terway_pods_waiting_for_network"} == {NODE_H: 3.0}
    assert value(s, "terway_pods_waiting_for_network_oldest_seconds", node=NODE_H)[0] > 850
    # Core/v1 events under v1.16's component names and reasons, every one counted.
    assert errors_total(s) == {
        ("InvalidVSwitchId.IpNotEnough", "CniPodCreateError"): 5,  # "no ip left" from the vSwitch cache
        ("Forbidden.RAM", "CniCreateENIError"): 2,
        ("Throttling", "UpdatePodENIFailed"): 4,
        ("InvalidAccessKeyId.NotFound", "DetachENIFailed"): 3,
        ("Throttling", "ENIAttachFailed"): 2,
        ("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 8,  # "no available vSwitch"
        ("other", "FailedCreatePodSandBox"): 18,  # 3 pods x 6
    }


def terway_v117(s: list[Sample]) -> None:
    # PodReadyToStartContainers False on the three network-waiting pods; True on the image pulls; the
    # hostNetwork pod and the pod waiting for its volume have it False but do not wait for Terway.
    assert {labels["node"]: v for n, labels, v in s if n == "terway_pods_waiting_for_network"} == {NODE_H: 3.0}
    # events.k8s.io-written events (empty source, reportingComponent, series) counted like core/v1 ones.
    assert errors_total(s) == {
        ("InvalidVSwitchId.IpNotEnough", "PodCreateFailed"): 5,
        ("Forbidden.RAM", "UpdatePodENIFailed"): 2,
        ("Throttling", "DetachENIFailed"): 3,
        ("InvalidAccessKeyId.Inactive", "CreateENIFailed"): 1,
        ("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 6,
        ("other", "FailedCreatePodSandBox"): 12,  # 3 pods x 4
    }


EXPECTED: dict[str, Check] = {
    "terway-v1.16-stuck": terway_v116,
    "terway-v1.17-stuck": terway_v117,
    "vswitch-exhausted": vswitch_exhausted,
    "leaked-enis": leaked,
    "eni-quota-near-limit": quota(97, 100),
    "stuck-eni-quota": all_of(quota(50, 50), waiting_with("MaxEniCountExceeded")),
    "bad-credentials": api_code("InvalidAccessKeyId.NotFound"),
    "ram-forbidden": api_code("Forbidden.RAM"),
    "missing-vswitch": config_problem("vswitch_not_found"),
    "config-invalid": config_problem("eni_conf_unparsable"),
    "service-cidr-mismatch": config_problem("service_cidr_mismatch"),
    "crashloop-bad-credentials": crash("InvalidAccessKeyId.NotFound"),
    "crashloop-ram-forbidden": crash("Forbidden.RAM"),
    "crashloop-missing-vswitch": crash("InvalidVSwitchId.NotFound"),
    "cni-config-missing": cni_missing,
    "stuck-vswitch-exhausted": all_of(waiting_with("InvalidVSwitchId.IpNotEnough"), insufficient_ip),
    "stuck-eni-limit": all_of(eni_limit, waiting_with("EniPerInstanceLimitExceeded")),
    "pool-below-minimum": pool_below_minimum,
    "coredns-down": replicas("terway_cluster_dns_replicas"),
    "controlplane-down": controlplane_down,
    "controlplane-degraded": degraded,
    "openapi-sync-stale": sync_stale,
    "legacy-ipam": legacy,
}


# A scenario's simulators and sources each: the fast loop keeps a few, CI runs them all.
FAST_SCENARIOS = {"healthy", "demo", "vswitch-exhausted", "ram-forbidden"}


@pytest.mark.parametrize("scenario", [name if name in FAST_SCENARIOS else pytest.param(name, marks=pytest.mark.slow)
                                      for name in sorted(EXPECTED)])
async def test_scenario_shows_its_problem(scenario, tmp_path):
    samples = await collect(scenario, tmp_path)
    EXPECTED[scenario](samples)


async def test_healthy_shows_no_problem(tmp_path):
    s = await collect("healthy", tmp_path)
    assert problems(s) == {}
    assert set(value(s, "terway_exporter_source_up")) == {1.0}
    assert min(v for n, labels, v in s if n == "terway_vswitch_available_ip_addresses") > 1000
    assert value(s, "terway_daemon_pods", state="crash_looping") == [0.0]
    assert sum(value(s, "terway_pods_waiting_for_network")) == 0
    assert value(s, "terway_node_insufficient_ip") == [] and value(s, "terway_node_cni_not_ready") == []
    assert value(s, "terway_node_eni_limit_reached") == [] and value(s, "terway_node_ip_pool_below_minimum") == []
    assert value(s, "terway_node_eni_limit_override") == [] and value(s, "terway_node_ip_capacity_override") == []
    assert value(s, "terway_node_ips", state="unavailable") == []
    assert sum(value(s, "terway_enis_leaked")) == 0 and sum(value(s, "terway_enis_held_by_podeni")) == 0
    assert {labels["creator"] for n, labels, v in s if n == "terway_enis_leaked"} == {"terway", "terway-controller"}
    assert [v for n, labels, v in s if n == "terway_network_errors_total"] in ([], [0.0] * 0)
    assert value(s, "terway_controlplane_degradation", level="none") == [1.0]
