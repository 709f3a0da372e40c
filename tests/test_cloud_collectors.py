"""Table tests of the vSwitch and ENI collectors: a state in, the exposition out."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from support.cloud import render as render_with
from terway_exporter.collectors import eni, vswitch
from terway_exporter.model.cloud import (
    CloudSnapshot,
    Eni,
    EniCensus,
    InstanceTypeLimits,
    SecurityGroup,
    VSwitch,
)
from terway_exporter.model.kube import KubeSnapshot, PodEni, TerwayNodeCR
from terway_exporter.model.state import ClusterState, ExporterSettings
from terway_exporter.terway.enis import classify_detached

ALL = (*vswitch.COLLECTORS, *eni.COLLECTORS)


def render(state: ClusterState) -> str:
    return render_with(state, ALL)


def samples(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


NOW = 1_700_000_000.0


def detached(eni_id: str, creator: str = "terway", age: float | None = 7200.0, status: str = "Available") -> Eni:
    return Eni(eni_id, status, "Secondary", creator, creation_time=None if age is None else NOW - age)


FULL = ClusterState(
    now=NOW,
    cloud=CloudSnapshot(
        region_id="cn-hangzhou", vpc_id="vpc-1",
        vswitches={"vsw-a": VSwitch("vsw-a", "vpc-1", "cn-hangzhou-h", "192.168.0.0/24", "terway-h", 200)},
        security_groups={"sg-1": SecurityGroup("sg-1", "vpc-1", "pods")},
        missing_security_groups=frozenset({"sg-gone"}),
        eni_quota=1000, eni_quota_usage=42, eni_quota_usage_source="quota_center",
        detached_enis=(detached("eni-p1"), detached("eni-p2"), detached("eni-p3"),
                       detached("eni-fixed", "terway-controller")),
        census=EniCensus(counts={("InUse", "Secondary", "terway"): 5, ("Available", "Secondary", "other"): 1},
                         by_instance={}, taken_at=1.0),
        instance_types={"ecs.g7.xlarge": InstanceTypeLimits("ecs.g7.xlarge", 4, 15)},
    ),
    kube=KubeSnapshot(
        eni_config={"eni_conf": json.dumps({"vswitches": {"cn-hangzhou-h": ["vsw-a"], "cn-hangzhou-i": ["vsw-b"]}})},
        dynamic_configs={"big-nodes": {"eni_conf": json.dumps({"vswitches": {"cn-hangzhou-h": ["vsw-c"]}})}},
        terway_nodes={"n1": TerwayNodeCR(name="n1", vswitch_ids=("vsw-a",))},
        pod_networking_vswitches=frozenset({"vsw-d"}),
        pod_enis={"default/web-0": PodEni("default", "web-0", ("eni-fixed",), "Unbind", True, "TTL", "24h")},
    ),
)
HELD_ZERO = {f'terway_enis_held_by_podeni{{phase="{p}"}} 0.0' for p in ("Initial", "Bind", "Binding", "Detaching",
                                                                        "Deleting")}


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
        'terway_eni_quota_usage{source="quota_center"} 42.0',
        'terway_enis{creator="terway",status="InUse",type="Secondary"} 5.0',
        'terway_enis{creator="other",status="Available",type="Secondary"} 1.0',
        'terway_enis_leaked{creator="terway"} 3.0',
        'terway_enis_leaked{creator="terway-controller"} 0.0',
        'terway_enis_held_by_podeni{phase="Unbind"} 1.0',
        *HELD_ZERO,
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
    # A census with no ENIs still exposes the family; no detached ENI still says 0 leaked. Without
    # the PodENIs (no cluster here) nothing can be said to be held by one.
    (CloudSnapshot(census=EniCensus({}, {}, 0.0), detached_enis=()), {"terway_enis_held_by_podeni"},
     {"terway_enis", "terway_enis_leaked"}),
    # Usage known but not where from: not exposed rather than passed off as the account's.
    (CloudSnapshot(eni_quota=5, eni_quota_usage=3), {"terway_eni_quota_usage"}, {"terway_eni_quota"}),
])
def test_optional_values_decide_which_families_exist(cloud, absent, present):
    text = render(ClusterState(now=0.0, cloud=cloud))
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert not absent & types
    assert present <= types


def test_leaked_is_zero_per_creator_when_none_leak():
    text = render(ClusterState(now=0.0, cloud=CloudSnapshot(detached_enis=()), kube=KubeSnapshot(pod_enis={})))
    assert {'terway_enis_leaked{creator="terway"} 0.0', 'terway_enis_leaked{creator="terway-controller"} 0.0'} \
        <= samples(text)
    assert HELD_ZERO <= samples(text) and 'terway_enis_held_by_podeni{phase="Unbind"} 0.0' in samples(text)


GRACE = 900.0
PODENIS = {
    # A StatefulSet's fixed-IP pod, deleted: Terway detached its ENI and keeps it until releaseAfter.
    "default/web-0": PodEni("default", "web-0", ("eni-fixed",), "Unbind", True, "TTL", "72h0m0s"),
    # Referenced in status.eniInfos only (the projection lists those IDs too).
    "default/web-1": PodEni("default", "web-1", ("eni-status-only",), "Detaching", True, "Never"),
    # A phase this exporter does not know yet.
    "default/job-0": PodEni("default", "job-0", ("eni-odd-phase",), "Migrating"),
    "default/young": PodEni("default", "young", ("eni-young",), "Unbind", True, "TTL", "5m"),
    "default/pool": PodEni("default", "pool", ("eni-pool-referenced",), "Bind"),
}
CASES = [
    (detached("eni-fixed", "terway-controller", 2 * 86400), "held", "Unbind"),
    (detached("eni-status-only", "terway-controller"), "held", "Detaching"),
    (detached("eni-odd-phase", "terway-controller"), "held", "other"),
    (detached("eni-pool-referenced", "terway"), "held", "Bind"),  # referenced: never leaked, whatever its tag
    (detached("eni-young", "terway-controller", 60), None, None),  # within the grace period
    (detached("eni-lost", "terway-controller"), "leaked", "terway-controller"),
    (detached("eni-pool", "terway"), "leaked", "terway"),
    (detached("eni-at-grace", "terway", GRACE), None, None),  # exactly the grace period: not yet
    (detached("eni-other", "other"), None, None),  # another service's ENI
    (detached("eni-undated", "terway", None), None, None),  # no CreationTime: cannot tell its age
    (detached("eni-attached", "terway", status="InUse"), None, None),
]


@pytest.mark.parametrize(("eni", "kind", "key"), CASES, ids=[c[0].eni_id for c in CASES])
def test_each_detached_eni_is_leaked_held_or_neither(eni, kind, key):
    split = classify_detached([eni], PODENIS, NOW, GRACE)
    leaked = {k: v for k, v in split.leaked.items() if v}
    held = {k: v for k, v in split.held.items() if v}
    assert (leaked, held) == ({key: 1} if kind == "leaked" else {}, {key: 1} if kind == "held" else {})


def test_no_fixed_ip_eni_is_ever_leaked_and_the_split_adds_up():
    enis = [eni for eni, _, _ in CASES]
    split = classify_detached(enis, PODENIS, NOW, GRACE)
    assert split.leaked == {"terway": 1, "terway-controller": 1}
    assert split.held == {"Initial": 0, "Bind": 1, "Binding": 0, "Unbind": 1, "Detaching": 1, "Deleting": 0,
                          "other": 1}
    past_grace = [e for e in enis if e.status == "Available" and e.creator != "other" and e.creation_time
                  and NOW - e.creation_time > GRACE]
    assert sum(split.leaked.values()) + sum(split.held.values()) == len(past_grace)
    # The same ENIs without their PodENIs: the fixed-IP ones would read as leaked, so they are not counted at all.
    referenced = {e for p in PODENIS.values() for e in p.eni_ids}
    assert classify_detached(enis, {}, NOW, GRACE).leaked["terway-controller"] == sum(
        1 for e in past_grace if e.creator == "terway-controller")
    assert sum(1 for e in past_grace if e.eni_id in referenced and e.creator == "terway-controller") == 3


def test_unknown_podenis_leave_the_per_pod_creator_out():
    enis = [detached("eni-fixed", "terway-controller"), detached("eni-pool", "terway")]
    split = classify_detached(enis, None, NOW, GRACE)
    assert split.leaked == {"terway": 1} and split.held is None
    text = render(ClusterState(now=NOW, cloud=CloudSnapshot(detached_enis=tuple(enis))))
    assert {line for line in samples(text) if line.startswith("terway_enis_")} == {
        'terway_enis_leaked{creator="terway"} 1.0'}


def test_the_grace_period_comes_from_the_settings_and_the_clock():
    eni = detached("eni-lost", "terway-controller", 1000)
    state = ClusterState(now=NOW, cloud=CloudSnapshot(detached_enis=(eni,)), kube=KubeSnapshot(pod_enis={}),
                         settings=ExporterSettings(leak_grace_period=1800))
    assert 'terway_enis_leaked{creator="terway-controller"} 0.0' in samples(render(state))
    later = ClusterState(now=NOW + 900, cloud=state.cloud, kube=state.kube, settings=state.settings)
    assert 'terway_enis_leaked{creator="terway-controller"} 1.0' in samples(render(later))


@pytest.mark.parametrize(("source", "says"), [("quota_center", "account"), ("vpc_census", "lower bound")])
def test_quota_usage_names_its_source(source, says):
    state = ClusterState(now=0.0, cloud=CloudSnapshot(eni_quota=100, eni_quota_usage=42, eni_quota_usage_source=source))
    text = render(state)
    assert f'terway_eni_quota_usage{{source="{source}"}} 42.0' in samples(text)
    help_line = next(line for line in text.splitlines() if line.startswith("# HELP terway_eni_quota_usage "))
    assert says in help_line and "per account and region" in help_line


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
