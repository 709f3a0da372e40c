"""Configuration checks: each one failing, passing, and silent when its data is missing."""

from __future__ import annotations

import json

import pytest

from terway_exporter.checks.config import CHECK_NAMES, Problem, run_checks
from terway_exporter.model.cloud import (
    CloudSnapshot,
    CloudTargets,
    InstanceTypeLimits,
    SecurityGroup,
    VSwitch,
)
from terway_exporter.model.kube import KubeNode, KubeSnapshot, PodNetworkingRefs, TerwayNodeCR
from terway_exporter.model.state import ClusterState

VPC = "vpc-cluster"
BASE = {
    "ipam_type": "crd",
    "min_pool_size": 0,
    "max_pool_size": 5,
    "service_cidr": "172.16.0.0/16",
    "security_groups": ["sg-1"],
    "vswitches": {"z1": ["vsw-1"], "z2": ["vsw-2"]},
}
CNI = json.dumps({"type": "terway", "eniip_virtual_type": "veth"})
G7 = InstanceTypeLimits("ecs.g7.xlarge", eni_quantity=4, ips_per_eni=15)


def vsw(vid: str, vpc: str = VPC, zone: str = "z1") -> VSwitch:
    return VSwitch(vid, vpc, zone, "10.0.0.0/24", vid, 100)


GOOD_CLOUD = CloudSnapshot(
    vpc_id=VPC,
    vswitches={"vsw-1": vsw("vsw-1"), "vsw-2": vsw("vsw-2", zone="z2")},
    security_groups={"sg-1": SecurityGroup("sg-1", VPC)},
    instance_types={"ecs.g7.xlarge": G7},
)


def make_state(
    eni_conf: dict | str | None = None,
    dynamic: dict[str, dict | str] | None = None,
    nodes: list[KubeNode] | None = None,
    cloud: CloudSnapshot = GOOD_CLOUD,
    **kube_kw,
) -> ClusterState:
    kube_kw.setdefault("terway_nodes", {})
    text = json.dumps(BASE if eni_conf is None else eni_conf) if not isinstance(eni_conf, str) else eni_conf
    kube = KubeSnapshot(
        nodes={n.name: n for n in (nodes or [KubeNode("n1", zone_id="z1", instance_type="ecs.g7.xlarge"),
                                            KubeNode("n2", zone_id="z2", instance_type="ecs.g7.xlarge")])},
        eni_config={"eni_conf": text, "10-terway.conf": CNI},
        dynamic_configs={name: {"eni_conf": d if isinstance(d, str) else json.dumps(d)}
                         for name, d in (dynamic or {}).items()},
        kubernetes_service_ip="172.16.0.1",
        **kube_kw,
    )
    return ClusterState(now=0.0, kube=kube, cloud=cloud)


def found(state: ClusterState, check: str) -> set[str]:
    problems = run_checks(state)
    assert all(isinstance(p, Problem) and p.check in CHECK_NAMES for p in problems)
    return {p.object for p in problems if p.check == check}


def test_a_healthy_configuration_has_no_problem():
    assert run_checks(make_state()) == []


def test_check_names_cover_the_contract():
    assert {"eni_conf_unparsable", "vswitch_not_found", "vswitch_other_vpc", "security_group_not_found",
            "zone_without_vswitch", "service_cidr_mismatch", "pool_min_above_max", "pool_min_above_capacity",
            "plaintext_credentials"} <= set(CHECK_NAMES)


def test_checks_are_silent_without_a_cluster_configuration():
    assert run_checks(ClusterState(now=0.0)) == []


# ------------------------------------------------------------------------------------ parsing


def test_eni_conf_unparsable():
    assert found(make_state('{"max_pool_size": 5,,}'), "eni_conf_unparsable") == {"eni-config/eni_conf"}
    assert found(make_state({"max_pool_size": "5"}), "eni_conf_unparsable") == {"eni-config/eni_conf"}
    dyn = make_state(dynamic={"gpu": '{"min_pool_size": }'})
    assert found(dyn, "eni_conf_unparsable") == {"gpu/eni_conf"}


def test_missing_keys_and_other_files_are_unparsable_too():
    s = make_state()
    no_key = ClusterState(now=0.0, kube=KubeSnapshot(eni_config={"10-terway.conf": CNI}))
    assert found(no_key, "eni_conf_unparsable") == {"eni-config/eni_conf"}
    no_cni = ClusterState(now=0.0, kube=KubeSnapshot(eni_config={"eni_conf": "{}"}))
    assert found(no_cni, "eni_conf_unparsable") == {"eni-config/10-terway.conf"}
    bad_ctrl = make_state(controlplane_config={"ctrl-config.yaml": "degradation: [l0\n"})
    assert found(bad_ctrl, "eni_conf_unparsable") == {"terway-controlplane/ctrl-config.yaml"}
    assert found(s, "eni_conf_unparsable") == set()


