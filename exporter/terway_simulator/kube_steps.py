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
      add_nodes:                  # nodes joining, each as an item of the scenario's `nodes:` list
        - {name: cn-hangzhou.192.168.0.20, zone: cn-hangzhou-h, instance_type: ecs.g7.xlarge, ready: false}
      stray_enis:                 # replaces every ENI on no node (as the scenario's key; [] removes them)
        - {count: 3, vswitch: vsw-bp1h0000000000000001, creator: terway, age_seconds: 3600}

Times given relative to "now" (`*_ago`, `for_seconds`) are resolved when the step is applied.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from .merge_patch import merge_patch
from .world import ScenarioError, World, WorldEni, WorldIP, WorldNode

NODE_FIELDS = frozenset({"ready", "ready_message", "sufficient_ip", "labels", "annotations", "min_pool_size",
                         "max_pool_size", "last_sync_openapi_ago", "kube", "pods", "idle"})
TOP_FIELDS = frozenset({"nodes", "vswitches", "kubernetes", "cloud", "eni_quota", "eni_quota_usage", "add_events",
                        "add_nodes", "stray_enis"})
# Keys of an `add_nodes` item: those of the scenario's `nodes:` list that a joining node can have.
ADD_NODE_FIELDS = frozenset({"name", "zone", "instance_type", "vswitch", "enis", "pods", "idle", "primary_ip",
                             "instance_id", "ready", "ready_message", "sufficient_ip", "labels", "annotations",
                             "min_pool_size", "max_pool_size", "kube"})


def validate_steps(world: World) -> None:
    known = set(world.nodes)  # nodes a step may name: the scenario's and those earlier steps add
    for index, step in enumerate(world.steps):
        where = f"scenario {world.name!r}: steps[{index}]"
        if not isinstance(step, dict) or not isinstance(step.get("set"), dict):
            raise ScenarioError(f"{where}: a step needs `after_seconds` and a `set:` mapping")
        float(step.get("after_seconds", 0))
        validate_change(world, step["set"], where, known)
        known |= {str(item["name"]) for item in step["set"].get("add_nodes") or []}


def validate_change(world: World, change: dict[str, Any], where: str = "change", known: set[str] | None = None) -> None:
    known = set(world.nodes) if known is None else known
    unknown = set(change) - TOP_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_FIELDS)}")
    for index, item in enumerate(change.get("add_nodes") or []):
        if not isinstance(item, dict) or not all(item.get(k) for k in ("name", "zone", "instance_type")):
            raise ScenarioError(f"{where}: add_nodes[{index}] needs a mapping with name, zone and instance_type")
        bad = set(item) - ADD_NODE_FIELDS
        if bad:
            raise ScenarioError(f"{where}: add_nodes[{index}]: unknown fields {sorted(bad)}; "
                                f"allowed: {sorted(ADD_NODE_FIELDS)}")
        if item["name"] in known:
            raise ScenarioError(f"{where}: add_nodes[{index}]: node {item['name']!r} already exists")
        if item["instance_type"] not in world.instance_types:
            raise ScenarioError(f"{where}: add_nodes[{index}]: unknown instance type {item['instance_type']!r}")
        if item.get("vswitch", _zone_vswitch(world, item["zone"])) not in world.vswitches:
            raise ScenarioError(f"{where}: add_nodes[{index}]: no vSwitch for node {item['name']!r}")
    for index, item in enumerate(change.get("stray_enis") or []):
        if not isinstance(item, dict) or item.get("pod_eni") is not None:
            raise ScenarioError(f"{where}: stray_enis[{index}] needs a mapping "
                                "(`pod_eni` only in the scenario's own key)")
        if item.get("vswitch") is not None and item["vswitch"] not in world.vswitches:
            raise ScenarioError(f"{where}: stray_enis[{index}]: no vSwitch {item['vswitch']!r}")
    for name, fields in (change.get("nodes") or {}).items():
        if name not in known and name not in world.nodes:
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
    for item in change.get("add_nodes") or []:
        _add_node(world, item, now)
        cluster_wide = True  # a new Node, Node CR and daemon pod; the DaemonSet's counts change
    if "stray_enis" in change:
        world.stray_enis = []
        for index, item in enumerate(change["stray_enis"] or []):
            _add_stray_enis(world, item, index, now)
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
        events = list(world.kubernetes.get("events") or []) + change["add_events"]
        world.kubernetes = {**world.kubernetes, "events": events}
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


def _zone_vswitch(world: World, zone: str) -> str | None:
    return next((v.vswitch_id for v in world.vswitches.values() if v.zone_id == zone), None)


def _add_node(world: World, item: dict[str, Any], now: float) -> None:
    """A node joining now: its primary IP and its pods' IPs come from free addresses of its vSwitch."""
    name, zone = str(item["name"]), str(item["zone"])
    vswitch = str(item.get("vswitch") or _zone_vswitch(world, zone))
    digest = hashlib.sha1(f"{world.name}/{name}".encode()).hexdigest()
    node = WorldNode(
        name=name, instance_id=str(item.get("instance_id") or "i-" + digest[:20]),
        instance_type=str(item["instance_type"]), zone_id=zone, vswitch_id=vswitch,
        primary_ip=str(item.get("primary_ip") or next(_free_addresses(world, vswitch))),
        ready=bool(item.get("ready", True)),
        ready_message=str(item.get("ready_message", "kubelet is posting ready status")),
        sufficient_ip=item.get("sufficient_ip", True),
        labels=dict(item.get("labels") or {}), annotations=dict(item.get("annotations") or {}),
        min_pool_size=int(item.get("min_pool_size", 0)), max_pool_size=int(item.get("max_pool_size", 5)),
        last_sync_openapi=now, kube=dict(item.get("kube") or {}),
        created_at=now,  # the API server stamps metadata.creationTimestamp when the kubelet registers the Node
    )
    world.nodes[name] = node
    for index in range(int(item.get("enis", 0))):
        eni_digest = hashlib.sha1(f"{world.name}/{name}/eni/{index}".encode()).hexdigest()
        node.enis.append(WorldEni(eni_id="eni-" + eni_digest[:20], vswitch_id=vswitch, zone_id=zone,
                                  instance_id=node.instance_id, created_at=now,
                                  mac=f"00:16:3e:{eni_digest[20:22]}:{eni_digest[22:24]}:{eni_digest[24:26]}"))
    resize_node_ips(world, node, int(item.get("pods", 0)), int(item.get("idle", 0)))


def _add_stray_enis(world: World, item: dict[str, Any], index: int, now: float) -> None:
    """ENIs on no node, as the scenario's `stray_enis` key describes them, created `age_seconds` before now."""
    vswitch = str(item.get("vswitch") or next(iter(world.vswitches)))
    free = _free_addresses(world, vswitch)
    for ordinal in range(int(item.get("count", 1))):
        digest = hashlib.sha1(f"{world.name}/stray/{now}/{index}/{ordinal}".encode()).hexdigest()
        world.stray_enis.append(WorldEni(
            eni_id="eni-" + digest[:20], vswitch_id=vswitch, zone_id=world.vswitches[vswitch].zone_id,
            instance_id=str(item.get("instance_id", "")), status=str(item.get("status", "Available")),
            type=str(item.get("type", "Secondary")), creator=str(item.get("creator", "terway")),
            ips=[WorldIP(ip=next(free))], created_at=now - float(item.get("age_seconds", 3600)),
            mac=f"00:16:3e:{digest[20:22]}:{digest[22:24]}:{digest[24:26]}"))


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
                           mac=f"00:16:3e:{digest[20:22]}:{digest[22:24]}:{digest[24:26]}")
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
