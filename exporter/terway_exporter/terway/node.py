"""What Terway holds on one node: ENIs, IPs by state, limits and pool bounds.

Centralised IPAM (a `nodes.network.alibabacloud.com` CR exists) reproduces the controlplane's own
rules (`pkg/controller/multi-ip/node/pool.go`): an IP is **idle** when `status == Valid` and it has no
`podID`, on an ENI whose `status == InUse` and that is not `unschedulable`. Only those IPs count toward
the pool; excess idles above `maxPoolSize` are released, and Terway allocates while idles are below
`minPoolSize` (+ pending pods).

Legacy IPAM (`terway_nodes is None`, each terwayd calls ECS itself): the only outside view is the ECS
ENI census, which knows how many IPs each ENI holds but not which a pod uses; such nodes report a total
only (`IpCounts.unknown`).

Prefix mode (Node CR `spec.eni.enableIPPrefix`, Terway v1.17; fixed when the CR is created,
`pkg/eni/node_reconcile.go`): the controlplane only keeps `ipv4PrefixCount` /28 prefixes on the ENIs
(`status.networkInterfaces[].ipv4Prefix`) and the daemon assigns pod IPs from them itself; "Pod<->IP
allocation records are NOT stored in the Node CR" (syncPods in `pkg/controller/multi-ip/node/pool.go`,
v1.17.5). So in-use and idle are unknown there too: the node reports the addresses its prefixes hold
(`IpCounts.unknown`), never in_use=0, and its `ipam_mode` is `prefix`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from ..memo import reuse_while_same, same_objects
from ..model.cloud import CloudSnapshot, InstanceTypeLimits
from ..model.kube import KubeNode, KubeSnapshot, TerwayNodeCR
from ..model.state import ClusterState
from .eniconf import (
    CTRL_CONFIG_KEY,
    ConfigError,
    Degradation,
    EniConf,
    conf_for_node,
    effective_confs,
    read_degradation,
)
from .errors import CNI_CONFIG_MISSING, classify

IPAM_CRD = "crd"
IPAM_LEGACY = "legacy"
IPAM_PREFIX = "prefix"  # centralised IPAM with IP prefixes: pod IPs are assigned by the daemon


@dataclass(frozen=True, slots=True)
class IpCounts:
    in_use: int = 0
    idle: int = 0
    unavailable: int = 0
    unknown: int = 0  # legacy IPAM and prefix mode: held, state not observable from outside the node


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as Terway sees it; None means "not known from the data we have"."""

    name: str
    instance_id: str
    instance_type: str
    zone_id: str
    ipam_mode: str  # "crd", "prefix" or "legacy"
    enis: int | None  # attached ENIs, the primary included
    eni_limit: int | None  # ENIs the instance type allows, the primary included
    ips: IpCounts | None
    ip_capacity: int | None
    pool_min: int | None
    pool_max: int | None
    sufficient_ip: bool | None = None  # core Node condition SufficientIP
    cni_ready: bool | None = None
    last_sync_openapi: float | None = None  # Node CR status.lastSyncOpenAPITime
    created: float | None = None  # core Node metadata.creationTimestamp
    # What the node's instance type alone says (`type_eni_limit`, `type_ip_capacity`): the values the rules and
    # dashboards compute from terway_instance_type_* through terway_node_info's instance_type. None: type unknown.
    type_eni_limit: int | None = None
    type_ip_capacity: int | None = None

    @property
    def own_eni_limit(self) -> int | None:
        """eni_limit where the instance type does not already give it (else None): nodeCap.adapters that
        differs from EniQuantity, or an instance type the exporter does not know."""
        return None if self.eni_limit == self.type_eni_limit else self.eni_limit

    @property
    def own_ip_capacity(self) -> int | None:
        """ip_capacity where the instance type does not already give it (else None): prefix mode, exclusive
        ENI, an annotation or nodeCap that differs, legacy eni_cap_* / max_eni, or an unknown instance type."""
        return None if self.ip_capacity == self.type_ip_capacity else self.ip_capacity

    @property
    def idle_ips(self) -> int | None:
        """Idle pod IPs (terway_node_ips{state="idle"}): known only in centralised IPAM without prefixes."""
        return self.ips.idle if self.ipam_mode == IPAM_CRD and self.ips is not None else None

    @property
    def in_use_ips(self) -> int | None:
        """Pod IPs in use (terway_node_ips{state="in_use"}): known only where idle_ips is."""
        return self.ips.in_use if self.ipam_mode == IPAM_CRD and self.ips is not None else None

    # The two conditions below are what TerwayNodeENILimitReached and TerwayIPPoolBelowMinimum used to compute
    # in PromQL from five per-node families and the instance type's limits: at 5,000 nodes that cost 340 ms of
    # rule evaluation per cycle on the user's Prometheus (docs/performance.md). The exporter has every input at
    # hand, so it exposes each condition as a series present only while it holds (terway_node_eni_limit_reached,
    # terway_node_ip_pool_below_minimum), and `check` judges from the same properties.

    @property
    def eni_limit_reached(self) -> bool:
        """Every ENI the node allows is attached (the primary included) and no idle IP is left. Only where the
        idle count is known: a legacy or prefix-mode node may still have room on its ENIs."""
        idle = self.idle_ips
        return self.enis is not None and self.eni_limit is not None and idle is not None \
            and self.enis >= self.eni_limit and idle == 0

    @property
    def ip_pool_below_minimum(self) -> bool:
        """Fewer idle IPs than min_pool_size while the node has room for min_pool_size idle IPs (IP capacity
        minus IPs in use), unless min_pool_size is above max_pool_size: the controlplane then releases down to
        max_pool_size every pool sync period by design (adjustPool, pkg/controller/multi-ip/node/pool.go,
        v1.17.5), which the configuration check pool_min_above_max reports instead."""
        idle, in_use = self.idle_ips, self.in_use_ips
        if idle is None or in_use is None or self.pool_min is None or self.ip_capacity is None:
            return False
        if self.pool_max is not None and self.pool_min > self.pool_max:
            return False
        return idle < self.pool_min and self.ip_capacity - in_use >= self.pool_min