def test_unparsable_messages_never_carry_the_secret():
    problems = run_checks(make_state('{"access_key": "LTAI5tSECRET", "access_secret": "hunter2",'))
    assert problems and all("LTAI5t" not in p.message and "hunter2" not in p.message for p in problems)


def test_eni_conf_invalid_for_terwayd_validate():
    sgs = [f"sg-{i}" for i in range(11)]
    s = make_state(dict(BASE, ip_stack="ipv6"), dynamic={"many": {"security_groups": sgs}, "same": {}})
    problems = {p.object: p.message for p in run_checks(s) if p.check == "eni_conf_invalid"}
    assert set(problems) == {"eni-config/eni_conf", "many/eni_conf"}
    assert "ipv6" in problems["eni-config/eni_conf"] and "11 security groups" in problems["many/eni_conf"]
    assert found(make_state(dict(BASE, ip_stack="dual")), "eni_conf_invalid") == set()


def test_degradation_terway_does_not_recognise_is_flagged():
    def ctrl(text: str) -> ClusterState:
        return make_state(controlplane_config={"ctrl-config.yaml": text})

    upper = run_checks(ctrl("regionID: cn-hangzhou\ndegradation: L0\n"))
    assert [(p.check, p.object) for p in upper] == [("degradation_ignored", "terway-controlplane/ctrl-config.yaml")]
    assert "'L0'" in upper[0].message and "without degradation" in upper[0].message
    assert found(ctrl('degradation: "l1 "'), "degradation_ignored") == {"terway-controlplane/ctrl-config.yaml"}
    # What Terway recognises, an empty value and no key at all are fine.
    for text in ("degradation: l0", "degradation: l1", "degradation: ''", "regionID: cn-hangzhou"):
        assert found(ctrl(text), "degradation_ignored") == set(), text
    assert found(make_state(), "degradation_ignored") == set()  # hosted controlplane: nothing to judge


def test_ignored_fields_from_the_terway_common_issues_guide():
    conf = dict(BASE, enable_ebpf=True, eniip_virtual_type="IPVlan")
    assert found(make_state(conf), "eni_conf_ignored_field") == {
        "eni-config/eni_conf.enable_ebpf", "eni-config/eni_conf.eniip_virtual_type"}


# ------------------------------------------------------------------------------------ cloud-backed


def test_vswitch_not_found_in_eni_config_and_dynamic_config():
    conf = dict(BASE, vswitches={"z1": ["vsw-1", "vsw-gone"], "z2": ["vsw-2"]})
    s = make_state(conf, dynamic={"gpu": {"vswitches": {"z1": ["vsw-typo"]}}})
    assert found(s, "vswitch_not_found") == {"vsw-gone", "vsw-typo"}
    messages = {p.object: p.message for p in run_checks(s) if p.check == "vswitch_not_found"}
    assert "eni-config/eni_conf" in messages["vsw-gone"] and "gpu/eni_conf" in messages["vsw-typo"]


def test_vswitch_not_found_from_the_cloud_missing_list():
    cloud = CloudSnapshot(vpc_id=VPC, vswitches={"vsw-1": vsw("vsw-1")}, missing_vswitches=frozenset({"vsw-2"}))
    assert found(make_state(cloud=cloud), "vswitch_not_found") == {"vsw-2"}


def test_vswitch_not_found_waits_for_cloud_data_and_targets():
    assert found(make_state(cloud=CloudSnapshot()), "vswitch_not_found") == set()
    # The cloud source has not been asked about vsw-2 yet: not judged.
    cloud = CloudSnapshot(vpc_id=VPC, vswitches={"vsw-1": vsw("vsw-1")})
    s = make_state(cloud=cloud)
    asked_for_one = ClusterState(now=0.0, kube=s.kube, cloud=cloud,
                                 targets=CloudTargets(vswitch_ids=frozenset({"vsw-1"})))
    assert found(asked_for_one, "vswitch_not_found") == set()
    asked_for_both = ClusterState(now=0.0, kube=s.kube, cloud=cloud,
                                  targets=CloudTargets(vswitch_ids=frozenset({"vsw-1", "vsw-2"})))
    assert found(asked_for_both, "vswitch_not_found") == {"vsw-2"}


