"""Kubernetes-side collectors: snapshot in, exposition text out (exact, or parsed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.collectors import config, node, pods, workloads
from terway_exporter.model.cloud import CloudSnapshot, InstanceTypeLimits
from terway_exporter.model.kube import (
    ContainerStatus,
    KubeNode,
    KubeSnapshot,
    LeaseStatus,
    NodeCRNic,
    PodSummary,
    TerwayNodeCR,
    WaitingPod,
    WorkloadStatus,
)
from terway_exporter.model.state import ClusterState

MODULES = (node, pods, workloads, config)


class _Families:
    def __init__(self, families):
        self._families = list(families)

    def collect(self):
        return self._families


def render(state: ClusterState, modules=MODULES) -> str:
    families = [m for mod in modules for c in mod.COLLECTORS for m in c.collect(state)]
    return generate_latest(_Families(families)).decode()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def by_node(text: str, name: str, **match: str) -> dict[str, float]:
    return {dict(k)["node"]: v for k, v in samples(text, name).items()
            if all(dict(k).get(lk) == lv for lk, lv in match.items())}


ENI_CONF = {"ipam_type": "crd", "min_pool_size": 0, "max_pool_size": 5, "ip_stack": "ipv4",
            "vswitch_selection_policy": "ordered", "vswitches": {"z1": ["vsw-1"]},
            "security_groups": ["sg-1"], "service_cidr": "172.16.0.0/16", "enable_eni_trunking": True}
CNI_CONF = {"cniVersion": "0.4.0", "name": "terway", "type": "terway", "eniip_virtual_type": "Veth",
            "network_policy_provider": "ebpf"}


def cluster(n_nodes: int = 2) -> KubeSnapshot:
    nodes, crs = {}, {}
    for i in range(n_nodes):
        name = f"cn-hangzhou.10.0.{i // 250}.{i % 250}"
        nodes[name] = KubeNode(name, instance_id=f"i-{i}", instance_type="ecs.g7.xlarge", zone_id="z1",
                               ready=True, sufficient_ip=True, created=1_690_000_000.0 + i)
        crs[name] = TerwayNodeCR(name, instance_id=f"i-{i}", instance_type="ecs.g7.xlarge", zone_id="z1",
                                 adapters=4, ipv4_per_adapter=15, min_pool_size=0, max_pool_size=5,
                                 nics=(NodeCRNic("eni-x", "InUse", ipv4_in_use=10, ipv4_free_valid=3),),
                                 last_sync_openapi=1_700_000_000.0)
    return KubeSnapshot(nodes=nodes, terway_nodes=crs,
                        eni_config={"eni_conf": json.dumps(ENI_CONF), "10-terway.conf": json.dumps(CNI_CONF)},
                        kubernetes_service_ip="172.16.0.1")


def state(kube: KubeSnapshot, **kw) -> ClusterState:
    return ClusterState(now=1_700_000_100.0, kube=kube, **kw)


# ------------------------------------------------------------------------------------ nodes


G7 = CloudSnapshot(
    instance_types={"ecs.g7.xlarge": InstanceTypeLimits("ecs.g7.xlarge", eni_quantity=4, ips_per_eni=15)})


def test_node_families_in_crd_mode():
    # A healthy node whose limits are its instance type's: 7 series; the other families are empty.
    text = render(state(cluster(1), cloud=G7), [node])
    assert text == """\
