"""ENIs and quota: the regional ENI quota, nodes at their ENI limit, leaked ENIs."""

from __future__ import annotations

from collections.abc import Callable

from ..terway.enis import classify_detached
from .context import Context
from .model import Evidence

QUOTA_RATIO = 0.9  # TerwayENIQuotaNearLimit


def quota_near_limit(ctx: Context) -> list[Evidence]:
    """terway:eni_quota_usage_ratio > 0.9 (quota > 0), keeping the usage's `source`."""
    cloud = ctx.cloud
    quota, used, source = cloud.eni_quota, cloud.eni_quota_usage, cloud.eni_quota_usage_source
    if quota is None or used is None or source is None or quota <= 0 or used / quota <= QUOTA_RATIO:
        return []
    scope = "the cluster's VPC alone (a lower bound of the account's usage)" if source == "vpc_census" \
        else "the account in the region"
    region = cloud.region_id or ctx.state.targets.region_id or "the region"
    return [Evidence(f"region/{region}", f"{used} of {quota} ENIs in use ({used / quota:.0%}) by {scope}",
                     label=source, values={"used": used, "quota": quota, "source": source})]


def node_eni_limit(ctx: Context) -> list[Evidence]:
    """terway_node_eni_limit_reached: every ENI the node allows attached, no idle IP (NodeView.eni_limit_reached)."""
    found = []
    for view in ctx.views:
        if not view.eni_limit_reached:
            continue
        assert view.enis is not None and view.eni_limit is not None  # eni_limit_reached needs both
        found.append(Evidence(f"node/{view.name}",
                              f"{view.enis} of {view.eni_limit} ENIs attached ({view.instance_type}), 0 idle IPs",
                              values={"enis": view.enis, "eni_limit": view.eni_limit, "idle": 0}))
    return found


def leaked(ctx: Context) -> list[Evidence]:
    """terway_enis_leaked > 0, by creator."""
    detached = ctx.cloud.detached_enis
    if detached is None:
        return []
    split = classify_detached(detached, ctx.kube.pod_enis, ctx.state.now, ctx.state.settings.leak_grace_period)
    grace = ctx.state.settings.leak_grace_period
    held = {eni_id for pod_eni in (ctx.kube.pod_enis or {}).values() for eni_id in pod_eni.eni_ids}
    found = []
    for creator, count in sorted(split.leaked.items()):
        if count <= 0:
            continue
        ids = sorted(e.eni_id for e in detached if e.creator == creator and e.status == "Available"
                     and e.creation_time is not None and ctx.state.now - e.creation_time > grace
                     and e.eni_id not in held)
        shown = ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        found.append(Evidence(f"creator/{creator}",
                              f"{count} ENI(s) detached for over {grace / 60:.0f} minutes, held by no PodENI: {shown}",
                              label=creator, values={"enis": count}))
    return found


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayENIQuotaNearLimit": quota_near_limit,
    "TerwayNodeENILimitReached": node_eni_limit,
    "TerwayLeakedENIs": leaked,
}
