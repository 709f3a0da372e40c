"""terway_capacity_*: IP headroom per zone and nodes addable, as `terway-exporter capacity` computes it.

The numbers come from capacity.py (Terway's pool and ENI accounting, v1.17.5): pods that can still
get an IP on today's nodes of each zone, and how many more nodes of each instance type in use fit
before the zone's configured vSwitches or the region's ENI quota run out, each new node running the
average pods of today's nodes plus its min_pool_size. Absent until the vSwitches, the Nodes and the
ConfigMaps were read once (before that, empty snapshots would read as "no room").
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Metric

from ..capacity import ENI_QUOTA, NODE_CAPACITY, VSWITCH_IPS, evaluate
from ..model.state import ClusterState, synced
from .base import Collector
from .families import Family

ZONE_PODS = Family(
    "terway_capacity_zone_pods",
    "Pods that can still get an IP on the zone's nodes today: the least of the nodes' IP capacity left, their "
    "idle IPs plus the free IPs of the zone's configured vSwitches, and the IPs reachable within the region's "
    "ENI quota (as if the zone had it alone).",
    ("zone_id",),
)
ZONE_PODS_BY_LIMIT = Family(
    "terway_capacity_zone_pods_by_limit",
    "The pods each limit alone lets the zone's nodes take: node_capacity, vswitch_ips, eni_quota (absent when "
    "the quota is not known); terway_capacity_zone_pods is the least.",
    ("zone_id", "limit"),
)
ZONE_NODES = Family(
    "terway_capacity_zone_nodes_addable",
    "New nodes of the instance type the zone can take before its configured vSwitches or the region's ENI quota "
    "run out, each taking terway_capacity_new_node_ips IPs and terway_capacity_new_node_enis ENIs "
    "(+Inf when a new node takes neither).",
    ("zone_id", "instance_type"),
)
NODES_BEFORE_QUOTA = Family(
    "terway_capacity_nodes_before_eni_quota",
    "New nodes of the instance type, all zones together, before the region's ENI quota is used up.",
    ("instance_type",),
)
NEW_NODE_IPS = Family(
    "terway_capacity_new_node_ips",
    "Pod IPs a new node of the instance type takes: min_pool_size plus terway_capacity_new_node_pods, up to "
    "its IP capacity.",
    ("instance_type",),
)
NEW_NODE_ENIS = Family(
    "terway_capacity_new_node_enis",
    "Secondary ENIs a new node of the instance type creates for those IPs (each counts against the ENI quota).",
    ("instance_type",),
)
NEW_NODE_PODS = Family(
    "terway_capacity_new_node_pods",
    "Pods a new node is assumed to run: the average pod IPs in use per node today.",
)
LIMITS = (NODE_CAPACITY, VSWITCH_IPS, ENI_QUOTA)
SOURCES = ("cloud_vswitches", "kube_nodes", "kube_configmaps")


def collect_capacity(state: ClusterState) -> Iterable[Metric]:
    if not synced(state, *SOURCES) or not state.cloud.vswitches:
        return []
    capacity = evaluate(state)
    by_limit = []
    for zone in capacity.zones:
        values = {NODE_CAPACITY: zone.node_room, VSWITCH_IPS: zone.idle + zone.vswitch_free,
                  ENI_QUOTA: zone.quota_room}
        by_limit += [((zone.zone_id, limit), float(value)) for limit in LIMITS if (value := values[limit]) is not None]
    new = capacity.new_nodes
    return [
        ZONE_PODS.build_rows(((z.zone_id,), float(z.pods)) for z in capacity.zones),
        ZONE_PODS_BY_LIMIT.build_rows(by_limit),
        ZONE_NODES.build_rows(((a.zone_id, a.instance_type), float(a.nodes)) for a in capacity.addable),
        NODES_BEFORE_QUOTA.build_rows(((t,), float(n)) for t, n in capacity.before_quota.items()
                                      if capacity.quota.remaining is not None),
        NEW_NODE_IPS.build_rows(((t,), float(n.ips)) for t, n in new.items()),
        NEW_NODE_ENIS.build_rows(((t,), float(n.enis)) for t, n in new.items()),
        NEW_NODE_PODS.build([({}, float(capacity.pods_per_node))]),
    ]


COLLECTORS = (Collector("terway_capacity", collect_capacity, frozenset({"kube", "cloud", "sources"})),)
