"""The Terway workloads: DaemonSet terway-eniip, Deployment terway-controlplane, and CoreDNS.

Daemon pods carry label `app=terway-eniip` (containers `terway-init`, `terway`, `policy`); the
controlplane is the Deployment `kube-system/terway-controlplane` with the Lease of the same name. In
ACK managed clusters the controlplane runs outside the cluster: no Deployment, `in_cluster` 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Metric

from ..model.kube import PodSummary, WorkloadStatus
from ..model.state import ClusterState, synced
from ..terway.eniconf import DEGRADATION_LEVELS, ConfigError
from ..terway.errors import KNOWN_CODES, OTHER
from ..terway.node import degradation_level
from .base import Collector
from .families import Family

CRASH_LOOP = "CrashLoopBackOff"

DAEMON_PODS = Family(
    "terway_daemon_pods",
    "terway-eniip pods: desired (DaemonSet desiredNumberScheduled), ready, not_ready (every pod not "
    "Ready, crash-looping ones included), crash_looping (a container waiting in CrashLoopBackOff).",
    ("state",),
)
WAITING = Family(
    "terway_daemon_container_waiting",
    "1 while a terway-eniip container waits, by reason (CrashLoopBackOff, ImagePullBackOff, ...).",
    ("node", "container", "reason"),
)
CRASH_CAUSE = Family(
    "terway_daemon_crash_cause",
    "1 when the previous log of the node's crashing terway container names a known error code.",
    ("node", "code"),
)
CP_REPLICAS = Family(
    "terway_controlplane_replicas",
    "terway-controlplane Deployment replicas: desired and available.",
    ("state",),
)
CP_IN_CLUSTER = Family(
    "terway_controlplane_in_cluster",
    "1 when the terway-controlplane Deployment runs in this cluster, 0 when it is not visible "
    "(hosted by ACK managed, or absent).",
)
CP_LEASE = Family(
    "terway_controlplane_lease_renew_timestamp_seconds",
    "Last renewal of the terway-controlplane leader Lease (spec.renewTime).",
)
CP_DEGRADATION = Family(
    "terway_controlplane_degradation",
    "Controlplane degradation level from ctrl-config.yaml, as Terway applies it (state set): l0 makes no "
    "OpenAPI calls, l1 allocates but never syncs or releases; any value but exactly l0 or l1 (e.g. L0) is none.",
    ("level",),
)
DNS_REPLICAS = Family(
    "terway_cluster_dns_replicas",
    "CoreDNS Deployment replicas: desired and available.",
    ("state",),
)


def _all_containers(pod: PodSummary):
    return (*pod.init_containers, *pod.containers)


def _crash_looping(pod: PodSummary) -> bool:
    return any(c.waiting_reason == CRASH_LOOP for c in _all_containers(pod))


def _replicas(family: Family, workload: WorkloadStatus | None) -> list[Metric]:
    if workload is None:
        return []
    return [family.build_rows(((("desired",), float(workload.desired)), (("available",), float(workload.available))))]


def collect_daemon(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled or not synced(state, "kube_workloads", "kube_pods"):
        return []
    kube = state.kube
    pods = sorted(kube.daemon_pods.values(), key=lambda p: (p.node, p.name))
    ready = sum(1 for p in pods if p.ready)
    counts = {
        "desired": kube.daemonset.desired if kube.daemonset else len(pods),
        "ready": ready,
        "not_ready": len(pods) - ready,
        "crash_looping": sum(1 for p in pods if _crash_looping(p)),
    }
    # Restart counts are kube-state-metrics' kube_pod_container_status_restarts_total (and
    # kube_pod_init_container_status_restarts_total): not repeated here, 3 series per node.
    waiting: set[tuple[str, str, str]] = set()
    for pod in pods:
        for c in _all_containers(pod):
            if c.waiting_reason:
                waiting.add((pod.node, c.name, c.waiting_reason))
    causes = sorted(
        (node, code if code in KNOWN_CODES else OTHER) for node, code in kube.crash_causes.items()
    )
    return [
        DAEMON_PODS.build_rows(((s,), float(v)) for s, v in counts.items()),
        WAITING.build_rows((k, 1.0) for k in sorted(waiting)),
        CRASH_CAUSE.build_rows((k, 1.0) for k in causes),
    ]


def collect_controlplane(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled:
        return []
    kube = state.kube
    metrics = []
    if synced(state, "kube_workloads"):
        metrics.extend(_replicas(CP_REPLICAS, kube.controlplane))
        metrics.append(CP_IN_CLUSTER.build([({}, 1.0 if kube.controlplane is not None else 0.0)]))
    lease = kube.controlplane_lease
    if lease is not None and lease.renew_time is not None:
        metrics.append(CP_LEASE.build([({}, lease.renew_time)]))
    level = degradation_level(kube)
    if level is not None and not isinstance(level, ConfigError) and synced(state, "kube_configmaps"):
        metrics.append(CP_DEGRADATION.state_set(DEGRADATION_LEVELS, level, label="level"))
    return metrics


def collect_dns(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled or not synced(state, "kube_workloads"):
        return []
    return _replicas(DNS_REPLICAS, state.kube.coredns)


COLLECTORS = (
    Collector("terway_daemon", collect_daemon, frozenset({"kube", "sources"})),
    Collector("terway_controlplane", collect_controlplane, frozenset({"kube", "sources"})),
    Collector("terway_cluster_dns", collect_dns, frozenset({"kube", "sources"})),
)
