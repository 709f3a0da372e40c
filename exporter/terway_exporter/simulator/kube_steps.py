"""Scenario `steps:`: changes to the World applied while the simulators run.

A step is `{after_seconds: 20, set: {...}}`. `set` mirrors the scenario file's own shape
and is merged into the World (RFC 7396 merge patch for mappings, `null` deletes a key):

    set:
      nodes:                      # by node name; any node field of the scenario file
        cn-hangzhou.192.168.0.10: {ready: false, ready_message: "...", pods: 25, idle: 0,
                                   kube: {daemon: {waiting_reason: CrashLoopBackOff, restarts: 3}}}
      vswitches:                  # by vSwitch id
        vsw-bp1h0000000000000001: {available: 0}
      kubernetes: {controlplane: {available: 0, lease_renew_ago: 0}}   # merged into `kubernetes:`
      add_events: [{reason: AllocIPFailed, message: "...", involved: {kind: Pod, name: x}}]
      cloud: {faults: {...}}      # merged into `cloud:` (the cloud simulator reads it live)
      eni_quota: 500
      eni_quota_usage: 480

Times given relative to "now" (`*_ago`, `for_seconds`) are resolved when the step is applied.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from ..terway.eniconf import merge_patch
from .world import ScenarioError, World, WorldEni, WorldIP, WorldNode

NODE_FIELDS = frozenset({"ready", "ready_message", "sufficient_ip", "labels", "annotations", "min_pool_size",
                         "max_pool_size", "last_sync_openapi_ago", "kube", "pods", "idle"})
TOP_FIELDS = frozenset({"nodes", "vswitches", "kubernetes", "cloud", "eni_quota", "eni_quota_usage", "add_events"})


def validate_steps(world: World) -> None:
    for index, step in enumerate(world.steps):
        where = f"scenario {world.name!r}: steps[{index}]"
        if not isinstance(step, dict) or not isinstance(step.get("set"), dict):
            raise ScenarioError(f"{where}: a step needs `after_seconds` and a `set:` mapping")
        float(step.get("after_seconds", 0))
        validate_change(world, step["set"], where)


def validate_change(world: World, change: dict[str, Any], where: str = "change") -> None:
    unknown = set(change) - TOP_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_FIELDS)}")
    for name, fields in (change.get("nodes") or {}).items():
        if name not in world.nodes:
            raise ScenarioError(f"{where}: no node named {name!r}")
        bad = set(fields or {}) - NODE_FIELDS
        if bad:
            raise ScenarioError(f"{where}: node {name!r}: unknown fields {sorted(bad)}; allowed: {sorted(NODE_FIELDS)}")
    for vsw in change.get("vswitches") or {}:
        if vsw not in world.vswitches:
            raise ScenarioError(f"{where}: no vSwitch {vsw!r}")


def resolve_times(value: Any, now: float) -> Any:
    """Turn `x_ago: s` into an extra `x_at: now - s` (and `for_seconds` into `since_at`), recursively."""
    if isinstance(value, list):
        return [resolve_times(v, now) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: resolve_times(v, now) for k, v in value.items()}
    for key, val in value.items():
        if key.endswith("_ago"):
            out[key[:-4] + "_at"] = None if val is None else now - float(val)
        elif key == "for_seconds":
            out["since_at"] = None if val is None else now - float(val)
    return out


def apply_change(world: World, change: dict[str, Any], now: float) -> set[str] | None:
    """Apply one `set:` mapping. Returns the node names touched, or None when cluster-wide state changed."""
    validate_change(world, change)
    change = resolve_times(change, now)
    touched: set[str] = set()
    cluster_wide = False
    for name, fields in (change.get("nodes") or {}).items():
        _apply_node(world, world.nodes[name], fields or {}, now)
        touched.add(name)
    for vsw_id, fields in (change.get("vswitches") or {}).items():
        if "available" in (fields or {}):
            world.vswitches[vsw_id].available_ips = None if fields["available"] is None else int(fields["available"])
        cluster_wide = True
    if "kubernetes" in change:
        world.kubernetes = merge_patch(world.kubernetes, change["kubernetes"])
        cluster_wide = True
    if change.get("add_events"):
        world.kubernetes = {**world.kubernetes, "events": list(world.kubernetes.get("events") or []) + change["add_events"]}
        cluster_wide = True
    if "cloud" in change:
        world.cloud = merge_patch(world.cloud, change["cloud"])
    for key in ("eni_quota", "eni_quota_usage"):
        if key in change:
            setattr(world, key, None if change[key] is None else int(change[key]))
    return None if cluster_wide else touched


def _apply_node(world: World, node: WorldNode, fields: dict[str, Any], now: float) -> None:
    for key in ("ready", "sufficient_ip"):
        if key in fields:
            setattr(node, key, fields[key])
    for key in ("ready_message",):
        if key in fields:
            node.ready_message = str(fields[key])
    for key in ("min_pool_size", "max_pool_size"):
        if key in fields:
            setattr(node, key, int(fields[key]))
    if fields.get("last_sync_openapi_at") is not None:
        node.last_sync_openapi = float(fields["last_sync_openapi_at"])
    for key in ("labels", "annotations", "kube"):
        if key in fields:
            setattr(node, key, merge_patch(getattr(node, key), fields[key]))
    if "pods" in fields or "idle" in fields:
        in_use = sum(1 for e in node.enis for ip in e.ips if ip.pod_id)
        idle = sum(1 for e in node.enis for ip in e.ips if not ip.pod_id)
        resize_node_ips(world, node, int(fields.get("pods", in_use)), int(fields.get("idle", idle)))


def resize_node_ips(world: World, node: WorldNode, pods: int, idle: int) -> None:
    """Make the node hold `pods` in-use and `idle` idle IPs, keeping existing pods where it can."""
    ips = [ip for eni in node.enis for ip in eni.ips]
    used = [ip for ip in ips if ip.pod_id]
    for ip in used[pods:]:  # pods gone: their IPs go back to the pool
        ip.pod_id = ""
    taken = {ip.pod_id for ip in ips if ip.pod_id}
    names = (f"default/{node.name}-pod-{i}" for i in range(10**9))
    missing = pods - min(len(used), pods)
    for ip in ips:
        if missing <= 0:
            break
        if not ip.pod_id:
            ip.pod_id = next(n for n in names if n not in taken)
            missing -= 1
    idle_now = [ip for eni in node.enis for ip in eni.ips if not ip.pod_id]
    for ip in idle_now[idle:] if len(idle_now) > idle else ():
        for eni in node.enis:
            if ip in eni.ips:
                eni.ips.remove(ip)
    wanted = [next(n for n in names if n not in taken) for _ in range(max(missing, 0))]
    wanted += [""] * max(idle - len(idle_now), 0)
    if wanted:
        _add_ips(world, node, wanted)


def _add_ips(world: World, node: WorldNode, pod_ids: list[str]) -> None:
    limits = world.instance_types[node.instance_type]
    free = _free_addresses(world, node.vswitch_id)
    while pod_ids:
        eni = next((e for e in node.enis if len(e.ips) < limits.ips_per_eni), None)
        if eni is None:
            if len(node.enis) >= limits.eni_quantity - 1:
                raise ScenarioError(f"node {node.name!r}: {node.instance_type} cannot hold that many IPs")
            digest = hashlib.sha1(f"{world.name}/{node.name}/eni/{len(node.enis)}".encode()).hexdigest()
            eni = WorldEni(eni_id="eni-" + digest[:20], vswitch_id=node.vswitch_id, zone_id=node.zone_id,
                           instance_id=node.instance_id, created_at=world.started_at,
                           mac="00:16:3e:%s:%s:%s" % (digest[20:22], digest[22:24], digest[24:26]))
            node.enis.append(eni)
        eni.ips.append(WorldIP(ip=next(free), pod_id=pod_ids.pop(0)))


def _free_addresses(world: World, vswitch_id: str):
    vsw = world.vswitches[vswitch_id]
    used = {ip.ip for eni in world.all_enis() if eni.vswitch_id == vswitch_id for ip in eni.ips}
    used |= {n.primary_ip for n in world.nodes.values()}
    net = ipaddress.ip_network(vsw.cidr_block, strict=False)
    for host in net.hosts():
        if str(host) not in used and host != net.network_address + 1:
            yield str(host)