def ip_counts(cr: TerwayNodeCR) -> IpCounts:
    """Terway's idle-IP rule over a Node CR; IPs a pod holds are in use wherever they sit."""
    in_use = idle = unavailable = 0
    for nic in cr.nics:
        in_use += nic.ipv4_in_use
        unavailable += nic.ipv4_other  # Invalid/Deleting
        if nic.status == "InUse" and not nic.unschedulable:
            idle += nic.ipv4_free_valid
        else:
            unavailable += nic.ipv4_free_valid  # on an ENI Terway will not allocate from
    return IpCounts(in_use=in_use, idle=idle, unavailable=unavailable)


def prefix_ip_counts(cr: TerwayNodeCR) -> IpCounts:
    """A prefix-mode node: the addresses of its Valid/Frozen IPv4 prefixes, in use or not (unknown)."""
    return IpCounts(unknown=sum(nic.ipv4_prefix_addresses for nic in cr.nics))


def prefix_mode(cr: TerwayNodeCR | None, conf: EniConf | None) -> bool:
    """Whether the node runs prefix-mode IPAM: its Node CR says so (`spec.eni.enableIPPrefix`, immutable
    once the CR exists, `pkg/eni/node_reconcile.go` v1.17.5); before the CR exists, the config that will
    create it (`enable_ip_prefix`, read only by the centralised daemon, `daemon/builder.go` PostInitForCRDV2)."""
    if cr is not None:
        return cr.enable_ip_prefix
    return conf is not None and conf.centralized_ipam and conf.enable_ip_prefix