# HELP terway_node_info 1 per node Terway manages; ipam_mode is crd (centralised IPAM, Node CR), prefix (centralised \
IPAM with IP prefixes: the daemon assigns pod IPs, the Node CR has no pod records) or legacy (node-local).
# TYPE terway_node_info gauge
terway_node_info{instance_id="i-0",instance_type="ecs.g7.xlarge",ipam_mode="crd",node="cn-hangzhou.10.0.0.0",\
zone_id="z1"} 1.0
# HELP terway_node_ips Pod IPs held on the node's secondary ENIs by state: in_use (a pod holds it), idle (Valid, no \
pod, on an InUse schedulable ENI: Terway's pool), unavailable (anything else; only while above 0); unknown alone in \
legacy IPAM (the ECS census total) and in prefix mode (addresses of the Valid/Frozen IPv4 prefixes), where in-use and \
idle are not visible.
# TYPE terway_node_ips gauge
terway_node_ips{node="cn-hangzhou.10.0.0.0",state="in_use"} 10.0
terway_node_ips{node="cn-hangzhou.10.0.0.0",state="idle"} 3.0
# HELP terway_node_enis ENIs attached to the node, the primary included.
# TYPE terway_node_enis gauge
terway_node_enis{node="cn-hangzhou.10.0.0.0"} 2.0
# HELP terway_node_pool_min_ips min_pool_size in force on the node (Node CR spec.pool, else eni_conf merged with the \
node's dynamic config; legacy IPAM caps it to max_pool_size, as terwayd does).
# TYPE terway_node_pool_min_ips gauge
terway_node_pool_min_ips{node="cn-hangzhou.10.0.0.0"} 0.0
# HELP terway_node_pool_max_ips max_pool_size in force on the node (Node CR spec.pool, else eni_conf merged with the \
node's dynamic config).
# TYPE terway_node_pool_max_ips gauge
terway_node_pool_max_ips{node="cn-hangzhou.10.0.0.0"} 5.0
# HELP terway_node_last_openapi_sync_timestamp_seconds Node CR status.lastSyncOpenAPITime: last full sync of the \
node's ENIs with the cloud API.
# TYPE terway_node_last_openapi_sync_timestamp_seconds gauge
terway_node_last_openapi_sync_timestamp_seconds{node="cn-hangzhou.10.0.0.0"} 1.7e+09
# HELP terway_node_eni_limit_override ENIs the node allows, the primary included, only where \
terway_instance_type_eni_limit of its instance_type does not give it: Node CR spec.nodeCap.adapters that differs from \
EniQuantity, or an instance type not described (yet).
# TYPE terway_node_eni_limit_override gauge
# HELP terway_node_ip_capacity_override Most pod IPs the node can hold, only where its instance type's \
(terway_instance_type_eni_limit - 1) x terway_instance_type_ips_per_eni does not give it: annotation \
k8s.aliyun.com/max-available-ip or Node CR spec.nodeCap that differs, prefix mode, exclusive ENI, legacy \
eni_cap_ratio/eni_cap_shift/max_eni, or an instance type not described (yet).
# TYPE terway_node_ip_capacity_override gauge
# HELP terway_node_insufficient_ip 1 while the Node condition SufficientIP is False; absent while it is True or not set.
# TYPE terway_node_insufficient_ip gauge
# HELP terway_node_cni_not_ready 1 while the kubelet reports the network plugin or CNI config not ready; absent \
otherwise.
# TYPE terway_node_cni_not_ready gauge
# HELP terway_node_eni_limit_reached 1 while every ENI the node allows is attached (terway_node_enis >= its ENI limit) \
and it has no idle IP; absent otherwise, and on legacy and prefix-mode nodes (idle IPs not known).
# TYPE terway_node_eni_limit_reached gauge
# HELP terway_node_ip_pool_below_minimum 1 while the node holds fewer idle IPs than its min_pool_size although its IP \
capacity minus the IPs in use leaves room for min_pool_size, and min_pool_size is not above max_pool_size; absent \
otherwise.
# TYPE terway_node_ip_pool_below_minimum gauge
# HELP terway_zone_nodes Nodes Terway manages in the zone (count of terway_node_info by zone_id).
# TYPE terway_zone_nodes gauge
terway_zone_nodes{zone_id="z1"} 1.0
# HELP terway_nodes_newest_creation_timestamp_seconds metadata.creationTimestamp of the newest node Terway manages: a \
node created in the last minutes is still booting (terway-init writes the CNI config), and its pods' NetworkNotReady \
sandbox failures are expected.
# TYPE terway_nodes_newest_creation_timestamp_seconds gauge
terway_nodes_newest_creation_timestamp_seconds 1.69e+09
# HELP terway_node_openapi_sync_overdue_timestamp_seconds Node CR status.lastSyncOpenAPITime, only while it is over \
24 hours old (Terway waits 12 to 24 hours between full syncs); absent otherwise. TerwayOpenAPISyncStale reads it: the \
few overdue nodes, not every node's terway_node_last_openapi_sync_timestamp_seconds.
# TYPE terway_node_openapi_sync_overdue_timestamp_seconds gauge
"""


def test_a_node_that_leaves_or_is_ignored_loses_its_series():
    kube = cluster(3)
    names = sorted(kube.nodes)
    before = render(state(kube), [node])
    assert set(by_node(before, "terway_node_enis")) == set(names)
    gone = dict(kube.nodes)
    del gone[names[0]]
    gone[names[1]] = replace(gone[names[1]], ignored=True)
    after = render(state(replace(kube, nodes=gone)), [node])
    # No instance type described here: every node reports its own ENI limit and IP capacity.
    for family in ("terway_node_info", "terway_node_enis", "terway_node_ips", "terway_node_ip_capacity_override",
                   "terway_node_eni_limit_override", "terway_node_pool_max_ips",
                   "terway_node_last_openapi_sync_timestamp_seconds"):
        assert set(by_node(after, family)) == {names[2]}, family


def test_node_cni_not_ready_and_insufficient_ip():
    kube = cluster(1)
    name = next(iter(kube.nodes))
    sick = replace(kube.nodes[name], ready=False, sufficient_ip=False,
                   ready_message="container runtime network not ready: NetworkReady=false "
                                 "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                 "cni plugin not initialized")
    text = render(state(replace(kube, nodes={name: sick})), [node])
    assert by_node(text, "terway_node_cni_not_ready") == {name: 1.0}
    assert by_node(text, "terway_node_insufficient_ip") == {name: 1.0}
    # Healthy, or not ready for another reason, or conditions unknown: no series at all.
    other = replace(kube.nodes[name], ready=False, sufficient_ip=None,
                    ready_message="Kubelet stopped posting node status.")
    for healthy in (kube, replace(kube, nodes={name: other})):
        text = render(state(healthy), [node])
        assert by_node(text, "terway_node_cni_not_ready") == {}
        assert by_node(text, "terway_node_insufficient_ip") == {}


def test_node_summary_counts_managed_nodes_per_zone_and_gives_the_newest_creation_time():
    kube = cluster(4)  # created 1_690_000_000 + 0..3, all in z1
    names = sorted(kube.nodes)
    nodes = dict(kube.nodes)
    nodes[names[0]] = replace(nodes[names[0]], zone_id="z2")
    nodes[names[3]] = replace(nodes[names[3]], ignored=True)  # the newest, but Terway does not manage it
    nodes["no-time"] = KubeNode("no-time", zone_id="z2")  # a projection without creationTimestamp
    text = render(state(replace(kube, nodes=nodes)), [node])
    assert samples(text, "terway_zone_nodes") == {(("zone_id", "z1"),): 2.0, (("zone_id", "z2"),): 2.0}
    assert samples(text, "terway_nodes_newest_creation_timestamp_seconds") == {(): 1_690_000_002.0}
    # No node with a creation time: no sample rather than a made-up one.
    text = render(state(replace(kube, nodes={"no-time": KubeNode("no-time", zone_id="z2")}, terway_nodes={})),
                  [node])
    assert samples(text, "terway_nodes_newest_creation_timestamp_seconds") == {}
    assert samples(text, "terway_zone_nodes") == {(("zone_id", "z2"),): 1.0}


def test_openapi_sync_overdue_only_past_terways_longest_wait():
    """Terway waits 12 to 24 h between a Node CR's full syncs: only a last sync older than that is published, and
    the line follows the clock (a node crosses it with no change to its Node CR)."""
    now = 1_700_000_100.0
    day = 24 * 3600
    last_sync = {
        "every-minute": now - 60,
        "twenty-hours": now - 20 * 3600,
        "longest-wait": now - day,  # drew the longest interval: healthy, not overdue yet
        "late": now - day - 47 * 60,
        "stopped": now - 30 * 3600,
        "go-zero-time": -62_135_596_800.0,  # status written with Go's zero time: never synced
        "no-status": None,
    }
    base = cluster(1)
    template_node, template_cr = next(iter(base.nodes.values())), next(iter(base.terway_nodes.values()))
    kube = replace(base, nodes={n: replace(template_node, name=n) for n in last_sync},
                   terway_nodes={n: replace(template_cr, name=n, last_sync_openapi=t) for n, t in last_sync.items()})
    text = render(state(kube), [node])
    overdue = by_node(text, "terway_node_openapi_sync_overdue_timestamp_seconds")
    assert overdue == {"late": now - day - 47 * 60, "stopped": now - 30 * 3600}
    # Every node's time is still in the per-node family the panels read.
    assert set(by_node(text, "terway_node_last_openapi_sync_timestamp_seconds")) == set(last_sync) - {"no-status"}
    # A minute later the node that drew the longest interval is overdue, with nothing changed in the cluster.
    later = render(ClusterState(now=now + 60, kube=kube), [node])
    assert set(by_node(later, "terway_node_openapi_sync_overdue_timestamp_seconds")) == {"late", "stopped",
                                                                                          "longest-wait"}


def test_unavailable_ips_only_while_above_zero():
    kube = cluster(1)
    name = next(iter(kube.nodes))
    assert set(samples(render(state(kube), [node]), "terway_node_ips")) == {
        (("node", name), ("state", "in_use")), (("node", name), ("state", "idle"))}
    cr = replace(kube.terway_nodes[name], nics=(NodeCRNic("eni-x", "InUse", ipv4_in_use=10, ipv4_free_valid=3),
                                                 NodeCRNic("eni-y", "Detaching", ipv4_free_valid=2)))
    text = render(state(replace(kube, terway_nodes={name: cr})), [node])
    assert by_node(text, "terway_node_ips", state="unavailable") == {name: 2.0}
    assert by_node(text, "terway_node_ips", state="idle") == {name: 3.0}


def _joined(text: str, cloud: CloudSnapshot) -> tuple[dict[str, float], dict[str, float]]:
    """Every node's ENI limit and IP capacity as the rules compute them: the *_override series, else the
    instance type's through terway_node_info's instance_type."""
    types = {dict(k)["node"]: dict(k)["instance_type"] for k in samples(text, "terway_node_info")}
    limits = by_node(text, "terway_node_eni_limit_override")
    capacities = by_node(text, "terway_node_ip_capacity_override")
    for name, instance_type in types.items():
        lim = cloud.instance_types.get(instance_type)
        if lim is not None:
            limits.setdefault(name, float(lim.eni_quantity))
            capacities.setdefault(name, float((lim.eni_quantity - 1) * lim.ips_per_eni))
    return limits, capacities


def test_node_limits_join_back_exactly_from_the_instance_type_and_the_overrides():
    """The removed terway_node_eni_limit / terway_node_ip_capacity are what the rules' join gives, for every
    kind of node: the instance type's, a nodeCap or annotation that says otherwise, prefix mode, exclusive ENI,
    legacy eni_cap_* and an instance type that was not described."""
    from terway_exporter.terway.eniconf import effective_confs
    from terway_exporter.terway.node import node_views

    kube = cluster(8)
    names = sorted(kube.nodes)
    nodes, crs = dict(kube.nodes), dict(kube.terway_nodes)
    crs[names[1]] = replace(crs[names[1]], adapters=3)  # nodeCap says 3 ENIs, the type 4
    nodes[names[2]] = replace(nodes[names[2]], max_available_ip=40)  # eRDMA share taken off by Terway
    crs[names[3]] = replace(crs[names[3]], enable_ip_prefix=True, total_adapters=4, min_pool_size=0, max_pool_size=0)
    nodes[names[4]] = replace(nodes[names[4]], exclusive_eni=True)
    nodes[names[5]] = replace(nodes[names[5]], instance_type="ecs.unknown")
    crs[names[5]] = replace(crs[names[5]], instance_type="ecs.unknown")
    crs[names[6]] = replace(crs[names[6]], adapters=None, ipv4_per_adapter=None)  # nodeCap not filled yet
    nodes[names[7]] = replace(nodes[names[7]], max_available_ip=45)  # the same as the type's
    kube = replace(kube, nodes=nodes, terway_nodes=crs)
    text = render(state(kube, cloud=G7), [node])
    views = {v.name: v for v in node_views(kube, G7, effective_confs(kube))}
    limits, capacities = _joined(text, G7)
    assert limits == {n: float(v.eni_limit) for n, v in views.items() if v.eni_limit is not None}
    assert capacities == {n: float(v.ip_capacity) for n, v in views.items() if v.ip_capacity is not None}
    # Only the nodes that differ carry their own values.
    assert set(by_node(text, "terway_node_eni_limit_override")) == {names[1], names[5]}
    assert set(by_node(text, "terway_node_ip_capacity_override")) == {names[1], names[2], names[3], names[4], names[5]}
    # In legacy IPAM, eni_cap_ratio / eni_cap_shift / max_eni change the capacity: reported per node.
    legacy_conf = {**ENI_CONF, "ipam_type": "", "max_eni": 2}
    legacy = replace(cluster(2), terway_nodes=None,
                     eni_config={**kube.eni_config, "eni_conf": json.dumps(legacy_conf)})
    text = render(state(legacy, cloud=G7), [node])
    views = {v.name: v for v in node_views(legacy, G7, effective_confs(legacy))}
    limits, capacities = _joined(text, G7)
    assert capacities == {n: float(v.ip_capacity) for n, v in views.items()} == dict.fromkeys(views, 30.0)
    assert limits == {n: float(v.eni_limit) for n, v in views.items()}


def test_legacy_node_reports_a_total_of_unknown_state():
    from terway_exporter.model.cloud import Eni, EniCensus

    kube = replace(cluster(1), terway_nodes=None)
    name, n = next(iter(kube.nodes.items()))
    census = EniCensus(counts={}, by_instance={n.instance_id: (
        Eni("eni-p", "InUse", "Primary", "other", private_ips=1),
        Eni("eni-1", "InUse", "Secondary", "terway", private_ips=12))}, taken_at=0.0)
    cloud = CloudSnapshot(census=census, instance_types={"ecs.g7.xlarge": InstanceTypeLimits(
        "ecs.g7.xlarge", eni_quantity=4, ips_per_eni=15)})
    text = render(state(kube, cloud=cloud), [node])
    assert samples(text, "terway_node_ips") == {(("node", name), ("state", "unknown")): 12.0}
    assert by_node(text, "terway_node_enis") == {name: 2.0}
    assert by_node(text, "terway_node_info", ipam_mode="legacy") == {name: 1.0}


def test_prefix_mode_node_reports_its_prefix_addresses_never_in_use_zero():
    kube = cluster(2)
    name, other = sorted(kube.nodes)
    # What Terway v1.17 writes in prefix mode: prefixes on the ENIs, no pod records, spec.pool zeroed.
    prefix_cr = replace(kube.terway_nodes[name], enable_ip_prefix=True, total_adapters=4, min_pool_size=0,
                        max_pool_size=0, nics=(NodeCRNic("eni-x", "InUse", ipv4_free_valid=1,
                                                         ipv4_prefix_addresses=48),))
    text = render(state(replace(kube, terway_nodes={**kube.terway_nodes, name: prefix_cr}), cloud=G7), [node])
    ips = samples(text, "terway_node_ips")
    assert {k: v for k, v in ips.items() if dict(k)["node"] == name} == {(("node", name), ("state", "unknown")): 48.0}
    assert by_node(text, "terway_node_ips", state="in_use") == {other: 10.0}  # the other node is unchanged
    assert by_node(text, "terway_node_info", ipam_mode="prefix") == {name: 1.0}
    assert by_node(text, "terway_node_info", ipam_mode="crd") == {other: 1.0}
    # Its capacity is not the instance type's: reported per node; the other node's is the type's.
    assert by_node(text, "terway_node_ip_capacity_override") == {name: (15 - 1) * 16 * (4 - 1)}
    assert by_node(text, "terway_node_pool_min_ips")[name] == 0.0
    assert by_node(text, "terway_node_enis")[name] == 2.0


def test_nothing_kubernetes_side_without_a_cluster():
    assert render(replace(state(cluster(2)), kube_enabled=False)) == ""


def test_node_collector_covers_5000_nodes():
    # How fast is bench/run.py's business (its 5,000-node run times /metrics); here, that every node is there.
    big = state(cluster(5000))
    text = generate_latest(_Families(list(node.COLLECTORS[0].collect(big))))
    assert text.count(b"\nterway_node_ips{") == 10000  # in_use and idle; unavailable is 0
    assert text.count(b"\nterway_node_info{") == 5000


# ------------------------------------------------------------------------------------ pods and events


def test_waiting_pods_and_network_errors():
    now = 1_700_000_100.0
    kube = replace(
        cluster(0),
        nodes={"n1": KubeNode("n1"), "n2": KubeNode("n2"), "eci": KubeNode("eci", ignored=True)},
        waiting_pods={
            "u1": WaitingPod("n1", 1_700_000_000.0), "u2": WaitingPod("n1", 1_700_000_070.0),
            "u3": WaitingPod("eci", 1_699_000_000.0),
            # No PodReadyToStartContainers: counts only with a recent sandbox network failure.
            "u4": WaitingPod("n2", 1_699_999_000.0, sandbox_ready=None),  # most likely pulling
            "u5": WaitingPod("n2", 1_699_999_500.0, sandbox_ready=None, network_failed_at=now - 30),
            "u6": WaitingPod("n2", 1_699_990_000.0, sandbox_ready=None, network_failed_at=now - 3600),
            # Condition False, but only a volume is pending; with a CNI failure too it counts.
            "u7": WaitingPod("n2", 1_699_980_000.0, volume_wait=True),
            "u8": WaitingPod("n1", 1_699_999_900.0, volume_wait=True, network_failed_at=now - 5),
        },
        network_errors={("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 3,
                        ("other", "FailedCreatePodSandBox"): 1, ("Made.Up", "AllocIPFailed"): 2},
    )
    assert render(state(kube), [pods]) == """\
