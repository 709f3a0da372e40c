"""Pods waiting for their network, and network errors seen in Warning events (source: Kubernetes)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Metric

from ..model.kube import waits_for_network
from ..model.state import ClusterState
from ..terway.errors import KNOWN_CODES, OTHER
from .base import Collector
from .families import Family

WAITING = Family(
    "terway_pods_waiting_for_network",
    "Scheduled Pending pods, not hostNetwork, whose sandbox network is not set up: PodReadyToStartContainers "
    "False (unless only their volumes are pending), or, without that condition, a recent sandbox network "
    "failure event. Image pulls do not count. By node.",
    ("node",),
)
WAITING_OLDEST = Family(
    "terway_pods_waiting_for_network_oldest_seconds",
    "Age of the oldest pod on the node waiting for its network, since it was scheduled.",
    ("node",),
)
NETWORK_ERRORS = Family(
    "terway_network_errors_total",
    "Occurrences of network-related Warning events (event count increments), by the error code the "
    "message names (closed list, 'other' when none) and the event reason.",
    ("code", "reason"),
    kind="counter",
)


def collect_waiting(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled:
        return []
    kube = state.kube
    ignored = {name for name, node in kube.nodes.items() if node.ignored}  # virtual-kubelet, ECI...
    count: dict[str, int] = {}
    oldest: dict[str, float] = {}
    for pod in kube.waiting_pods.values():
        if not pod.node or pod.node in ignored or not waits_for_network(pod, state.now):
            continue
        count[pod.node] = count.get(pod.node, 0) + 1
        oldest[pod.node] = min(oldest.get(pod.node, pod.since), pod.since)
    nodes = sorted(count)
    return [
        WAITING.build(({"node": n}, float(count[n])) for n in nodes),
        WAITING_OLDEST.build(({"node": n}, max(state.now - oldest[n], 0.0)) for n in nodes),
    ]


def collect_network_errors(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled:
        return []
    totals: dict[tuple[str, str], int] = {}
    for (code, reason), occurrences in state.kube.network_errors.items():
        key = (code if code in KNOWN_CODES else OTHER, reason)  # keep the label set closed
        totals[key] = totals.get(key, 0) + occurrences
    return [NETWORK_ERRORS.build_rows((key, float(totals[key])) for key in sorted(totals))]


COLLECTORS = (
    Collector("terway_pods_waiting", collect_waiting, frozenset({"kube", "now"})),
    Collector("terway_network_errors", collect_network_errors, frozenset({"kube"})),
)