def instance_limits(
    node: KubeNode, cr: TerwayNodeCR | None, cloud: CloudSnapshot
) -> InstanceTypeLimits | None:
    instance_type = node.instance_type or (cr.instance_type if cr else "")
    return cloud.instance_types.get(instance_type) if instance_type else None


def type_eni_limit(limits: InstanceTypeLimits | None) -> int | None:
    """The instance type's ENI limit as terway_instance_type_eni_limit exposes it (EniQuantity)."""
    return limits.eni_quantity if limits is not None else None


def type_ip_capacity(limits: InstanceTypeLimits | None) -> int | None:
    """The instance type's pod IP capacity as the rules compute it from the instance type families:
    `(terway_instance_type_eni_limit - 1) * terway_instance_type_ips_per_eni`, i.e. every secondary ENI full
    (Terway's own max-available-ip for a node of the type, `pkg/controller/node/node.go` v1.17.5). Written
    exactly as PromQL computes it, unclamped, so that a node whose capacity differs is always told apart."""
    return (limits.eni_quantity - 1) * limits.ips_per_eni if limits is not None else None


def eni_limit(cr: TerwayNodeCR | None, limits: InstanceTypeLimits | None) -> int | None:
    """`spec.nodeCap.adapters` (= EniQuantity, primary included), else the instance type's EniQuantity."""
    if cr is not None and cr.adapters is not None:
        return cr.adapters
    return limits.eni_quantity if limits else None


def ip_capacity(
    node: KubeNode,
    cr: TerwayNodeCR | None,
    limits: InstanceTypeLimits | None,
    conf: EniConf | None,
) -> int | None:
    """Most pod IPs the node can hold.

    1. annotation `k8s.aliyun.com/max-available-ip`, which Terway itself publishes
       (`pkg/controller/node/node.go`, Terway v1.17.5); exclusive-ENI nodes (one pod per ENI):
       `EniQuantity - 1`;
    2. the Node CR's `spec.nodeCap`, as that same code computes the annotation: prefix mode
       `(ipv4PerAdapter-1) x 16 x (totalAdapters-1)`, otherwise `(adapters-1) x ipv4PerAdapter`
       (eRDMA share not subtracted: not in the CR view);
    3. the instance type: legacy `maxENI = int(EniQuantity x eni_cap_ratio) + eni_cap_shift - 1`
       capped by `max_eni`, times `EniPrivateIpAddressQuantity`.
    """
    if node.max_available_ip is not None:
        return node.max_available_ip
    if node.exclusive_eni:  # one pod per ENI: extended resource aliyun/eni = EniQuantity - 1
        limit = eni_limit(cr, limits)
        return max(limit - 1, 0) if limit is not None else None
    if cr is not None and cr.ipv4_per_adapter is not None:
        if cr.enable_ip_prefix and cr.total_adapters:
            return max(cr.ipv4_per_adapter - 1, 0) * 16 * max(cr.total_adapters - 1, 0)
        if cr.adapters is not None:
            return max(cr.adapters - 1, 0) * cr.ipv4_per_adapter
    if limits is None:
        return None
    return _legacy_max_enis(limits.eni_quantity, conf) * limits.ips_per_eni


def _legacy_max_enis(eni_quantity: int, conf: EniConf | None) -> int:
    if conf is None:
        return max(eni_quantity - 1, 0)
    max_enis = int(eni_quantity * conf.eni_cap_ratio) + conf.eni_cap_shift - 1
    if conf.max_eni > 0:
        max_enis = min(max_enis, conf.max_eni)
    return max(max_enis, 0)


