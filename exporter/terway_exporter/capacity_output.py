"""`terway-exporter capacity` output: terminal text (no line over 100 columns) and JSON."""

from __future__ import annotations

import json
import math
import textwrap
import time
from collections.abc import Mapping
from typing import Any

from .capacity import ENI_QUOTA, NODE_CAPACITY, VSWITCH_IPS, Capacity, WhatIf
from .findings.output import WIDTH, describe

# Sources the numbers come from: when one of them failed, `capacity` exits 3 (could not compute).
NEEDED_SOURCES = ("cloud_vswitches", "cloud_eni_quota", "cloud_instance_types", "kube_nodes",
                  "kube_terway_nodes", "kube_configmaps")
EXIT_OK, EXIT_DOES_NOT_FIT, EXIT_NOT_COMPUTED = 0, 1, 3

_LIMIT_SHORT = {VSWITCH_IPS: "vSwitch IPs", ENI_QUOTA: "ENI quota", NODE_CAPACITY: "node capacity"}


def _paint(colour: bool, code: str, text: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _n(value: float) -> str:
    return "unlimited" if math.isinf(value) else str(int(value))


def quota_line(capacity: Capacity) -> str:
    q = capacity.quota
    if q.quota is None or q.used is None:
        return "ENI quota: not known (Quota Center and DescribeAccountAttributes gave none)"
    scope = " (the VPC's ENIs only: at most this many left)" if q.source == "vpc_census" else ""
    return f"ENI quota: {q.used} of {q.quota} used ({q.source}): {q.remaining} ENIs left{scope}"


def to_text(capacity: Capacity, context: Mapping[str, Any], when: float, failed: list[str],
            what: WhatIf | None = None, colour: bool = False) -> str:
    bold = lambda text: _paint(colour, "1", text)  # noqa: E731
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    lines = [f"terway-exporter capacity: {describe(context)}", f"Computed at {stamp}", quota_line(capacity), ""]
    lines.append(bold("Pods that can still get an IP on today's nodes, by zone"))
    lines.append(f"  {'zone':<16}{'nodes':>6}{'pods':>7}  {'limit':<14}{'idle IPs':>9}{'vSwitch free':>13}"
                 f"{'node room':>10}")
    for z in capacity.zones:
        lines.append(f"  {z.zone_id:<16}{z.nodes:>6}{z.pods:>7}  {_LIMIT_SHORT[z.limit]:<14}{z.idle:>9}"
                     f"{z.vswitch_free:>13}{z.node_room:>10}")
        if not z.vswitch_ids:
            lines.append("    no configured vSwitch: Terway uses each node's own vSwitch here")
        if z.unknown_nodes:
            lines.append(f"    {z.unknown_nodes} node(s) left out: their IP capacity or IPs are not known yet")
    if not capacity.zones:
        lines.append("  no zone: no node and no configured vSwitch known")
    total = sum(z.pods for z in capacity.zones)
    lines.append(f"  {'all zones':<16}{sum(z.nodes for z in capacity.zones):>6}{total:>7}")
    lines.append("")
    lines.append(bold("New nodes each zone can take"))
    hint = "" if capacity.pods_per_node_source.startswith("--") else "; --pods-per-node"
    lines.append(f"  each runs {capacity.pods_per_node} pods ({capacity.pods_per_node_source}{hint})")
    if capacity.new_nodes:
        lines.append(f"  {'instance type':<18}{'IPs':>5}{'ENIs':>5}  {'zone':<16}{'nodes':>9}  limit")
        for item in capacity.addable:
            node = capacity.new_nodes[item.instance_type]
            other = item.by_quota if item.limit == VSWITCH_IPS else item.by_vswitch
            other_word = _LIMIT_SHORT[ENI_QUOTA if item.limit == VSWITCH_IPS else VSWITCH_IPS]
            lines.append(f"  {item.instance_type:<18}{node.ips:>5}{node.enis:>5}  {item.zone_id:<16}"
                         f"{_n(item.nodes):>9}  {_LIMIT_SHORT[item.limit]} ({other_word} allow {_n(other)})")
        before = ", ".join(f"{t} {_n(n)}" for t, n in capacity.before_quota.items())
        lines.append(f"  nodes before the ENI quota is used up, all zones together: {before}")
    else:
        lines.append("  no instance type with known limits")
    if what is not None:
        lines += ["", *what_if_lines(what, colour)]
    if failed:
        lines += ["", *textwrap.wrap("Failed, so the numbers above may be stale or missing: " + ", ".join(failed)
                                     + " (terway-exporter check says why)", width=WIDTH)]
    lines += ["", summary(capacity, failed, what)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def what_if_lines(what: WhatIf, colour: bool = False) -> list[str]:
    node = what.node
    where = ", ".join(f"{n} in {z}" for z, n in what.placement.items())
    lines = [_paint(colour, "1", f"What if: {what.count} x {node.instance_type} ({where})"),
             f"  each new node: {node.pods} pods ({what.pods_per_node_source}) + min_pool_size {node.pool_min}"
             f" = {node.ips} of the {node.ip_capacity} pod IPs it holds",
             f"    ({node.eni_limit - 1} secondary ENIs x {node.ips_per_eni} IPs, {node.ipam_mode} IPAM);"
             f" it creates {node.enis} secondary ENI(s)"
             + (f", {node.addresses} addresses in /28 prefixes" if node.addresses != node.ips else "")]
    for check in what.checks:
        state = "fits" if check.fits else f"allows {_n(check.nodes_allowed)} of {check.nodes_needed} nodes"
        if check.limit == VSWITCH_IPS:
            text = f"needs {check.needed} IPs, {check.available} free"
        elif check.limit == ENI_QUOTA:
            left = "unknown" if check.available is None else check.available
            text = f"needs {check.needed} ENIs, {left} left"
        else:
            text = f"needs {check.needed} IPs per node, holds {check.available}"
        lines.append(f"  {_LIMIT_SHORT[check.limit]:<14}{check.scope:<16}{text:<36}{state}")
        if check.note:
            lines += textwrap.wrap(check.note, width=WIDTH, initial_indent="    ", subsequent_indent="    ")
    return lines


def summary(capacity: Capacity, failed: list[str], what: WhatIf | None) -> str:
    """The last line: the what-if's verdict when there is one, else the pods that still fit."""
    code = exit_code(failed, what)
    if failed:
        return f"Summary: NOT COMPUTED: {len(failed)} source(s) it needs failed; exit {code}"
    if what is None:
        return f"Summary: {sum(z.pods for z in capacity.zones)} more pods can get an IP on today's nodes; exit {code}"
    hit = what.first_hit
    if hit is None:
        return f"Summary: FITS: {what.count} x {what.node.instance_type}; exit {code}"
    return (f"Summary: DOES NOT FIT: {_LIMIT_SHORT[hit.limit]} ({hit.scope}) is hit first: it allows "
            f"{_n(hit.nodes_allowed)} of the {hit.nodes_needed} nodes; exit {code}")


def exit_code(failed: list[str], what: WhatIf | None) -> int:
    if failed:
        return EXIT_NOT_COMPUTED
    return EXIT_DOES_NOT_FIT if what is not None and not what.fits else EXIT_OK


def _num(value: float) -> float | int | None:
    return None if math.isinf(value) else int(value)


def to_json(capacity: Capacity, context: Mapping[str, Any], when: float, failed: list[str],
            what: WhatIf | None = None) -> str:
    data: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        "exit_code": exit_code(failed, what),
        "sources_failed": failed,
        "context": dict(context),
        "eni_quota": {"quota": capacity.quota.quota, "used": capacity.quota.used, "source": capacity.quota.source,
                      "remaining": capacity.quota.remaining},
        "zones": [{"zone_id": z.zone_id, "nodes": z.nodes, "pods": z.pods, "limit": z.limit,
                   "idle_ips": z.idle, "vswitch_free": z.vswitch_free, "vswitch_ids": list(z.vswitch_ids),
                   "node_room": z.node_room, "quota_room": z.quota_room, "unknown_nodes": z.unknown_nodes}
                  for z in capacity.zones],
        "pods_per_new_node": capacity.pods_per_node,
        "pods_per_new_node_source": capacity.pods_per_node_source,
        "new_nodes": [{"instance_type": n.instance_type, "ipam_mode": n.ipam_mode, "ip_capacity": n.ip_capacity,
                       "ips": n.ips, "addresses": n.addresses, "enis": n.enis, "pool_min": n.pool_min,
                       "nodes_before_eni_quota": _num(capacity.before_quota[t])}
                      for t, n in capacity.new_nodes.items()],
        "addable": [{"zone_id": a.zone_id, "instance_type": a.instance_type, "nodes": _num(a.nodes),
                     "limit": a.limit, "by_vswitch_ips": _num(a.by_vswitch), "by_eni_quota": _num(a.by_quota)}
                    for a in capacity.addable],
    }
    if what is not None:
        hit = what.first_hit
        data["what_if"] = {
            "nodes": what.count, "instance_type": what.node.instance_type, "placement": what.placement,
            "pods_per_node": what.node.pods, "ips_per_node": what.node.ips, "enis_per_node": what.node.enis,
            "fits": what.fits, "first_limit": None if hit is None else hit.limit,
            "nodes_fitting": what.nodes_fitting,
            "checks": [{"limit": c.limit, "scope": c.scope, "needed": c.needed, "available": c.available,
                        "nodes_needed": c.nodes_needed, "nodes_allowed": _num(c.nodes_allowed), "fits": c.fits}
                       for c in what.checks],
        }
    return json.dumps(data, indent=2) + "\n"
