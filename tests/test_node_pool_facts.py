"""Node and pool facts, end to end: a simulated cluster read by the exporter through the real
kubernetes and Alibaba Cloud clients over HTTP, then one `collect_once()` parsed back.

- prefix-mode nodes (Terway v1.17): the Node CR has prefixes and no pod records, so the exporter
  must not claim in_use=0 there;
- degradation as Terway compares it (`L0` is not `l0`);
- min_pool_size above max_pool_size judged by IPAM mode;
- PodNetworking vSwitches and security groups judged like eni-config's.
"""

from __future__ import annotations

import copy
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.config import resolve
from terway_exporter.runtime import Runtime
from terway_simulator.run import start_simulators
from terway_simulator.world import ScenarioError, World, build_world, load_world, read_scenario

Sample = tuple[str, dict[str, str], float]
NORMAL, PREFIX = "cn-hangzhou.192.168.0.10", "cn-hangzhou.192.168.0.20"


async def collect(world: World, tmp_path) -> list[Sample]:
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


def problem_objects(samples: list[Sample], check: str) -> set[str]:
    return {labels["object"] for n, labels, v in samples
            if n == "terway_config_problem" and labels["check"] == check and v == 1}


def scenario(name: str, **kubernetes) -> World:
    """A shipped scenario with some `kubernetes:` keys replaced."""
    data = copy.deepcopy(read_scenario(name))
    data["kubernetes"].update(kubernetes)
    return build_world(data)


# ------------------------------------------------------------------------------------ prefix mode


async def test_a_prefix_mode_node_reports_its_prefixes_and_its_mode_not_in_use_zero(tmp_path):
    s = await collect(load_world("prefix-mode"), tmp_path)
    assert value(s, "terway_node_info", node=PREFIX, ipam_mode="prefix") == [1.0]
    assert value(s, "terway_node_info", node=NORMAL, ipam_mode="crd") == [1.0]
    # The prefix node's Node CR names no pod: no in_use/idle/unavailable series, only what is known.
    assert {labels["state"]: v for n, labels, v in s
            if n == "terway_node_ips" and labels["node"] == PREFIX} == {"unknown": 64.0}
    assert {labels["state"]: v for n, labels, v in s if n == "terway_node_ips" and labels["node"] == NORMAL} == {
        "in_use": 8.0, "idle": 3.0}  # unavailable only while above 0
    # Capacity as Terway publishes it for prefix mode, (ipv4PerAdapter-1) x 16 x (totalAdapters-1), which is not
    # the instance type's (EniQuantity-1) x IPs per ENI: reported for the node; the normal node's is the type's.
    assert value(s, "terway_node_ip_capacity_override", node=PREFIX) == [14 * 16 * 3]
    assert value(s, "terway_node_ip_capacity_override", node=NORMAL) == []
    assert value(s, "terway_node_eni_limit_override") == []
    assert value(s, "terway_node_pool_min_ips", node=PREFIX) == [0.0]
    assert value(s, "terway_node_pool_max_ips", node=PREFIX) == [0.0]
    assert value(s, "terway_node_enis", node=PREFIX) == [2.0]
    assert problems(s) == {}


# ------------------------------------------------------------------------------------ degradation


async def test_degradation_written_L0_is_reported_as_what_terway_does_and_flagged(tmp_path):
    world = scenario("prefix-mode", controlplane={"replicas": 1, "available": 1, "degradation": "L0"})
    s = await collect(world, tmp_path)
    # Terway compares the raw string with "l0": it runs without degradation.
    assert value(s, "terway_controlplane_degradation", level="none") == [1.0]
    assert value(s, "terway_controlplane_degradation", level="l0") == [0.0]
    assert problems(s) == {"degradation_ignored": 1.0}
    assert problem_objects(s, "degradation_ignored") == {"terway-controlplane/ctrl-config.yaml"}


async def test_degradation_l0_as_terway_spells_it_is_degradation(tmp_path):
    world = scenario("prefix-mode", controlplane={"replicas": 1, "available": 1, "degradation": "l0"})
    s = await collect(world, tmp_path)
    assert value(s, "terway_controlplane_degradation", level="l0") == [1.0]
    assert "degradation_ignored" not in problems(s)


