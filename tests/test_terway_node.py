"""Terway's per-node rules: idle IPs, capacity, ENI limit, pool bounds, legacy IPAM, degradation."""

from __future__ import annotations

import json

from terway_exporter.model.cloud import CloudSnapshot, Eni, EniCensus, InstanceTypeLimits
from terway_exporter.model.kube import (
    KubeNode,
    KubeSnapshot,
    NodeCRNic,
    TerwayNodeCR,
)
from terway_exporter.terway.eniconf import ConfigError, EniConf, effective_confs
from terway_exporter.terway.node import (
    IpCounts,
    NodeView,
    cni_ready,
    degradation_level,
    ip_capacity,
    ip_counts,
    node_views,
    pool_bounds,
    prefix_ip_counts,
    prefix_mode,
)

G7 = InstanceTypeLimits("ecs.g7.xlarge", eni_quantity=4, ips_per_eni=15, eni_total_quantity=4)
CLOUD = CloudSnapshot(instance_types={"ecs.g7.xlarge": G7})


def nic(eni_id: str, status: str, *specs: str, **kw) -> NodeCRNic:
    """Specs: "V" valid idle, "P" valid with a pod, "I" invalid, "D" deleting, "DP" deleting with a pod."""
    return NodeCRNic(eni_id, status, ipv4_in_use=sum("P" in s for s in specs),
                     ipv4_free_valid=specs.count("V"), ipv4_other=specs.count("I") + specs.count("D"), **kw)


def test_idle_rule_is_terways():
    cr = TerwayNodeCR(
        "n1",
        nics=(
            nic("eni-a", "InUse", "P", "P", "V", "V", "I", "D", "DP"),
            # Unschedulable ENI (block-listed tag): its free IPs are not the pool's.
            nic("eni-b", "InUse", "V", "P", unschedulable=True),
            # Still attaching: nothing on it is allocatable yet.
            nic("eni-c", "Attaching", "V"),
        ),
    )
    assert ip_counts(cr) == IpCounts(in_use=4, idle=2, unavailable=4)


def test_capacity_prefers_the_annotation_then_node_cap_then_instance_type():
    annotated = KubeNode("n", max_available_ip=30)
    plain = KubeNode("n", instance_type="ecs.g7.xlarge")
    cr = TerwayNodeCR("n", adapters=8, ipv4_per_adapter=20, total_adapters=8)
    assert ip_capacity(annotated, cr, G7, None) == 30
    assert ip_capacity(plain, cr, G7, None) == 7 * 20
    prefix = TerwayNodeCR("n", adapters=8, ipv4_per_adapter=20, total_adapters=8, enable_ip_prefix=True)
    assert ip_capacity(plain, prefix, G7, None) == 19 * 16 * 7
    assert ip_capacity(plain, None, G7, None) == 3 * 15
    assert ip_capacity(plain, None, None, None) is None


def test_exclusive_eni_nodes_hold_one_pod_per_eni_and_no_pool():
    kube = _crd_kube(nodes={"x": KubeNode("x", instance_type="ecs.g7.xlarge", exclusive_eni=True)})
    (view,) = node_views(kube, CLOUD, effective_confs(kube))
    assert (view.ip_capacity, view.pool_min, view.pool_max) == (3, 0, 0)


def test_legacy_capacity_applies_eni_cap_ratio_shift_and_max_eni():
    plain = KubeNode("n")
    assert ip_capacity(plain, None, G7, EniConf(eni_cap_ratio=0.5)) == (2 - 1) * 15
    assert ip_capacity(plain, None, G7, EniConf(eni_cap_shift=1)) == 4 * 15
    assert ip_capacity(plain, None, G7, EniConf(max_eni=2)) == 2 * 15


def test_pool_bounds_prefer_the_node_cr():
    conf = EniConf(min_pool_size=2, max_pool_size=5)
    assert pool_bounds(TerwayNodeCR("n", min_pool_size=0, max_pool_size=0), conf, G7) == (0, 0)  # prefix mode
    assert pool_bounds(TerwayNodeCR("n"), conf, G7) == (2, 5)
    assert pool_bounds(None, EniConf(min_eni=1, max_pool_size=30), G7) == (15, 30)  # min_eni x ipPerENI
    assert pool_bounds(None, None, G7) == (None, None)


def _crd_kube(**kw) -> KubeSnapshot:
    conf = {"ipam_type": "crd", "min_pool_size": 1, "max_pool_size": 5, "vswitches": {"z1": ["vsw-1"]}}
    defaults = dict(
        nodes={
            "a": KubeNode("a", instance_id="i-a", instance_type="ecs.g7.xlarge", zone_id="z1",
                          sufficient_ip=False, ready=True),
            "b": KubeNode("b", instance_type="ecs.g7.xlarge", terway_config="big"),
            "vk": KubeNode("vk", ignored=True),
        },
        terway_nodes={
            "a": TerwayNodeCR("a", adapters=4, ipv4_per_adapter=15, min_pool_size=3, max_pool_size=10,
                              nics=(nic("eni-1", "InUse", "P", "V"),),
                              last_sync_openapi=1_700_000_000.0),
        },
        eni_config={"eni_conf": json.dumps(conf)},
        dynamic_configs={"big": {"eni_conf": '{"max_pool_size": 50}'}},
    )
    defaults.update(kw)
    return KubeSnapshot(**defaults)


