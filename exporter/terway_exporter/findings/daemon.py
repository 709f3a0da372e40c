"""The daemon (terway-eniip DaemonSet): crash loops, and nodes whose CNI is not ready."""

from __future__ import annotations

from collections.abc import Callable

from ..terway.errors import KNOWN_CODES, OTHER
from .context import Context
from .model import Evidence

CRASH_LOOP = "CrashLoopBackOff"
CNI_CONFIG_MISSING = "CNIConfigMissing"


def crash_looping(ctx: Context) -> list[Evidence]:
    """terway_daemon_container_waiting{reason="CrashLoopBackOff"}, by node and container; the evidence adds the
    restart count (which the metrics leave to kube-state-metrics)."""
    if not ctx.daemon_synced:
        return []
    restarts: dict[tuple[str, str], int] = {}
    looping: set[tuple[str, str]] = set()
    for pod in ctx.kube.daemon_pods.values():
        for container in (*pod.init_containers, *pod.containers):
            key = (pod.node, container.name)
            restarts[key] = restarts.get(key, 0) + container.restarts
            if container.waiting_reason == CRASH_LOOP:
                looping.add(key)
    found = []
    for node, container in sorted(looping):
        cause = ctx.kube.crash_causes.get(node) if container == "terway" else None
        if cause is not None and cause not in KNOWN_CODES:
            cause = OTHER
        detail = f"container {container} in CrashLoopBackOff, {restarts[(node, container)]} restarts"
        if cause:
            detail += f"; its previous log names {cause}"
        found.append(Evidence(f"node/{node}", detail, label=container,
                              values={"restarts": restarts[(node, container)], "container": container}))
    return found


def cni_config_missing(ctx: Context) -> list[Evidence]:
    """terway_node_cni_not_ready == 1; or CNIConfigMissing events while no node is known.

    The events branch counts only once every node has been CNI-ready and known for 15 minutes; a
    single look has no such history, so, as in a Prometheus that has just started scraping, it
    counts only while the cluster has no node at all."""
    found = [Evidence(f"node/{v.name}", "the kubelet reports the network plugin not ready (no CNI configuration)")
             for v in ctx.views if v.cni_ready is False]
    events = sum(n for (code, _), n in ctx.network_errors.items() if code == CNI_CONFIG_MISSING)
    if events and not ctx.views:
        found.append(Evidence(f"events/{CNI_CONFIG_MISSING}",
                              f"{events} pod sandbox failure(s) said the CNI configuration was missing",
                              values={"events": events}))
    return found


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayDaemonCrashLooping": crash_looping,
    "TerwayCNIConfigMissing": cni_config_missing,
}
