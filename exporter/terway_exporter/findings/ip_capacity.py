"""IP capacity: vSwitches, zones, nodes' SufficientIP and pools (the ip-capacity rules)."""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .model import Evidence

LOW_RATIO = 0.1  # TerwayVSwitchIPsLow: under 10% free


def vswitch_exhausted(ctx: Context) -> list[Evidence]:
    """terway_vswitch_available_ip_addresses == 0, with the vSwitch's zone."""
    return [
        Evidence(f"vswitch/{v.vswitch_id}", f"0 of {v.usable_ips} IPs free (zone {v.zone_id})",
                 values={"available": 0, "usable": v.usable_ips, "zone_id": v.zone_id})
        for v in sorted(ctx.cloud.vswitches.values(), key=lambda v: v.vswitch_id) if v.available_ips == 0
    ]


def vswitch_low(ctx: Context) -> list[Evidence]:
    """terway:vswitch_available_ip_ratio < 0.1 and some IPs left (usable > 0)."""
    found = []
    for v in sorted(ctx.cloud.vswitches.values(), key=lambda v: v.vswitch_id):
        usable = v.usable_ips if v.available_ips > 0 else 0  # parses the CIDR: only when it can matter
        if usable > 0 and v.available_ips / usable < LOW_RATIO:
            share = v.available_ips / usable
            found.append(Evidence(
                f"vswitch/{v.vswitch_id}",
                f"{v.available_ips} of {usable} IPs free ({share:.1%}, under 10%; zone {v.zone_id})",
                values={"available": v.available_ips, "usable": usable, "zone_id": v.zone_id}))
    return found


def zone_free_ips(ctx: Context) -> dict[str, tuple[int, list[str]]]:
    """terway:zone_available_ip_addresses: zone -> (free IPs, vSwitches) over the configured vSwitches."""
    zones: dict[str, tuple[int, list[str]]] = {}
    for v in sorted(ctx.cloud.vswitches.values(), key=lambda v: v.vswitch_id):
        if v.vswitch_id in ctx.configured_vswitch_ids:
            free, ids = zones.get(v.zone_id, (0, []))
            zones[v.zone_id] = (free + v.available_ips, [*ids, v.vswitch_id])
    return zones


def zone_without_ips(ctx: Context) -> list[Evidence]:
    """A zone of terway_node_info whose configured vSwitches have no free IP left."""
    node_zones: dict[str, int] = {}
    for view in ctx.views:
        node_zones[view.zone_id] = node_zones.get(view.zone_id, 0) + 1
    found = []
    for zone, (free, ids) in sorted(zone_free_ips(ctx).items()):
        if free == 0 and zone in node_zones:
            found.append(Evidence(
                f"zone/{zone}", f"{node_zones[zone]} node(s); configured vSwitches {', '.join(ids)} have 0 free IPs",
                values={"nodes": node_zones[zone], "available": 0}))
    return found


def zone_without_vswitch(ctx: Context) -> list[Evidence]:
    """The configuration check zone_without_vswitch (the zone is the object's last path element)."""
    return [Evidence(f"zone/{p.object.rsplit('/', 1)[-1]}", p.message)
            for p in ctx.problems if p.check == "zone_without_vswitch"]


def pool_below_minimum(ctx: Context) -> list[Evidence]:
    """terway_node_ip_pool_below_minimum: idle < min_pool_size while the node has room for min_pool_size idle
    IPs, unless min > max (NodeView.ip_pool_below_minimum)."""
    found = []
    for view in ctx.views:
        if not view.ip_pool_below_minimum:
            continue
        idle, in_use, pool_min, capacity = view.idle_ips, view.in_use_ips, view.pool_min, view.ip_capacity
        assert idle is not None and in_use is not None and pool_min is not None and capacity is not None
        found.append(Evidence(
            f"node/{view.name}", f"{idle} idle IPs, min_pool_size {pool_min}; {in_use} in use of {capacity}",
            values={"idle": idle, "pool_min": pool_min, "in_use": in_use, "ip_capacity": capacity}))
    return found


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayVSwitchIPsExhausted": vswitch_exhausted,
    "TerwayVSwitchIPsLow": vswitch_low,
    "TerwayZoneWithoutIPs": zone_without_ips,
    "TerwayZoneWithoutVSwitch": zone_without_vswitch,
    "TerwayIPPoolBelowMinimum": pool_below_minimum,
}