def test_node_views_in_crd_mode():
    kube = _crd_kube()
    views = {v.name: v for v in node_views(kube, CLOUD, effective_confs(kube))}
    assert set(views) == {"a", "b"}  # ignored nodes are not Terway's
    a, b = views["a"], views["b"]
    assert (a.ipam_mode, a.enis, a.eni_limit, a.ip_capacity) == ("crd", 2, 4, 45)
    assert a.ips == IpCounts(in_use=1, idle=1)
    assert (a.pool_min, a.pool_max) == (3, 10)
    assert (a.sufficient_ip, a.cni_ready, a.last_sync_openapi) == (False, True, 1_700_000_000.0)
    # No Node CR yet: no ENI/IP data, but limits from the instance type and the merged dynamic config.
    assert (b.enis, b.ips, b.eni_limit, b.ip_capacity) == (None, None, 4, 45)
    assert (b.pool_min, b.pool_max) == (1, 50)


def test_node_views_in_legacy_mode_use_the_eni_census():
    census = EniCensus(
        counts={},
        by_instance={"i-a": (Eni("eni-p", "InUse", "Primary", "other", private_ips=1),
                             Eni("eni-1", "InUse", "Secondary", "terway", private_ips=10),
                             Eni("eni-2", "InUse", "Secondary", "terway", private_ips=6))},
        taken_at=0.0,
    )
    kube = _crd_kube(terway_nodes=None, eni_config={"eni_conf": '{"max_pool_size": 5}'})
    cloud = CloudSnapshot(instance_types={"ecs.g7.xlarge": G7}, census=census)
    views = {v.name: v for v in node_views(kube, cloud, effective_confs(kube))}
    assert views["a"].ipam_mode == "legacy"
    assert (views["a"].enis, views["a"].ips) == (3, IpCounts(unknown=16))
    assert views["b"].enis is None  # no instance id: cannot be matched to the census
    before_census = {v.name: v for v in node_views(kube, CLOUD, effective_confs(kube))}
    assert before_census["a"].enis is None and before_census["a"].ips is None


def test_prefix_mode_node_reports_prefix_addresses_and_no_pool():
    prefix_cr = TerwayNodeCR("a", adapters=4, total_adapters=4, ipv4_per_adapter=15, enable_ip_prefix=True,
                             min_pool_size=0, max_pool_size=0,
                             nics=(NodeCRNic("eni-1", "InUse", ipv4_free_valid=1, ipv4_prefix_addresses=64),))
    kube = _crd_kube(terway_nodes={"a": prefix_cr})
    views = {v.name: v for v in node_views(kube, CLOUD, effective_confs(kube))}
    a = views["a"]
    assert a.ipam_mode == "prefix"
    assert a.ips == IpCounts(unknown=64)  # never in_use=0: the CR holds no pod records
    assert (a.enis, a.ip_capacity, a.pool_min, a.pool_max) == (2, 14 * 16 * 3, 0, 0)
    assert views["b"].ipam_mode == "crd"  # no CR, config without enable_ip_prefix


def test_prefix_mode_comes_from_the_cr_then_the_config():
    on = EniConf(ipam_type="crd", enable_ip_prefix=True)
    assert prefix_mode(TerwayNodeCR("n", enable_ip_prefix=True), None) is True
    # The CR's value is immutable: a config switched on later does not change an existing node.
    assert prefix_mode(TerwayNodeCR("n"), on) is False
    assert prefix_mode(None, on) is True
    assert prefix_mode(None, EniConf(enable_ip_prefix=True)) is False  # only centralised IPAM has prefixes
    assert prefix_ip_counts(TerwayNodeCR("n", nics=(NodeCRNic("e1", "InUse", ipv4_prefix_addresses=16),
                                                    NodeCRNic("e2", "Attaching", ipv4_prefix_addresses=32)))) \
        == IpCounts(unknown=48)


def test_min_pool_size_above_max_is_capped_only_in_legacy_ipam():
    above = '{"ipam_type": "%s", "min_pool_size": 10, "max_pool_size": 4}'
    crd = _crd_kube(eni_config={"eni_conf": above % "crd"},
                    terway_nodes={"a": TerwayNodeCR("a", adapters=4, ipv4_per_adapter=15, min_pool_size=10,
                                                    max_pool_size=4)})
    views = {v.name: v for v in node_views(crd, CLOUD, effective_confs(crd))}
    assert (views["a"].pool_min, views["a"].pool_max) == (10, 4)  # spec.pool as the daemon copied it
    legacy = _crd_kube(terway_nodes=None, eni_config={"eni_conf": above % ""})
    views = {v.name: v for v in node_views(legacy, CLOUD, effective_confs(legacy))}
    assert (views["a"].pool_min, views["a"].pool_max) == (4, 4)  # terwayd's getPoolConfig caps it


