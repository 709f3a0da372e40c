"""The controlplane: replicas and leader Lease, degradation, Node CR sync with the cloud."""

from __future__ import annotations

from collections.abc import Callable

from ..model.state import synced
from .context import Context
from .model import Evidence

LEASE_STALE_SECONDS = 120
SYNC_STALE_SECONDS = 26 * 3600
DEGRADED = ("l0", "l1")


def _in_cluster(ctx: Context) -> bool:
    """terway_controlplane_in_cluster == 1."""
    return (ctx.state.kube_enabled and synced(ctx.state, "kube_workloads")
            and ctx.kube.controlplane is not None)


def unavailable(ctx: Context) -> list[Evidence]:
    if not _in_cluster(ctx):
        return []
    found = []
    deployment = ctx.kube.controlplane
    if deployment.available == 0:
        found.append(Evidence("deployment/terway-controlplane",
                              f"0 of {deployment.desired} replicas available", label="no_available_replica",
                              values={"available": 0, "desired": deployment.desired}))
    lease = ctx.kube.controlplane_lease
    if lease is not None and lease.renew_time is not None and not ctx.sources_down:
        age = ctx.state.now - lease.renew_time
        if age > LEASE_STALE_SECONDS:
            found.append(Evidence("lease/terway-controlplane",
                                  f"leader Lease last renewed {_duration(age)} ago (holder {lease.holder or 'none'})",
                                  label="lease_stale", values={"age_seconds": round(age)}))
    return found


def degraded(ctx: Context) -> list[Evidence]:
    level = ctx.degradation
    if level not in DEGRADED:
        return []
    effect = "no OpenAPI call at all, so no new IP" if level == "l0" else "no OpenAPI sync and no pool trimming"
    return [Evidence("configmap/terway-controlplane", f"degradation {level}: {effect}", label=level)]


def sync_stale(ctx: Context) -> list[Evidence]:
    if ctx.degradation in DEGRADED:
        return []
    found = []
    for view in ctx.views:
        last = view.last_sync_openapi
        if last is not None and last > 0 and ctx.state.now - last > SYNC_STALE_SECONDS:
            found.append(Evidence(f"node/{view.name}",
                                  f"Node CR last synced with the cloud {_duration(ctx.state.now - last)} ago",
                                  values={"age_seconds": round(ctx.state.now - last)}))
    return found


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 2 * 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 120:
        return f"{seconds // 60}m"
    return f"{seconds}s"


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayControlplaneUnavailable": unavailable,
    "TerwayControlplaneDegraded": degraded,
    "TerwayOpenAPISyncStale": sync_stale,
}