# HELP terway_pods_waiting_for_network Scheduled Pending pods, not hostNetwork, whose sandbox network is not set up: \
PodReadyToStartContainers False (unless only their volumes are pending), or, without that condition, a recent sandbox \
network failure event. Image pulls do not count. By node.
# TYPE terway_pods_waiting_for_network gauge
terway_pods_waiting_for_network{node="n1"} 3.0
terway_pods_waiting_for_network{node="n2"} 1.0
# HELP terway_pods_waiting_for_network_oldest_seconds Age of the oldest pod on the node waiting for its network, since \
it was scheduled.
# TYPE terway_pods_waiting_for_network_oldest_seconds gauge
terway_pods_waiting_for_network_oldest_seconds{node="n1"} 200.0
terway_pods_waiting_for_network_oldest_seconds{node="n2"} 600.0
# HELP terway_network_errors_total Occurrences of network-related Warning events (event count increments), by the \
error code the message names (closed list, 'other' when none) and the event reason.
# TYPE terway_network_errors_total counter
terway_network_errors_total{code="InvalidVSwitchId.IpNotEnough",reason="AllocIPFailed"} 3.0
terway_network_errors_total{code="other",reason="AllocIPFailed"} 2.0
terway_network_errors_total{code="other",reason="FailedCreatePodSandBox"} 1.0
"""


# ------------------------------------------------------------------------------------ workloads


def _daemon_pod(node_name: str, ready: bool, terway: ContainerStatus) -> PodSummary:
    return PodSummary("kube-system", f"terway-eniip-{node_name}", node=node_name, ready=ready,
                      containers=(terway, ContainerStatus("policy", ready=True)),
                      init_containers=(ContainerStatus("terway-init", ready=True),))


def test_workload_families():
    kube = KubeSnapshot(
        daemonset=WorkloadStatus("terway-eniip", desired=3, available=1, ready=1),
        daemon_pods={
            "a": _daemon_pod("n1", True, ContainerStatus("terway", ready=True, restarts=1)),
            "b": _daemon_pod("n2", False, ContainerStatus("terway", restarts=7, waiting_reason="CrashLoopBackOff",
                                                          last_terminated_reason="Error")),
            "c": _daemon_pod("n3", False, ContainerStatus("terway", waiting_reason="ImagePullBackOff")),
        },
        crash_causes={"n2": "Forbidden.RAM"},
        controlplane=WorkloadStatus("terway-controlplane", desired=1, available=0),
        controlplane_lease=LeaseStatus(holder="cp-0", renew_time=1_700_000_050.0),
        controlplane_config={"ctrl-config.yaml": "degradation: l0\n"},
        coredns=WorkloadStatus("coredns", desired=2, available=2, ready=2),
    )
    assert render(state(kube), [workloads]) == """\
