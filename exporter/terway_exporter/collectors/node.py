"""terway_node_*: what Terway holds on each node (Node CRs and core Nodes; the ECS census in legacy IPAM).

One `NodeView` per managed node (`terway.node`), then one sample per family. A node that leaves
the cluster, or is labelled ignore-by-terway, simply has no view, so its series disappear.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

from prometheus_client import Metric
from prometheus_client.samples import Sample

from ..model.state import ClusterState
from ..terway.node import IPAM_LEGACY, IPAM_PREFIX, NodeView, cached_node_views
from .base import Collector, Parts
from .families import Family

NODE = ("node",)

INFO = Family(
    "terway_node_info",
    "1 per node Terway manages; ipam_mode is crd (centralised IPAM, Node CR), prefix (centralised IPAM "
    "with IP prefixes: the daemon assigns pod IPs, the Node CR has no pod records) or legacy (node-local).",
    ("node", "instance_id", "instance_type", "zone_id", "ipam_mode"),
)
IPS = Family(
    "terway_node_ips",
    "Pod IPs held on the node's secondary ENIs by state: in_use (a pod holds it), idle (Valid, no pod, "
    "on an InUse schedulable ENI: Terway's pool), unavailable (anything else; only while above 0); unknown "
    "alone in legacy IPAM (the ECS census total) and in prefix mode (addresses of the Valid/Frozen IPv4 "
    "prefixes), where in-use and idle are not visible.",
    ("node", "state"),
)
IP_STATES = ("in_use", "idle", "unavailable")
ALWAYS_SHOWN_IP_STATES = frozenset({"in_use", "idle"})  # the alerts compare them with 0; unavailable only when > 0

# Families with one sample per node labelled {node}: (family, value of a view or None to skip).
# Every managed node has at most 7 series by default: terway_node_info, terway_node_ips in_use and idle, and the
# four below that always have a value. The node's ENI limit and IP capacity come from its instance type
# (terway_instance_type_* joined through terway_node_info's instance_type label); the *_override families
# carry a node's own value only where it differs from that. The four condition families exist only while the
# condition is bad (the last two are what two alerts used to compute over every node: NodeView says why).
# docs/metrics.md ("What moved") has the queries that give the removed families back.
PER_NODE: tuple[tuple[Family, Callable[[NodeView], float | bool | None]], ...] = (
    (
        Family("terway_node_enis", "ENIs attached to the node, the primary included.", NODE),
        lambda v: v.enis,
    ),
    (
        Family(
            "terway_node_pool_min_ips",
            "min_pool_size in force on the node (Node CR spec.pool, else eni_conf merged with the "
            "node's dynamic config; legacy IPAM caps it to max_pool_size, as terwayd does).",
            NODE,
        ),
        lambda v: v.pool_min,
    ),
    (
        Family(
            "terway_node_pool_max_ips",
            "max_pool_size in force on the node (Node CR spec.pool, else eni_conf merged with the "
            "node's dynamic config).",
            NODE,
        ),
        lambda v: v.pool_max,
    ),
    (
        Family(
            "terway_node_last_openapi_sync_timestamp_seconds",
            "Node CR status.lastSyncOpenAPITime: last full sync of the node's ENIs with the cloud API.",
            NODE,
        ),
        lambda v: v.last_sync_openapi,
    ),
    (
        Family(
            "terway_node_eni_limit_override",
            "ENIs the node allows, the primary included, only where terway_instance_type_eni_limit of its "
            "instance_type does not give it: Node CR spec.nodeCap.adapters that differs from EniQuantity, or an "
            "instance type not described (yet).",
            NODE,
        ),
        lambda v: v.own_eni_limit,
    ),
    (
        Family(
            "terway_node_ip_capacity_override",
            "Most pod IPs the node can hold, only where its instance type's (terway_instance_type_eni_limit - 1) "
            "x terway_instance_type_ips_per_eni does not give it: annotation k8s.aliyun.com/max-available-ip or "
            "Node CR spec.nodeCap that differs, prefix mode, exclusive ENI, legacy eni_cap_ratio/eni_cap_shift/"
            "max_eni, or an instance type not described (yet).",
            NODE,
        ),
        lambda v: v.own_ip_capacity,
    ),
    (
        Family(
            "terway_node_insufficient_ip",
            "1 while the Node condition SufficientIP is False; absent while it is True or not set.",
            NODE,
        ),
        lambda v: 1 if v.sufficient_ip is False else None,
    ),
    (
        Family(
            "terway_node_cni_not_ready",
            "1 while the kubelet reports the network plugin or CNI config not ready; absent otherwise.",
            NODE,
        ),
        lambda v: 1 if v.cni_ready is False else None,
    ),
    (
        Family(
            "terway_node_eni_limit_reached",
            "1 while every ENI the node allows is attached (terway_node_enis >= its ENI limit) and it has no idle "
            "IP; absent otherwise, and on legacy and prefix-mode nodes (idle IPs not known).",
            NODE,
        ),
        lambda v: 1 if v.eni_limit_reached else None,
    ),
    (
        Family(
            "terway_node_ip_pool_below_minimum",
            "1 while the node holds fewer idle IPs than its min_pool_size although its IP capacity minus the IPs "
            "in use leaves room for min_pool_size, and min_pool_size is not above max_pool_size; absent otherwise.",
            NODE,
        ),
        lambda v: 1 if v.ip_pool_below_minimum else None,
    ),
)


FAMILIES = (INFO, IPS, *(family for family, _ in PER_NODE))

# Cluster-level summaries of the same views, for the rules that used to count or diff terway_node_info: one
# series per zone and one per cluster instead of a read of every node at each evaluation (the slowest rule group
# at 5,000 and 10,000 nodes, docs/performance.md), and still there under --no-node-metrics.
ZONE_NODES = Family(
    "terway_zone_nodes",
    "Nodes Terway manages in the zone (count of terway_node_info by zone_id).",
    ("zone_id",),
)
NEWEST_NODE = Family(
    "terway_nodes_newest_creation_timestamp_seconds",
    "metadata.creationTimestamp of the newest node Terway manages: a node created in the last minutes is still "
    "booting (terway-init writes the CNI config), and its pods' NetworkNotReady sandbox failures are expected.",
)

# Terway schedules a Node CR's next full sync with the cloud 12 to 24 h after the last one (nextSyncOpenAPITime =
# now + wait.Jitter(multiIPNodeSyncPeriod, 1), syncWithAPI in pkg/controller/multi-ip/node/pool.go; the period's
# default is 12h, types/controlplane/config_default.go, AliyunContainerService/terway v1.17.5). A last sync older
# than the longest wait is overdue; every healthy node's is younger.
OPENAPI_SYNC_LONGEST_WAIT_SECONDS = 24 * 3600
SYNC_OVERDUE = Family(
    "terway_node_openapi_sync_overdue_timestamp_seconds",
    "Node CR status.lastSyncOpenAPITime, only while it is over 24 hours old (Terway waits 12 to 24 hours between "
    "full syncs); absent otherwise. TerwayOpenAPISyncStale reads it: the few overdue nodes, not every node's "
    "terway_node_last_openapi_sync_timestamp_seconds.",
    NODE,
)


def node_parts(state: ClusterState) -> Parts:
    """One part per managed node, in name order. A part's input is the node's view: `cached_node_views`
    keeps a node's view object while nothing it reads changed, so only changed nodes re-render."""
    if not state.kube_enabled:
        return Parts(shared=(), empty=(), items=())
    items = [(view.name, (view,), partial(_node_samples, view)) for view in cached_node_views(state)]
    return Parts(shared=(), empty=tuple(family.build() for family in FAMILIES), items=items)


