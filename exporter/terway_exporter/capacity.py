"""IP capacity headroom: how many more pods can get an IP, how many more nodes fit, and what-ifs.

A pure function of one ClusterState, for `terway-exporter capacity` and the terway_capacity_*
metrics. It follows Terway's own accounting (AliyunContainerService/terway v1.17.5):

* A node holds at most its IP capacity (`terway.node.ip_capacity`: the max-available-ip annotation,
  else the Node CR's nodeCap, else the instance type: `(EniQuantity - 1) x EniPrivateIpAddressQuantity`
  for secondary ENIs, since the primary ENI carries no pod IP, pkg/controller/node/node.go). Each
  secondary ENI holds up to `EniPrivateIpAddressQuantity` addresses, its own primary address included,
  all usable by pods ("the combined count (primary IP + secondary IPs + prefixes) must not exceed
  IPv4PerAdapter", assignEniWithOptions in pkg/controller/multi-ip/node/pool.go).
* A new node takes `min_pool_size` idle IPs plus one per pod: the controlplane allocates
  `podDemand + max(0, MinPoolSize + podDemand - idle)` (addIP, same file); legacy terwayd keeps the
  same floor, capped to `max_pool_size` (daemon/config.go getPoolConfig). Prefix mode and
  exclusive-ENI nodes keep no pool (pkg/eni/node_reconcile.go); a prefix-mode node takes whole /28
  prefixes (16 addresses), up to `EniPrivateIpAddressQuantity - 1` per ENI.
* Every secondary ENI counts against the region's ENI quota; the primary ENI does not
  (CreateNetworkInterface's quota is the ENIs an account creates per region). With
  `source="vpc_census"` the usage counted is the VPC's only, so the ENIs left are an upper bound.
* New IPs come from the vSwitches configured for the node's zone (terway:zone_available_ip_addresses).

The headroom of the existing nodes of a zone is the least of three limits: the nodes' IP capacity
left (capacity minus IPs in use), the idle IPs they hold plus the free IPs of the zone's vSwitches,
and the IPs reachable within the ENI quota (free slots on attached ENIs, then whole new ENIs while
the quota lasts). Legacy-IPAM and prefix-mode nodes do not show which IPs pods use: what they hold
counts as in use, so their headroom is a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .model.cloud import InstanceTypeLimits
from .model.kube import KubeNode, TerwayNodeCR
from .model.state import ClusterState
from .terway.eniconf import ENI_CONFIG_NAME, EniConf, configured_vswitches, effective_confs
from .terway.node import (
    IPAM_CRD,
    IPAM_LEGACY,
    IPAM_PREFIX,
    NodeView,
    cached_node_views,
    ip_capacity,
    pool_bounds,
)

PREFIX_SIZE = 16  # a /28 IPv4 prefix
# Limits, in the order they are named when two allow the same number.
VSWITCH_IPS, ENI_QUOTA, NODE_CAPACITY = "vswitch_ips", "eni_quota", "node_capacity"


@dataclass(frozen=True, slots=True)
class Quota:
    quota: int | None
    used: int | None
    source: str | None  # quota_center or vpc_census

    @property
    def remaining(self) -> int | None:
        if self.quota is None or self.used is None:
            return None
        return max(self.quota - self.used, 0)


@dataclass(frozen=True, slots=True)
class ZoneHeadroom:
    zone_id: str
    nodes: int
    vswitch_ids: tuple[str, ...]  # configured for the zone and known to the cloud
    vswitch_free: int
    idle: int  # idle IPs the zone's nodes hold (centralised IPAM)
    node_room: int  # pod IPs the nodes can still hold: capacity minus IPs in use
    quota_room: int | None  # IPs reachable within the ENI quota (idle included); None: quota unknown
    pods: int  # more pods that can get an IP: the least of the limits
    limit: str  # the limit that gives `pods`
    unknown_nodes: int = 0  # nodes whose capacity or IPs are not known, left out


@dataclass(frozen=True, slots=True)
class NewNode:
    """What one new node of an instance type takes, as Terway would allocate for it."""

    instance_type: str
    ipam_mode: str
    ip_capacity: int
    eni_limit: int  # EniQuantity, the primary included
    ips_per_eni: int
    pods: int  # pods it is assumed to run
    pool_min: int
    ips: int  # pod IPs it holds: min(capacity, pods + pool_min)
    addresses: int  # vSwitch addresses those take (whole /28s in prefix mode)
    enis: int  # secondary ENIs it creates (each counts against the quota)

    @property
    def pods_without_ip(self) -> int:
        return max(self.pods - self.ip_capacity, 0)


@dataclass(frozen=True, slots=True)
class Addable:
    """How many more nodes of a type a zone can take, and what stops it."""

    zone_id: str
    instance_type: str
    nodes: float  # math.inf when neither limit applies (a node that takes no IP and no ENI)
    limit: str
    by_vswitch: float
    by_quota: float


@dataclass(frozen=True, slots=True)
class Capacity:
    zones: tuple[ZoneHeadroom, ...]
    quota: Quota
    pods_per_node: int  # the pods a new node is assumed to run
    pods_per_node_source: str  # how that number was chosen
    new_nodes: dict[str, NewNode] = field(default_factory=dict)  # instance type ->
    addable: tuple[Addable, ...] = ()
    before_quota: dict[str, float] = field(default_factory=dict)  # instance type -> nodes before the quota


def _per_eni(view: NodeView, limits: InstanceTypeLimits | None, cr: TerwayNodeCR | None) -> int | None:
    if cr is not None and cr.ipv4_per_adapter:
        return cr.ipv4_per_adapter
    return limits.ips_per_eni if limits else None


def _node_headroom(view: NodeView, ipe: int | None) -> tuple[int, int, int, list[int]] | None:
    """(room, idle, IPs on attached ENIs' free slots, new-ENI chunks) or None when unknown."""
    if view.ip_capacity is None or view.ips is None:
        return None
    if view.ipam_mode == IPAM_CRD:
        in_use, idle = view.ips.in_use, view.ips.idle
        held = view.ips.in_use + view.ips.idle + view.ips.unavailable
    else:  # legacy / prefix: which held IPs pods use is not visible; count them all as in use
        in_use, idle = view.ips.unknown, 0
        held = view.ips.unknown
    room = max(view.ip_capacity - in_use, 0)
    needed = max(room - idle, 0)
    if not ipe or view.enis is None:
        return room, min(idle, room), needed, []
    slots = max((view.enis - 1) * ipe - held, 0)
    on_attached = min(needed, slots)
    rest = needed - on_attached
    chunks = [ipe] * (rest // ipe) + ([rest % ipe] if rest % ipe else [])
    return room, min(idle, room), on_attached, chunks


def _least(limits: dict[str, float]) -> tuple[float, str]:
    """The smallest bound and its limit; on a tie the nodes' own capacity is named first (an outside
    limit that allows exactly as much stops nothing), then the vSwitch IPs, then the quota."""
    order = (NODE_CAPACITY, VSWITCH_IPS, ENI_QUOTA)
    best = min(limits.values())
    return best, next(name for name in order if name in limits and limits[name] == best)


def zone_headrooms(state: ClusterState, views: list[NodeView] | None = None) -> tuple[ZoneHeadroom, ...]:
    kube, cloud = state.kube, state.cloud
    if views is None:
        views = cached_node_views(state)
    configured = {v for v, _ in configured_vswitches(kube)}
    vswitches: dict[str, list] = {}
    for vsw in sorted(cloud.vswitches.values(), key=lambda v: v.vswitch_id):
        if vsw.vswitch_id in configured:
            vswitches.setdefault(vsw.zone_id, []).append(vsw)
    by_zone: dict[str, list[NodeView]] = {}
    for view in views:
        if view.zone_id:
            by_zone.setdefault(view.zone_id, []).append(view)
    remaining = quota_of(state).remaining
    crs = kube.terway_nodes or {}
    zones = []
    for zone in sorted(set(vswitches) | set(by_zone)):
        free = sum(v.available_ips for v in vswitches.get(zone, ()))
        room = idle = attached = unknown = 0
        chunks: list[int] = []
        for view in by_zone.get(zone, ()):
            type_limits = cloud.instance_types.get(view.instance_type)
            node = _node_headroom(view, _per_eni(view, type_limits, crs.get(view.name)))
            if node is None:
                unknown += 1
                continue
            room += node[0]
            idle += node[1]
            attached += node[2]
            chunks += node[3]
        bounds: dict[str, float] = {NODE_CAPACITY: room, VSWITCH_IPS: idle + free}
        quota_room = None
        if remaining is not None:
            quota_room = idle + attached + sum(sorted(chunks, reverse=True)[:remaining])
            bounds[ENI_QUOTA] = quota_room
        pods, limit = _least(bounds)
        zones.append(ZoneHeadroom(
            zone_id=zone, nodes=len(by_zone.get(zone, ())),
            vswitch_ids=tuple(v.vswitch_id for v in vswitches.get(zone, ())), vswitch_free=free, idle=idle,
            node_room=room, quota_room=quota_room, pods=int(pods), limit=limit,
            unknown_nodes=unknown))
    return tuple(zones)


def quota_of(state: ClusterState) -> Quota:
    cloud = state.cloud
    return Quota(cloud.eni_quota, cloud.eni_quota_usage, cloud.eni_quota_usage_source)


def default_pods_per_node(views: list[NodeView]) -> tuple[int, str]:
    """The pods a new node is assumed to run: the average of today's nodes."""
    counts = []
    for view in views:
        if view.ips is None:
            continue
        counts.append(view.ips.in_use if view.ipam_mode == IPAM_CRD else view.ips.unknown)
    if not counts:
        return 0, "no node shows its pod IPs"
    average = math.ceil(sum(counts) / len(counts))
    return average, f"the average of the {len(counts)} node(s) today"


def new_node(state: ClusterState, instance_type: str, pods: int) -> NewNode | None:
    """What one new node of `instance_type` takes under eni-config, or None when its limits are unknown."""
    limits = state.cloud.instance_types.get(instance_type)
    if limits is None or limits.ips_per_eni <= 0:
        return None
    conf = effective_confs(state.kube).get(ENI_CONFIG_NAME)
    conf = conf if isinstance(conf, EniConf) else None
    centralised = state.kube.terway_nodes is not None and (conf is None or conf.centralized_ipam)
    prefix = centralised and conf is not None and conf.enable_ip_prefix
    mode = IPAM_PREFIX if prefix else IPAM_CRD if centralised else IPAM_LEGACY
    cr = None
    if centralised:  # the Node CR Terway creates for it: nodeCap from the instance type
        cr = TerwayNodeCR(name="", adapters=limits.eni_quantity, total_adapters=limits.eni_quantity,
                          ipv4_per_adapter=limits.ips_per_eni, enable_ip_prefix=prefix)
    capacity = ip_capacity(KubeNode(name=""), cr, limits, conf) or 0
    pool_min, pool_max = (0, 0) if prefix else pool_bounds(None, conf, limits)
    pool_min = pool_min or 0
    if mode == IPAM_LEGACY and pool_max is not None:
        pool_min = min(pool_min, pool_max)
    if prefix:
        ips = min(capacity, pods)
        prefixes = math.ceil(ips / PREFIX_SIZE)
        addresses = prefixes * PREFIX_SIZE
        enis = math.ceil(prefixes / max(limits.ips_per_eni - 1, 1))
    else:
        ips = min(capacity, pods + pool_min)
        addresses = ips
        enis = math.ceil(ips / limits.ips_per_eni)
    return NewNode(instance_type=instance_type, ipam_mode=mode, ip_capacity=capacity,
                   eni_limit=limits.eni_quantity, ips_per_eni=limits.ips_per_eni, pods=pods, pool_min=pool_min,
                   ips=ips, addresses=addresses, enis=enis)


def _fit(free: int | None, each: int) -> float:
    if each <= 0 or free is None:
        return math.inf
    return float(free // each)


def evaluate(state: ClusterState, pods_per_node: int | None = None,
             instance_types: frozenset[str] | None = None) -> Capacity:
    views = cached_node_views(state)  # the views the findings use, computed once per snapshot
    zones = zone_headrooms(state, views)
    quota = quota_of(state)
    if pods_per_node is None:
        pods, source = default_pods_per_node(views)
    else:
        pods, source = pods_per_node, "--pods-per-node"
    if instance_types is None:
        instance_types = frozenset(v.instance_type for v in views if v.instance_type)
    new = {t: n for t in sorted(instance_types) if (n := new_node(state, t, pods)) is not None}
    addable, before_quota = [], {}
    for instance_type, node in new.items():
        by_quota = _fit(quota.remaining, node.enis)
        before_quota[instance_type] = by_quota
        for zone in zones:
            if not zone.vswitch_ids:
                continue  # no configured vSwitch: Terway would fall back to the node's own vSwitch
            by_vswitch = _fit(zone.vswitch_free, node.addresses)
            count, limit = _least({VSWITCH_IPS: by_vswitch, ENI_QUOTA: by_quota})
            addable.append(Addable(zone.zone_id, instance_type, count, limit, by_vswitch, by_quota))
    return Capacity(zones=zones, quota=quota, pods_per_node=pods, pods_per_node_source=source,
                    new_nodes=new, addable=tuple(addable), before_quota=before_quota)


# ------------------------------------------------------------------------------------ what-if


@dataclass(frozen=True, slots=True)
class LimitCheck:
    limit: str  # vswitch_ips (one per zone), eni_quota, node_capacity
    scope: str  # the zone, the region, or the instance type
    needed: int  # addresses, ENIs, or IPs per node
    available: int | None  # None: unknown
    nodes_needed: int
    nodes_allowed: float  # how many of `nodes_needed` it lets through
    note: str = ""

    @property
    def fits(self) -> bool:
        return self.nodes_allowed >= self.nodes_needed


@dataclass(frozen=True, slots=True)
class WhatIf:
    count: int
    node: NewNode
    placement: dict[str, int]  # zone -> new nodes
    checks: tuple[LimitCheck, ...]
    pods_per_node_source: str

    @property
    def fits(self) -> bool:
        return all(c.fits for c in self.checks)

    @property
    def first_hit(self) -> LimitCheck | None:
        """The limit that stops the scale-out soonest (the smallest share of its nodes let through)."""
        failing = [c for c in self.checks if not c.fits]
        return min(failing, key=lambda c: c.nodes_allowed / c.nodes_needed) if failing else None

    @property
    def nodes_fitting(self) -> int:
        """How many of the nodes fit before the first limit (placement kept)."""
        allowed = [c.nodes_allowed * self.count / c.nodes_needed for c in self.checks if c.nodes_needed]
        return int(min([self.count, *allowed]))


class WhatIfError(ValueError):
    """A what-if that cannot be answered; the message says why."""


def what_if(state: ClusterState, count: int, instance_type: str, zone: str | None = None,
            pods_per_node: int | None = None) -> WhatIf:
    capacity = evaluate(state, pods_per_node, frozenset({instance_type}))
    node = capacity.new_nodes.get(instance_type)
    if node is None:
        raise WhatIfError(f"instance type {instance_type} is not known to DescribeInstanceTypes in this region")
    zones = {z.zone_id: z for z in capacity.zones}
    if zone is not None:
        if zone not in zones or not zones[zone].vswitch_ids:
            known = ", ".join(sorted(z for z, h in zones.items() if h.vswitch_ids)) or "none"
            raise WhatIfError(f"zone {zone} has no configured vSwitch (zones with one: {known})")
        placement = {zone: count}
    else:
        targets = sorted(z for z, h in zones.items() if h.vswitch_ids)
        if not targets:
            raise WhatIfError("no zone has a configured vSwitch; give --zone")
        placement = {z: count // len(targets) + (1 if i < count % len(targets) else 0) for i, z in enumerate(targets)}
        placement = {z: n for z, n in placement.items() if n}
    checks = []
    if node.pods_without_ip:
        checks.append(LimitCheck(NODE_CAPACITY, instance_type, node.pods + node.pool_min, node.ip_capacity,
                                 count, 0.0, f"{node.pods} pods per node but it holds {node.ip_capacity} pod IPs"))
    for zone_id, nodes in placement.items():
        head = zones[zone_id]
        checks.append(LimitCheck(VSWITCH_IPS, zone_id, nodes * node.addresses, head.vswitch_free, nodes,
                                 min(_fit(head.vswitch_free, node.addresses), nodes),
                                 ", ".join(head.vswitch_ids)))
    remaining = capacity.quota.remaining
    note = "the VPC's usage only: at most this many left" if capacity.quota.source == "vpc_census" else ""
    checks.append(LimitCheck(ENI_QUOTA, state.cloud.region_id or "region", count * node.enis, remaining, count,
                             min(_fit(remaining, node.enis), count), note))
    return WhatIf(count=count, node=node, placement=placement, checks=tuple(checks),
                  pods_per_node_source=capacity.pods_per_node_source)