# HELP terway_daemon_pods terway-eniip pods: desired (DaemonSet desiredNumberScheduled), ready, not_ready (every pod \
not Ready, crash-looping ones included), crash_looping (a container waiting in CrashLoopBackOff).
# TYPE terway_daemon_pods gauge
terway_daemon_pods{state="desired"} 3.0
terway_daemon_pods{state="ready"} 1.0
terway_daemon_pods{state="not_ready"} 2.0
terway_daemon_pods{state="crash_looping"} 1.0
# HELP terway_daemon_container_waiting 1 while a terway-eniip container waits, by reason (CrashLoopBackOff, \
ImagePullBackOff, ...).
# TYPE terway_daemon_container_waiting gauge
terway_daemon_container_waiting{container="terway",node="n2",reason="CrashLoopBackOff"} 1.0
terway_daemon_container_waiting{container="terway",node="n3",reason="ImagePullBackOff"} 1.0
# HELP terway_daemon_crash_cause 1 when the previous log of the node's crashing terway container names a known error \
code.
# TYPE terway_daemon_crash_cause gauge
terway_daemon_crash_cause{code="Forbidden.RAM",node="n2"} 1.0
# HELP terway_controlplane_replicas terway-controlplane Deployment replicas: desired and available.
# TYPE terway_controlplane_replicas gauge
terway_controlplane_replicas{state="desired"} 1.0
terway_controlplane_replicas{state="available"} 0.0
# HELP terway_controlplane_in_cluster 1 when the terway-controlplane Deployment runs in this cluster, 0 when it is not \
visible (hosted by ACK managed, or absent).
# TYPE terway_controlplane_in_cluster gauge
terway_controlplane_in_cluster 1.0
# HELP terway_controlplane_lease_renew_timestamp_seconds Last renewal of the terway-controlplane leader Lease \
(spec.renewTime).
# TYPE terway_controlplane_lease_renew_timestamp_seconds gauge
terway_controlplane_lease_renew_timestamp_seconds 1.70000005e+09
# HELP terway_controlplane_degradation Controlplane degradation level from ctrl-config.yaml, as Terway applies it \
(state set): l0 makes no OpenAPI calls, l1 allocates but never syncs or releases; any value but exactly l0 or l1 \
(e.g. L0) is none.
# TYPE terway_controlplane_degradation gauge
terway_controlplane_degradation{level="none"} 0.0
terway_controlplane_degradation{level="l0"} 1.0
terway_controlplane_degradation{level="l1"} 0.0
# HELP terway_cluster_dns_replicas CoreDNS Deployment replicas: desired and available.
# TYPE terway_cluster_dns_replicas gauge
terway_cluster_dns_replicas{state="desired"} 2.0
terway_cluster_dns_replicas{state="available"} 2.0
"""


def test_families_wait_for_their_source_first_read():
    from terway_exporter.model.status import SourceStatus

    groups = ("kube_workloads", "kube_pods", "kube_configmaps", "kube_leases")
    registered = {g: SourceStatus(g) for g in groups}
    never_read = {g: SourceStatus(g, attempted=True, up=False, error="HTTP 401") for g in groups}
    for sources in (registered, never_read):
        text = render(state(cluster(1), sources=sources), [workloads, config])
        assert text == "", text  # not "0 daemon pods", "controlplane hosted" or "every check passes"
    read_once = {g: SourceStatus(g, attempted=True, up=False, last_success=1.0) for g in groups}
    text = render(state(cluster(1), sources=read_once), [workloads, config])
    assert samples(text, "terway_controlplane_in_cluster") == {(): 0.0}
    assert samples(text, "terway_daemon_pods")
    assert samples(text, "terway_config_problems")


def test_hosted_controlplane():
    text = render(state(KubeSnapshot()), [workloads])
    assert samples(text, "terway_controlplane_in_cluster") == {(): 0.0}
    for absent in ("terway_controlplane_replicas", "terway_controlplane_degradation",
                   "terway_controlplane_lease_renew_timestamp_seconds", "terway_cluster_dns_replicas"):
        assert samples(text, absent) == {}, absent


# ------------------------------------------------------------------------------------ configuration


def test_config_info_and_every_check_reported():
    text = render(state(cluster(1)), [config])
    info = samples(text, "terway_config_info")
    assert info == {(("eniip_virtual_type", "veth"), ("ip_stack", "ipv4"), ("ipam_type", "crd"),
                     ("network_policy", "enabled"), ("network_policy_provider", "ebpf"), ("trunking", "true"),
                     ("vswitch_selection_policy", "ordered")): 1.0}
    problems = samples(text, "terway_config_problems")
    checks = {dict(k)["check"] for k in problems}
    assert {"eni_conf_unparsable", "vswitch_not_found", "vswitch_other_vpc", "security_group_not_found",
            "zone_without_vswitch", "service_cidr_mismatch", "pool_min_above_max",
            "pool_min_above_capacity", "plaintext_credentials"} <= checks
    assert set(problems.values()) == {0.0}
    assert samples(text, "terway_config_problem") == {}


def test_config_problem_series_name_the_objects():
    conf = dict(ENI_CONF, access_key="LTAI5tEXAMPLE", min_pool_size=9)
    kube = replace(cluster(1), eni_config={"eni_conf": json.dumps(conf), "10-terway.conf": json.dumps(CNI_CONF)})
    text = render(state(kube), [config])
    problems = {dict(k)["check"]: v for k, v in samples(text, "terway_config_problems").items() if v}
    assert problems == {"plaintext_credentials": 1.0, "pool_min_above_max": 1.0}
    assert set(samples(text, "terway_config_problem")) == {
        (("check", "plaintext_credentials"), ("object", "eni-config/eni_conf")),
        (("check", "pool_min_above_max"), ("object", "eni-config/eni_conf")),
    }
    assert "LTAI5t" not in text


def test_unparsable_eni_conf_drops_the_info_but_keeps_the_checks():
    kube = replace(cluster(1), eni_config={"eni_conf": "{", "10-terway.conf": json.dumps(CNI_CONF)})
    text = render(state(kube), [config])
    assert samples(text, "terway_config_info") == {}
    assert samples(text, "terway_config_problem") == {
        (("check", "eni_conf_unparsable"), ("object", "eni-config/eni_conf")): 1.0}


def test_exposition_passes_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool must be installed (scripts/test.sh installs it)"
    kube = replace(cluster(3), daemon_pods={"a": _daemon_pod("n1", True, ContainerStatus("terway"))},
                   daemonset=WorkloadStatus("terway-eniip", desired=1),
                   network_errors={("Throttling", "AllocIPFailed"): 1})
    text = render(state(kube))
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_node_views_are_recomputed_only_for_the_nodes_that_changed():
    # Under churn each watch event makes a new snapshot; the views of unchanged nodes are the same objects
    # (so their parts are not re-rendered), a changed Node CR gives a new view, a changed config gives all new.
    from terway_exporter.terway.node import cached_node_views

    kube = cluster(3)
    first = {v.name: v for v in cached_node_views(state(kube, cloud=G7))}
    changed = "cn-hangzhou.10.0.0.1"
    crs = dict(kube.terway_nodes)
    crs[changed] = replace(crs[changed], nics=(NodeCRNic("eni-x", "InUse", ipv4_in_use=13, ipv4_free_valid=0),))
    second = {v.name: v for v in cached_node_views(state(replace(kube, terway_nodes=crs), cloud=G7))}
    assert [n for n in first if second[n] is not first[n]] == [changed]
    # New instance-type limits (the cloud source publishes new ones only when they differ): every view anew.
    bigger = replace(G7, instance_types={"ecs.g7.xlarge": InstanceTypeLimits("ecs.g7.xlarge", eni_quantity=5,
                                                                             ips_per_eni=15)})
    again = {v.name: v for v in cached_node_views(state(replace(kube, terway_nodes=crs), cloud=bigger))}
    assert all(again[n] is not second[n] for n in second) and again[changed].type_eni_limit == 5
    second = {v.name: v for v in cached_node_views(state(replace(kube, terway_nodes=crs), cloud=G7))}
    assert second[changed].ips.idle == 0 and first[changed].ips.idle == 3
    pools = json.dumps({**ENI_CONF, "min_pool_size": 2})
    reconfigured = replace(kube, terway_nodes=crs, eni_config={**kube.eni_config, "eni_conf": pools})
    third = {v.name: v for v in cached_node_views(state(reconfigured, cloud=G7))}
    assert all(third[n] is not second[n] for n in third) and set(third) == set(first)
