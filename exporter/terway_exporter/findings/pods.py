"""Pods waiting for their network (terway_pods_waiting_for_network*, as the collector counts them)."""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .controlplane import _duration
from .model import Evidence

CANNOT_GET_IP_AFTER = 60
STUCK_AFTER = 300
IP_EXHAUSTION = (r"InvalidVSwitchId\.IpNotEnough|QuotaExceeded\.PrivateIpAddress"
                 r"|EniPerInstanceLimitExceeded|MaxEniCountExceeded")


def cannot_get_ip(ctx: Context) -> list[Evidence]:
    views = {v.name: v for v in ctx.views}
    exhaustion = ctx.network_error_codes(IP_EXHAUSTION)
    found = []
    for node, (pods, age) in ctx.waiting.items():
        if age <= CANNOT_GET_IP_AFTER:
            continue
        view = views.get(node)
        reasons = []
        if view is not None and view.sufficient_ip is False:
            reasons.append("SufficientIP=False")
        if view is not None and view.eni_limit_reached:
            reasons.append(f"all {view.eni_limit} ENIs attached and no idle IP")
        if exhaustion:
            reasons.append("Terway reported " + ", ".join(f"{code} x{n}" for code, n in sorted(exhaustion.items())))
        if reasons:
            found.append(Evidence(f"node/{node}",
                                  f"{pods} pod(s) waiting, the oldest {_duration(age)}; {'; '.join(reasons)}",
                                  values={"pods": pods, "oldest_seconds": round(age)}))
    return found


def stuck(ctx: Context) -> list[Evidence]:
    return [Evidence(f"node/{node}", f"{pods} pod(s) waiting for their network, the oldest for {_duration(age)}",
                     values={"pods": pods, "oldest_seconds": round(age)})
            for node, (pods, age) in ctx.waiting.items() if age > STUCK_AFTER]


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayPodsCannotGetIP": cannot_get_ip,
    "TerwayPodsStuckContainerCreating": stuck,
}