def test_a_prefix_mode_node_in_a_scenario_takes_prefixes_not_pod_ips():
    data = copy.deepcopy(read_scenario("prefix-mode"))
    data["nodes"][1]["pods"] = 3
    with pytest.raises(ScenarioError, match="prefix mode"):
        build_world(data)
    data["nodes"][1].update(pods=0, ipv4_prefixes=15)  # one ENI has 14 slots beside its primary address
    with pytest.raises(ScenarioError, match="more prefixes"):
        build_world(data)
    world = load_world("prefix-mode")
    (eni,) = world.nodes[PREFIX].enis
    assert len(eni.ips) == 1 and not eni.ips[0].pod_id and len(eni.ipv4_prefixes) == 4
    assert all(p.endswith("/28") for p in eni.ipv4_prefixes) and len(set(eni.ipv4_prefixes)) == 4


# ------------------------------------------------------------------------------------ PodNetworking


async def test_pod_networking_vswitches_and_security_groups_are_checked(tmp_path):
    data = copy.deepcopy(read_scenario("prefix-mode"))
    data["vswitches"].append({"id": "vsw-bp1othervpc000000001", "zone": "cn-hangzhou-h", "cidr": "10.9.0.0/24",
                              "vpc_id": "vpc-bp1someoneelse000001"})
    data["kubernetes"]["pod_networkings"] = [
        # A typo'd vSwitch and security group: Terway's controller leaves it Fail.
        {"name": "pn-gpu", "vswitches": ["vsw-bp1pfx0h000000000001", "vsw-bp1gone0000000000001"],
         "security_groups": ["sg-bp1gone0000000000001"]},
        # Resolved long ago (Ready), but its vSwitch belongs to another VPC.
        {"name": "pn-web", "vswitches": ["vsw-bp1othervpc000000001"]},
        # A healthy one: nothing to report.
        {"name": "pn-ok", "vswitches": ["vsw-bp1pfx0h000000000001"]},
    ]
    s = await collect(build_world(data), tmp_path)
    assert problem_objects(s, "vswitch_not_found") == {"vsw-bp1gone0000000000001"}
    assert problem_objects(s, "vswitch_other_vpc") == {"vsw-bp1othervpc000000001"}
    assert problem_objects(s, "security_group_not_found") == {"sg-bp1gone0000000000001"}
    assert problems(s) == {"vswitch_not_found": 1.0, "vswitch_other_vpc": 1.0, "security_group_not_found": 1.0}
    # The configured-vSwitch family names them as PodNetworking's, spec included (pn-gpu never resolved).
    pn = {labels["vswitch_id"] for n, labels, v in s
          if n == "terway_vswitch_configured" and labels["source"] == "pod_networking"}
    assert pn == {"vsw-bp1pfx0h000000000001", "vsw-bp1gone0000000000001", "vsw-bp1othervpc000000001"}


# ------------------------------------------------------------------------------------ pool bounds


async def test_min_pool_size_above_max_in_centralised_ipam_is_reported_and_kept_uncapped(tmp_path):
    data = copy.deepcopy(read_scenario("prefix-mode"))
    data["kubernetes"]["eni_config"]["eni_conf"].update(min_pool_size=10, max_pool_size=5)
    data["nodes"][0].update(min_pool_size=10, max_pool_size=5)  # spec.pool as the daemon copies it, uncapped
    s = await collect(build_world(data), tmp_path)
    assert problem_objects(s, "pool_min_above_max") == {"eni-config/eni_conf"}
    assert (value(s, "terway_node_pool_min_ips", node=NORMAL), value(s, "terway_node_pool_max_ips", node=NORMAL)) \
        == ([10.0], [5.0])
    assert value(s, "terway_node_pool_min_ips", node=PREFIX) == [0.0]  # prefix mode has no pool at all
    assert "pool_min_above_capacity" not in problems(s)  # 10 fits the node's 45 IPs


async def test_min_pool_size_above_max_in_legacy_ipam_is_capped_as_terwayd_does(tmp_path):
    data = copy.deepcopy(read_scenario("legacy-ipam"))
    data["kubernetes"]["eni_config"]["eni_conf"].update(min_pool_size=10, max_pool_size=5)
    s = await collect(build_world(data), tmp_path)
    assert problem_objects(s, "pool_min_above_max") == {"eni-config/eni_conf"}
    nodes = {labels["node"] for n, labels, v in s if n == "terway_node_info"}
    assert nodes and all(value(s, "terway_node_pool_min_ips", node=n) == [5.0] for n in nodes)