def test_crd_installed_but_ipam_type_legacy_is_legacy():
    kube = _crd_kube(eni_config={"eni_conf": '{"ipam_type": ""}'})
    views = {v.name: v for v in node_views(kube, CLOUD, effective_confs(kube))}
    assert views["a"].ipam_mode == "legacy"
    assert views["a"].eni_limit == 4  # nodeCap still read


def test_cni_ready():
    assert cni_ready(KubeNode("n", ready=True)) is True
    assert cni_ready(KubeNode("n")) is None
    assert cni_ready(KubeNode("n", ready=False, ready_message="container runtime network not ready: "
                              "NetworkReady=false reason:NetworkPluginNotReady message:Network plugin "
                              "returns error: cni plugin not initialized")) is False
    # Not ready for another reason: the CNI is not blamed.
    assert cni_ready(KubeNode("n", ready=False, ready_message="Kubelet stopped posting node status.")) is True


def test_degradation_level():
    assert degradation_level(KubeSnapshot()) is None  # hosted controlplane: not visible
    assert degradation_level(KubeSnapshot(controlplane_config={"ctrl-config.yaml": "degradation: l0"})) == "l0"
    assert degradation_level(KubeSnapshot(controlplane_config={})) == "none"
    assert isinstance(degradation_level(KubeSnapshot(controlplane_config={"ctrl-config.yaml": "a: ["})),
                      ConfigError)


def view(ipam_mode: str = "crd", enis: int | None = 4, eni_limit: int | None = 4, ips: IpCounts | None = None,
         ip_capacity: int | None = 45, pool_min: int | None = 0, pool_max: int | None = 10) -> NodeView:
    """A node of ecs.g7.xlarge (4 ENIs, 15 IPs each: capacity (4 - 1) x 15 = 45) unless told otherwise."""
    return NodeView("n", "i-1", "ecs.g7.xlarge", "cn-hangzhou-h", ipam_mode, enis, eni_limit,
                    IpCounts(in_use=20, idle=0) if ips is None else ips, ip_capacity, pool_min, pool_max,
                    type_eni_limit=4, type_ip_capacity=45)


def test_eni_limit_reached_needs_every_eni_attached_and_no_idle_ip():
    assert view().eni_limit_reached  # 4 of 4, 0 idle
    assert not view(ips=IpCounts(in_use=20, idle=2)).eni_limit_reached  # idle IPs left: pods still start
    assert not view(enis=3).eni_limit_reached  # a slot left: Terway can add an ENI
    # The node's own limit wins (Node CR nodeCap.adapters 3, the type says 4): 3 attached is the limit.
    assert view(enis=3, eni_limit=3).eni_limit_reached
    assert view(enis=3, eni_limit=3).own_eni_limit == 3
    # An instance type not described and no nodeCap: no limit known, no judgement.
    assert not view(enis=9, eni_limit=None).eni_limit_reached
    assert not view(enis=None).eni_limit_reached  # no Node CR yet
    # Legacy and prefix-mode nodes: idle IPs are not known from outside the node, never judged.
    assert not view("legacy", ips=IpCounts(unknown=40)).eni_limit_reached
    assert not view("prefix", ips=IpCounts(unknown=64)).eni_limit_reached


def test_ip_pool_below_minimum_needs_room_for_the_minimum():
    below = dict(ips=IpCounts(in_use=20, idle=2), pool_min=10)
    assert view(**below).ip_pool_below_minimum  # 2 idle < 10; 45 - 20 = 25 >= 10: room to grow
    assert not view(ips=IpCounts(in_use=40, idle=2), pool_min=10).ip_pool_below_minimum  # full: 45 - 40 < 10
    assert not view(ips=IpCounts(in_use=10, idle=5), pool_min=5).ip_pool_below_minimum  # at its minimum
    # min_pool_size above max_pool_size: the controlplane releases down to the maximum by design (adjustPool).
    assert not view(ips=IpCounts(in_use=10, idle=5), pool_min=10, pool_max=5).ip_pool_below_minimum
    assert view(**below, pool_max=None).ip_pool_below_minimum  # no maximum known: nothing excludes it
    # The node's own capacity wins (max-available-ip 20): 18 in use leaves no room for 5 idle IPs.
    assert not view(ips=IpCounts(in_use=18, idle=2), ip_capacity=20, pool_min=5).ip_pool_below_minimum
    assert view(ips=IpCounts(in_use=18, idle=2), ip_capacity=20, pool_min=5).own_ip_capacity == 20
    assert not view(**{**below, "ip_capacity": None}).ip_pool_below_minimum  # capacity unknown
    assert not view("legacy", ips=IpCounts(unknown=40), pool_min=10).ip_pool_below_minimum
    assert not view("prefix", ips=IpCounts(unknown=64), pool_min=10).ip_pool_below_minimum