def collect_nodes(state: ClusterState) -> Iterable[Metric]:
    parts = node_parts(state)
    merged = [metric.samples for metric in parts.empty]
    for _, _, build in parts.items:
        for samples, node_samples in zip(merged, build(), strict=True):  # one list per family
            samples.extend(node_samples)
    return list(parts.empty)


def _node_samples(view: NodeView) -> list[list[Sample]]:
    """This node's samples, one list per family of FAMILIES."""
    labels = {"node": view.name}  # shared by all of this node's single-label samples
    info = [INFO.sample({"node": view.name, "instance_id": view.instance_id, "instance_type": view.instance_type,
                         "zone_id": view.zone_id, "ipam_mode": view.ipam_mode}, 1.0)]
    ips: list[Sample] = []
    _ip_samples(view, ips)
    out = [info, ips]
    for family, value_of in PER_NODE:
        value = value_of(view)
        out.append([] if value is None else [family.sample(labels, float(value))])
    return out


def _ip_samples(view: NodeView, out: list[Sample]) -> None:
    counts = view.ips
    if counts is None:
        return
    if view.ipam_mode in (IPAM_LEGACY, IPAM_PREFIX):  # in-use and idle not visible: never report 0
        out.append(IPS.sample({"node": view.name, "state": "unknown"}, float(counts.unknown)))
        return
    for state, value in zip(IP_STATES, (counts.in_use, counts.idle, counts.unavailable), strict=True):
        if value or state in ALWAYS_SHOWN_IP_STATES:
            out.append(IPS.sample({"node": view.name, "state": state}, float(value)))


def collect_node_summary(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled:  # without a cluster there is nothing Kubernetes-side, not even empty families
        return []
    views = cached_node_views(state)
    zones = Counter(view.zone_id for view in views)
    created = [view.created for view in views if view.created is not None]
    return [
        ZONE_NODES.build_rows(((zone,), float(count)) for zone, count in sorted(zones.items())),
        NEWEST_NODE.build([({}, max(created))] if created else []),
    ]


def collect_sync_overdue(state: ClusterState) -> Iterable[Metric]:
    """Nodes whose last full sync is overdue, by age at `now`: a node crosses the line with no change in its
    Node CR, so this is the one node family that follows the clock rather than the cached per-node parts."""
    if not state.kube_enabled:
        return []
    cutoff = state.now - OPENAPI_SYNC_LONGEST_WAIT_SECONDS
    return [SYNC_OVERDUE.build_rows(
        ((view.name,), view.last_sync_openapi) for view in cached_node_views(state)
        # Above 0: Go's zero time (-62135596800), or a status never written, is a node not synced yet.
        if view.last_sync_openapi is not None and 0 < view.last_sync_openapi < cutoff
    )]


COLLECTORS = (
    Collector("terway_nodes", collect_nodes, frozenset({"kube", "cloud"}), parts=node_parts),
    Collector("terway_node_summary", collect_node_summary, frozenset({"kube", "cloud"})),
    Collector("terway_node_sync_overdue", collect_sync_overdue, frozenset({"kube", "cloud", "now"})),
)
