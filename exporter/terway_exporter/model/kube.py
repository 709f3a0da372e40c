"""Immutable projections of the Kubernetes objects the collectors need.

The Kubernetes source parses raw JSON into these small dataclasses (never into
the client's generated models: they are five times slower and far larger) and
keeps only the fields named here. Collectors and checks read a `KubeSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KubeNode:
    """A core Node, reduced to what Terway monitoring needs."""

    name: str
    instance_id: str = ""  # from spec.providerID "<region>.<instance-id>"
    instance_type: str = ""  # node.kubernetes.io/instance-type
    zone_id: str = ""  # topology.kubernetes.io/zone (or the beta label)
    region_id: str = ""  # topology.kubernetes.io/region
    terway_config: str = ""  # label terway-config: name of a dynamic config ConfigMap
    ignored: bool = False  # k8s.aliyun.com/ignore-by-terway=true or type=virtual-kubelet
    exclusive_eni: bool = False  # k8s.aliyun.com/exclusive-mode-eni-type=eniOnly
    ready: bool | None = None  # condition Ready
    ready_message: str = ""  # condition Ready message ("cni plugin not initialized", ...)
    sufficient_ip: bool | None = None  # condition SufficientIP
    max_available_ip: int | None = None  # annotation k8s.aliyun.com/max-available-ip
    created: float | None = None  # metadata.creationTimestamp, unix seconds: when the node joined


@dataclass(frozen=True, slots=True)
class NodeCRNic:
    eni_id: str
    status: str  # InUse, Attaching, Detaching, Deleting
    vswitch_id: str = ""
    unschedulable: bool = False
    conditions: tuple[str, ...] = ()  # e.g. ("InsufficientIP",)
    # Counts, not per-address records: 175,000 records at 5,000 nodes were most of the exporter's
    # memory, and Terway's idle rule needs only these three numbers per NIC.
    ipv4_in_use: int = 0  # addresses with a podID, whatever their status
    ipv4_free_valid: int = 0  # status Valid and no podID (idle when the ENI is InUse and schedulable)
    ipv4_other: int = 0  # no podID and not Valid (Invalid, Deleting, ...)
    # Prefix mode: addresses in the ENI's ipv4Prefix entries that are Valid or Frozen (the ones Terway
    # counts as occupying the ENI, countOccupiedPrefixes in pkg/controller/multi-ip/node/pool.go v1.17.5).
    ipv4_prefix_addresses: int = 0


@dataclass(frozen=True, slots=True)
class TerwayNodeCR:
    """A `nodes.network.alibabacloud.com` object (centralised IPAM)."""

    name: str
    instance_id: str = ""
    instance_type: str = ""
    zone_id: str = ""
    adapters: int | None = None  # spec.nodeCap.adapters (EniQuantity, primary included)
    total_adapters: int | None = None
    ipv4_per_adapter: int | None = None
    vswitch_ids: tuple[str, ...] = ()  # spec.eni.vSwitchOptions
    security_group_ids: tuple[str, ...] = ()  # spec.eni.securityGroupIDs
    min_pool_size: int | None = None  # spec.pool.minPoolSize
    max_pool_size: int | None = None  # spec.pool.maxPoolSize
    enable_ip_prefix: bool = False  # spec.eni.enableIPPrefix: prefix mode, fixed when the CR is created
    enable_trunk: bool = False
    nics: tuple[NodeCRNic, ...] = ()  # status.networkInterfaces (primary excluded)
    last_sync_openapi: float | None = None  # status.lastSyncOpenAPITime, unix seconds


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    ready: bool = False
    restarts: int = 0
    waiting_reason: str = ""  # CrashLoopBackOff, ImagePullBackOff, ContainerCreating, ...
    last_terminated_reason: str = ""  # Error, OOMKilled, ...


@dataclass(frozen=True, slots=True)
class PodSummary:
    """A pod in the Terway namespace (daemon, controlplane, CoreDNS)."""

    namespace: str
    name: str
    node: str = ""
    phase: str = ""
    ready: bool = False
    containers: tuple[ContainerStatus, ...] = ()
    init_containers: tuple[ContainerStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitingPod:
    """A scheduled Pending pod that may be waiting for its network (sources/kube/pods.py decides)."""

    node: str
    since: float  # unix seconds: when it was scheduled (PodScheduled) or created
    ref: str = ""  # "namespace/name"
    # PodReadyToStartContainers: False (no sandbox yet), None when the pod does not report the condition.
    sandbox_ready: bool | None = False
    network_failed_at: float | None = None  # latest sandbox-network failure event on the pod (unix seconds)
    volume_wait: bool = False  # a FailedMount / FailedAttachVolume event names the pod


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """A DaemonSet or Deployment, with replica counts from its status."""

    name: str
    desired: int = 0  # spec.replicas or desiredNumberScheduled
    available: int = 0  # availableReplicas or numberAvailable
    ready: int = 0  # readyReplicas or numberReady


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    holder: str = ""
    renew_time: float | None = None  # unix seconds
    duration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class PodEni:
    """A `podenis.network.alibabacloud.com` object: the ENIs Terway's controlplane holds for one pod.

    A PodENI is named after its pod. Terway's ENI GC never deletes an ENI a PodENI references
    (`gcENIs` in pkg/controller/pod-eni/eni_controller.go, AliyunContainerService/terway v1.17.5),
    which is how a fixed-IP pod's ENI stays detached until `releaseAfter`.
    """

    namespace: str  # the pod's namespace
    name: str  # the pod's name
    eni_ids: tuple[str, ...] = ()  # spec.allocations[].eni.id, then status.eniInfos keys/ids not listed there
    phase: str = ""  # status.phase: "" (Initial), Bind, Binding, Unbind, Detaching, Deleting
    fixed_ip: bool = False  # an allocation has allocationType.type Fixed (StatefulSet fixed IP)
    release_strategy: str = ""  # allocationType.releaseStrategy of the fixed allocation: TTL or Never
    release_after: str = ""  # allocationType.releaseAfter (a Go duration such as "10m0s") with TTL


@dataclass(frozen=True, slots=True)
class PodNetworkingRefs:
    """What a `podnetworkings.network.alibabacloud.com` object names for the pods it selects."""

    vswitch_ids: tuple[str, ...] = ()  # spec.vSwitchOptions, then status.vSwitches[].id not among them
    security_group_ids: tuple[str, ...] = ()  # spec.securityGroupIDs


@dataclass(frozen=True, slots=True)
class KubeSnapshot:
    nodes: dict[str, KubeNode] = field(default_factory=dict)
    # None when the nodes.network.alibabacloud.com CRD does not exist: legacy IPAM.
    terway_nodes: dict[str, TerwayNodeCR] | None = None
    daemon_pods: dict[str, PodSummary] = field(default_factory=dict)  # key "ns/name"
    waiting_pods: dict[str, WaitingPod] = field(default_factory=dict)  # key pod UID
    daemonset: WorkloadStatus | None = None  # terway-eniip
    controlplane: WorkloadStatus | None = None  # Deployment terway-controlplane; None = hosted
    controlplane_lease: LeaseStatus | None = None
    coredns: WorkloadStatus | None = None
    # Cumulative counts of Warning events naming a known error: (code, reason) -> occurrences.
    network_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    # node -> error code found in the previous log of its crash-looping terway container.
    crash_causes: dict[str, str] = field(default_factory=dict)
    # ConfigMap data; None when the ConfigMap does not exist.
    eni_config: dict[str, str] | None = None
    controlplane_config: dict[str, str] | None = None
    dynamic_configs: dict[str, dict[str, str]] = field(default_factory=dict)  # ConfigMap name -> data
    kubernetes_service_ip: str = ""  # ClusterIP of default/kubernetes
    # vSwitch IDs PodNetworking objects name (spec.vSwitchOptions and status.vSwitches).
    pod_networking_vswitches: frozenset[str] = frozenset()
    pod_networkings: dict[str, PodNetworkingRefs] = field(default_factory=dict)  # PodNetworking name -> refs
    # "namespace/name" -> PodENI; {} when the CRD is not installed; None until PodENIs were first
    # listed (unknown: an ENI a fixed-IP pod keeps must then not be called leaked).
    pod_enis: dict[str, PodEni] | None = None


# Seconds a sandbox-network failure event keeps a pod without the condition counted (see sources/kube/pods.py).
SANDBOX_FAILURE_WINDOW = 600.0


def waits_for_network(pod: WaitingPod, now: float) -> bool:
    """Whether a pending pod counts as waiting for its network (the rules: sources/kube/pods.py's docstring)."""
    if pod.sandbox_ready is False:
        return pod.network_failed_at is not None or not pod.volume_wait
    if pod.sandbox_ready is None and pod.network_failed_at is not None:
        return now - pod.network_failed_at <= SANDBOX_FAILURE_WINDOW
    return False