def test_vswitch_other_vpc():
    cloud = CloudSnapshot(vpc_id=VPC, vswitches={"vsw-1": vsw("vsw-1"), "vsw-2": vsw("vsw-2", vpc="vpc-other")})
    assert found(make_state(cloud=cloud), "vswitch_other_vpc") == {"vsw-2"}
    unknown_vpc = CloudSnapshot(vswitches=cloud.vswitches)
    assert found(make_state(cloud=unknown_vpc), "vswitch_other_vpc") == set()


def test_security_group_not_found():
    conf = dict(BASE, security_group="sg-gone")
    assert found(make_state(conf), "security_group_not_found") == {"sg-gone"}
    missing = CloudSnapshot(vpc_id=VPC, missing_security_groups=frozenset({"sg-1"}))
    assert found(make_state(cloud=missing), "security_group_not_found") == {"sg-1"}
    assert found(make_state(conf, cloud=CloudSnapshot()), "security_group_not_found") == set()


def test_pod_networking_vswitches_and_security_groups_are_judged_like_eni_configs():
    pns = {"pn-gpu": PodNetworkingRefs(vswitch_ids=("vsw-1", "vsw-pn-gone"), security_group_ids=("sg-pn-gone",)),
           "pn-web": PodNetworkingRefs(vswitch_ids=("vsw-other-vpc", "vsw-1"), security_group_ids=("sg-1",))}
    cloud = CloudSnapshot(vpc_id=VPC,
                          vswitches={**GOOD_CLOUD.vswitches, "vsw-other-vpc": vsw("vsw-other-vpc", "vpc-x")},
                          security_groups=GOOD_CLOUD.security_groups)
    s = make_state(cloud=cloud, pod_networkings=pns)
    messages = {(p.check, p.object): p.message for p in run_checks(s)}
    assert set(messages) == {("vswitch_not_found", "vsw-pn-gone"), ("vswitch_other_vpc", "vsw-other-vpc"),
                             ("security_group_not_found", "sg-pn-gone")}
    assert "podnetworking/pn-gpu" in messages[("vswitch_not_found", "vsw-pn-gone")]
    assert "podnetworking/pn-web" in messages[("vswitch_other_vpc", "vsw-other-vpc")]
    assert "podnetworking/pn-gpu" in messages[("security_group_not_found", "sg-pn-gone")]
    # An ID both eni-config and a PodNetworking name is reported once, naming both places.
    shared = make_state(dict(BASE, vswitches={"z1": ["vsw-gone"], "z2": ["vsw-2"]}), cloud=GOOD_CLOUD,
                        pod_networkings={"pn-a": PodNetworkingRefs(vswitch_ids=("vsw-gone",))})
    (problem,) = [p for p in run_checks(shared) if p.check == "vswitch_not_found"]
    assert "eni-config/eni_conf" in problem.message and "podnetworking/pn-a" in problem.message
    # Before the cloud answered, nothing is judged.
    assert run_checks(make_state(cloud=CloudSnapshot(), pod_networkings=pns)) == []


# ------------------------------------------------------------------------------------ cluster-backed


def test_zone_without_vswitch():
    nodes = [KubeNode("a", zone_id="z1"), KubeNode("b", zone_id="z3"), KubeNode("c", zone_id="z4", ignored=True),
             KubeNode("d", zone_id="z5", terway_config="z5-config"), KubeNode("e", zone_id="z6")]
    s = make_state(nodes=nodes, dynamic={"z5-config": {"vswitches": {"z5": ["vsw-1"]}}})
    assert found(s, "zone_without_vswitch") == {"z3", "z6"}  # z4: ignored node; z5: its dynamic config


def test_zone_covered_by_any_config_that_applies():
    nodes = [KubeNode("a", zone_id="z3"), KubeNode("b", zone_id="z3", terway_config="z3-config")]
    s = make_state(nodes=nodes, dynamic={"z3-config": {"vswitches": {"z3": ["vsw-1"]}}})
    assert found(s, "zone_without_vswitch") == set()


