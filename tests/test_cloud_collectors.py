"""Table tests of the vSwitch and ENI collectors: a state in, the exposition out."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from support.cloud import render as render_with

from terway_exporter.collectors import eni, vswitch
from terway_exporter.collectors.base import ClusterState
from terway_exporter.sources.cloud.snapshot import (
    CloudSnapshot, EniCensus, InstanceTypeLimits, SecurityGroup, VSwitch,
)
from terway_exporter.sources.kube.snapshot import KubeSnapshot, TerwayNodeCR

ALL = (*vswitch.COLLECTORS, *eni.COLLECTORS)


def render(state: ClusterState) -> str:
    return render_with(state, ALL)


def samples(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


FULL = ClusterState(
    now=1_700_000_000.0,
    cloud=CloudSnapshot(
        region_id="cn-hangzhou", vpc_id="vpc-1",
        vswitches={"vsw-a": VSwitch("vsw-a", "vpc-1", "cn-hangzhou-h", "192.168.0.0/24", "terway-h", 200)},
        security_groups={"sg-1": SecurityGroup("sg-1", "vpc-1", "pods")},
        missing_security_groups=frozenset({"sg-gone"}),
        eni_quota=1000, eni_quota_usage=42,
        leaked_enis={"terway": 3, "terway-controller": 0},
        census=EniCensus(counts={("InUse", "Secondary", "terway"): 5, ("Available", "Secondary", "other"): 1},
                         by_instance={}, taken_at=1.0),
        instance_types={"ecs.g7.xlarge": InstanceTypeLimits("ecs.g7.xlarge", 4, 15)},
    ),
    kube=KubeSnapshot(
        eni_config={"eni_conf": json.dumps({"vswitches": {"cn-hangzhou-h": ["vsw-a"], "cn-hangzhou-i": ["vsw-b"]}})},
        dynamic_configs={"big-nodes": {"eni_conf": json.dumps({"vswitches": {"cn-hangzhou-h": ["vsw-c"]}})}},
        terway_nodes={"n1": TerwayNodeCR(name="n1", vswitch_ids=("vsw-a",))},
        pod_networking_vswitches=frozenset({"vsw-d"}),
    ),
)


def test_every_family_and_sample_of_a_full_state():
    assert samples(render(FULL)) == {
        'terway_vswitch_available_ip_addresses{vswitch_id="vsw-a"} 200.0',
        'terway_vswitch_ip_addresses{vswitch_id="vsw-a"} 252.0',
        'terway_vswitch_info{cidr_block="192.168.0.0/24",name="terway-h",vpc_id="vpc-1",'
        'vswitch_id="vsw-a",zone_id="cn-hangzhou-h"} 1.0',
        'terway_vswitch_configured{source="eni_config",vswitch_id="vsw-a"} 1.0',
        'terway_vswitch_configured{source="eni_config",vswitch_id="vsw-b"} 1.0',
        'terway_vswitch_configured{source="node_config",vswitch_id="vsw-c"} 1.0',
        'terway_vswitch_configured{source="node_cr",vswitch_id="vsw-a"} 1.0',
        'terway_vswitch_configured{source="pod_networking",vswitch_id="vsw-d"} 1.0',
        "terway_eni_quota 1000.0",
        "terway_eni_quota_usage 42.0",
        'terway_enis{creator="terway",status="InUse",type="Secondary"} 5.0',
        'terway_enis{creator="other",status="Available",type="Secondary"} 1.0',
        'terway_enis_leaked{creator="terway"} 3.0',
        'terway_enis_leaked{creator="terway-controller"} 0.0',
        'terway_instance_type_eni_limit{instance_type="ecs.g7.xlarge"} 4.0',
        'terway_instance_type_ips_per_eni{instance_type="ecs.g7.xlarge"} 15.0',
        'terway_security_group_exists{security_group_id="sg-1"} 1.0',
        'terway_security_group_exists{security_group_id="sg-gone"} 0.0',
    }


@pytest.mark.parametrize(("cloud", "absent", "present"), [
    # Never read: the families fed by an optional value are absent, not zero.
    (CloudSnapshot(), {"terway_eni_quota", "terway_eni_quota_usage", "terway_enis", "terway_enis_leaked"},
     {"terway_vswitch_info", "terway_security_group_exists", "terway_instance_type_eni_limit"}),
    # Quota known but no usage (Quota Center failed over, no census yet).
    (CloudSnapshot(eni_quota=5), {"terway_eni_quota_usage"}, {"terway_eni_quota"}),
    # A census with no ENIs still exposes the family; no leaks still says 0 per creator.
    (CloudSnapshot(census=EniCensus({}, {}, 0.0), leaked_enis={}), set(), {"terway_enis", "terway_enis_leaked"}),
])
def test_optional_values_decide_which_families_exist(cloud, absent, present):
    text = render(ClusterState(now=0.0, cloud=cloud))
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert not absent & types
    assert present <= types


def test_leaked_is_zero_per_creator_when_none_leak():
    text = render(ClusterState(now=0.0, cloud=CloudSnapshot(leaked_enis={})))
    assert {'terway_enis_leaked{creator="terway"} 0.0', 'terway_enis_leaked{creator="terway-controller"} 0.0'} \
        <= samples(text)


@pytest.mark.parametrize(("eni_conf", "expected"), [
    ("{not json", set()),  # unparsable: the config checks report it, nothing is configured
    (json.dumps({"vswitches": {"z": "vsw-not-a-list"}}), set()),
    (json.dumps({"vswitches": {"z": ["vsw-1", "vsw-2"]}}), {("vsw-1", "eni_config"), ("vsw-2", "eni_config")}),
])
def test_configured_vswitches_from_eni_conf(eni_conf, expected):
    assert vswitch.configured_vswitches(KubeSnapshot(eni_config={"eni_conf": eni_conf})) == expected


def test_help_says_which_values_are_cached():
    text = render(FULL)
    helps = {line.split()[2]: line for line in text.splitlines() if line.startswith("# HELP")}
    for name in ("terway_enis", "terway_instance_type_eni_limit", "terway_instance_type_ips_per_eni"):
        assert "cache" in helps[name]


def test_promtool_accepts_the_exposition():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is part of the toolchain"
    run = subprocess.run([promtool, "check", "metrics"], input=render(FULL).encode(), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