def pool_bounds(
    cr: TerwayNodeCR | None, conf: EniConf | None, limits: InstanceTypeLimits | None
) -> tuple[int | None, int | None]:
    """(min, max) idle IPs configured for the node.

    The Node CR's `spec.pool` is authoritative (the daemon copies it from the merged config, uncapped,
    and forces 0 in prefix / exclusive-ENI mode: `pkg/eni/node_reconcile.go`, Terway v1.17.5). Without
    it, the merged `eni_conf`; a legacy `min_eni > 0` means `min_pool_size = min_eni x ipPerENI`.
    """
    cr_min = cr.min_pool_size if cr is not None else None
    cr_max = cr.max_pool_size if cr is not None else None
    if conf is None:
        return cr_min, cr_max
    conf_min = conf.min_pool_size
    if conf.min_eni > 0 and limits is not None:
        conf_min = conf.min_eni * limits.ips_per_eni
    return (
        cr_min if cr_min is not None else conf_min,
        cr_max if cr_max is not None else conf.max_pool_size,
    )


def legacy_enis(node: KubeNode, cloud: CloudSnapshot) -> tuple[int | None, IpCounts | None]:
    """ENIs and held IPs of a legacy-IPAM node from the ECS census (None before the first census)."""
    if cloud.census is None or not node.instance_id:
        return None, None
    enis = cloud.census.by_instance.get(node.instance_id, ())
    held = sum(e.private_ips for e in enis if e.type != "Primary")
    return len(enis), IpCounts(unknown=held)


def node_view(
    node: KubeNode,
    cr: TerwayNodeCR | None,
    conf: EniConf | ConfigError | None,
    cloud: CloudSnapshot,
    legacy: bool,
) -> NodeView:
    conf_ok = conf if isinstance(conf, EniConf) else None
    limits = instance_limits(node, cr, cloud)
    enis: int | None
    ips: IpCounts | None
    prefix = not legacy and prefix_mode(cr, conf_ok)
    if legacy:
        enis, ips = legacy_enis(node, cloud)
    elif cr is not None:
        enis = len(cr.nics) + 1  # status.networkInterfaces excludes the primary
        ips = prefix_ip_counts(cr) if prefix else ip_counts(cr)
    else:
        enis, ips = None, None  # CRD mode, CR not created yet
    # Exclusive-ENI and prefix-mode nodes keep no pool: the daemon forces spec.pool to 0 there.
    no_pool = node.exclusive_eni or prefix
    pool_min, pool_max = (0, 0) if no_pool else pool_bounds(cr, conf_ok, limits)
    if legacy and pool_min is not None and pool_max is not None:
        # Only legacy terwayd caps the minimum to the maximum (getPoolConfig in daemon/config.go, v1.17.5);
        # centralised IPAM keeps spec.pool as configured, and its pool churns between the two.
        pool_min = min(pool_min, pool_max)
    return NodeView(
        name=node.name,
        instance_id=node.instance_id or (cr.instance_id if cr else ""),
        instance_type=node.instance_type or (cr.instance_type if cr else ""),
        zone_id=node.zone_id or (cr.zone_id if cr else ""),
        ipam_mode=IPAM_LEGACY if legacy else IPAM_PREFIX if prefix else IPAM_CRD,
        enis=enis,
        eni_limit=eni_limit(cr, limits),
        ips=ips,
        ip_capacity=ip_capacity(node, cr, limits, conf_ok),
        pool_min=pool_min,
        pool_max=pool_max,
        sufficient_ip=node.sufficient_ip,
        cni_ready=cni_ready(node),
        last_sync_openapi=cr.last_sync_openapi if cr is not None else None,
        created=node.created,
        type_eni_limit=type_eni_limit(limits),
        type_ip_capacity=type_ip_capacity(limits),
    )


def managed_nodes(kube: KubeSnapshot) -> list[KubeNode]:
    """Nodes Terway manages: every core Node not labelled ignore-by-terway / virtual-kubelet."""
    return [n for n in kube.nodes.values() if not n.ignored]


def node_views(
    kube: KubeSnapshot, cloud: CloudSnapshot, confs: Mapping[str, EniConf | ConfigError]
) -> list[NodeView]:
    crs = kube.terway_nodes or {}
    views = []
    for node in managed_nodes(kube):
        conf = conf_for_node(confs, node)
        views.append(node_view(node, crs.get(node.name), conf, cloud, is_legacy(kube, conf)))
    return views