def test_service_cidr_mismatch():
    assert found(make_state(dict(BASE, service_cidr="10.96.0.0/12")), "service_cidr_mismatch") == {
        "eni-config/eni_conf"}
    assert found(make_state(dict(BASE, service_cidr="10.96.0.0/12,172.16.0.0/16")), "service_cidr_mismatch") == set()
    # A dynamic config that inherits the base value is not reported again; one that sets its own is.
    s = make_state(dict(BASE, service_cidr="10.96.0.0/12"),
                   dynamic={"inherits": {"max_pool_size": 9}, "own": {"service_cidr": "192.168.0.0/16"}})
    assert found(s, "service_cidr_mismatch") == {"eni-config/eni_conf", "own/eni_conf"}
    wrong = make_state(dict(BASE, service_cidr="10.96.0.0/12"))
    no_service_ip = ClusterState(now=0.0, kube=KubeSnapshot(eni_config=wrong.kube.eni_config))
    assert found(no_service_ip, "service_cidr_mismatch") == set()


def test_pool_min_above_max():
    assert found(make_state(dict(BASE, min_pool_size=10, max_pool_size=5)), "pool_min_above_max") == {
        "eni-config/eni_conf"}
    s = make_state(dynamic={"big": {"min_pool_size": 20}, "fine": {"min_pool_size": 5}})
    assert found(s, "pool_min_above_max") == {"big/eni_conf"}


def test_pool_min_above_max_is_judged_by_what_each_ipam_mode_does_with_it():
    def message(conf: dict) -> str:
        (p,) = [p for p in run_checks(make_state(conf)) if p.check == "pool_min_above_max"]
        return p.message

    # Centralised IPAM copies both into spec.pool: allocate to min, release to max, every period.
    crd = message(dict(BASE, min_pool_size=10, max_pool_size=5))
    assert "min_pool_size 10 is above max_pool_size 5" in crd
    assert "releases" in crd and "every pool sync period" in crd
    # Legacy terwayd caps the minimum (daemon/config.go getPoolConfig): no churn, the floor is lost.
    legacy = message(dict(BASE, ipam_type="", min_pool_size=10, max_pool_size=5))
    assert "caps min_pool_size to max_pool_size" in legacy and "every pool sync period" not in legacy
    # A dynamic config that switches only the IPAM mode changes the verdict, so it is reported too.
    s = make_state(dict(BASE, ipam_type="", min_pool_size=10, max_pool_size=5), dynamic={"crd": {"ipam_type": "crd"}})
    assert found(s, "pool_min_above_max") == {"eni-config/eni_conf", "crd/eni_conf"}


@pytest.mark.parametrize(
    "ipam_type, min_pool, max_pool, annotation, expected",
    [
        ("crd", 50, 60, None, {"n1"}),  # capacity (4-1) x 15 = 45
        ("crd", 45, 60, None, set()),
        # Centralised IPAM carries min_pool_size uncapped: 50 does not fit (pool_min_above_max says why too).
        ("crd", 50, 10, None, {"n1"}),
        # Legacy terwayd caps min to max: the floor 10 fits.
        ("", 50, 10, None, set()),
        ("crd", 20, 30, 16, {"n1"}),  # the max-available-ip annotation wins
    ],
)
def test_pool_min_above_capacity(ipam_type, min_pool, max_pool, annotation, expected):
    node = KubeNode("n1", zone_id="z1", instance_type="ecs.g7.xlarge", max_available_ip=annotation)
    s = make_state(dict(BASE, ipam_type=ipam_type, min_pool_size=min_pool, max_pool_size=max_pool), nodes=[node])
    assert found(s, "pool_min_above_capacity") == expected


def test_pool_min_above_capacity_uses_node_cr_values_and_stays_silent_without_capacity():
    node = KubeNode("n1", zone_id="z1", instance_type="ecs.g7.xlarge")
    cr = TerwayNodeCR("n1", adapters=2, ipv4_per_adapter=10, min_pool_size=12, max_pool_size=20)
    assert found(make_state(nodes=[node], terway_nodes={"n1": cr}), "pool_min_above_capacity") == {"n1"}
    no_limits = make_state(dict(BASE, min_pool_size=500, max_pool_size=500), nodes=[node], cloud=CloudSnapshot())
    assert found(no_limits, "pool_min_above_capacity") == set()


def test_plaintext_credentials():
    s = make_state(dict(BASE, access_key="LTAI5tEXAMPLE", access_secret="x"),
                   dynamic={"inherits": {"max_pool_size": 9}, "own": {"access_secret": "y"}})
    problems = [p for p in run_checks(s) if p.check == "plaintext_credentials"]
    assert {p.object for p in problems} == {"eni-config/eni_conf", "own/eni_conf"}
    assert all("LTAI5t" not in p.message for p in problems)
    assert found(make_state(dict(BASE, access_key="", credential_path="/var/addon/token-config")),
                 "plaintext_credentials") == set()