def is_legacy(kube: KubeSnapshot, conf: EniConf | ConfigError | None) -> bool:
    """Legacy node-local IPAM: no Node CRD, or a config whose `ipam_type` is not `crd` (the CRD may
    exist for trunking while the multi-IP controllers, which fill `status.networkInterfaces`, are off)."""
    if kube.terway_nodes is None:
        return True
    return isinstance(conf, EniConf) and not conf.centralized_ipam


def cni_ready(node: KubeNode) -> bool | None:
    """False when the kubelet's Ready condition blames the network plugin / CNI config."""
    if node.ready is None:
        return None
    if node.ready:
        return True
    return classify(node.ready_message) != CNI_CONFIG_MISSING


def degradation_setting(kube: KubeSnapshot) -> Degradation | ConfigError | None:
    """The controlplane's degradation setting, or None when its ConfigMap is not visible (hosted)."""
    if kube.controlplane_config is None:
        return None
    return read_degradation(kube.controlplane_config.get(CTRL_CONFIG_KEY, ""))


def degradation_level(kube: KubeSnapshot) -> str | ConfigError | None:
    """The degradation level the controlplane applies ("none" for a value it does not recognise)."""
    setting = degradation_setting(kube)
    return setting.level if isinstance(setting, Degradation) else setting


def cached_node_views(state: ClusterState) -> list[NodeView]:
    """terway_node_* of every managed node (none without a cluster), sorted by name; computed once
    per snapshot for the collectors, the checks, the findings and `capacity`, and per node only for the
    nodes whose inputs changed (`_reuse_views`)."""
    if not state.kube_enabled:
        return []
    kube, cloud = state.kube, state.cloud

    def compute() -> list[NodeView]:
        return sorted(_reuse_views(kube, cloud, effective_confs(kube)), key=lambda v: v.name)
    # A node's view reads the cluster, the instance types and (legacy IPAM) the ENI census.
    return reuse_while_same("views", (kube, cloud.instance_types, cloud.census), compute)


# The last view of each node with what it was computed from. Under churn every watch event makes a new
# snapshot, and recomputing all 5,000 views (each walking its Node CR's IPs) was half of the exporter's CPU
# during churn (py-spy, docs/performance.md); a changed node has a new KubeNode or Node CR object (the
# projections are immutable and kept while unchanged), so comparing inputs by identity finds the few that
# changed. The config is compared by value: effective_confs builds new EniConf objects for each snapshot.
_VIEWS_LOCK = threading.Lock()
_VIEWS: dict[str, tuple[tuple, EniConf | ConfigError | None, NodeView]] = {}


def _reuse_views(
    kube: KubeSnapshot, cloud: CloudSnapshot, confs: Mapping[str, EniConf | ConfigError]
) -> list[NodeView]:
    global _VIEWS
    crs = kube.terway_nodes or {}
    with _VIEWS_LOCK:
        previous = _VIEWS
    # The cloud source keeps the instance types' object while a poll finds them equal (CloudSource._step).
    types = cloud.instance_types
    fresh: dict[str, tuple[tuple, EniConf | ConfigError | None, NodeView]] = {}
    for node in managed_nodes(kube):
        cr, conf = crs.get(node.name), conf_for_node(confs, node)
        legacy = is_legacy(kube, conf)
        inputs = (node, cr, legacy, types, cloud.census if legacy else None)
        hit = previous.get(node.name)
        if hit is not None and same_objects(hit[0], inputs) and hit[1] == conf:
            view = hit[2]
        else:
            view = node_view(node, cr, conf, cloud, legacy)
        fresh[node.name] = (inputs, conf, view)
    with _VIEWS_LOCK:
        _VIEWS = fresh  # nodes gone from the cluster drop out here
    return [entry[2] for entry in fresh.values()]
