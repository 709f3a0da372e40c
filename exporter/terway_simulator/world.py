"""The simulated world: one source of truth behind the simulated cloud and Kubernetes APIs.

A scenario file (see docs/scenarios.md) describes a cluster at the level an operator
thinks of it: vSwitches, security groups, instance types, nodes with their ENIs and
IPs, plus API-specific extras (`cloud:` faults and stray ENIs, `kubernetes:` objects
such as ConfigMaps, workloads, events). `load_world` expands it into a `World`; the
cloud view (`cloud_api.py`) and the Kubernetes view (`kube_api.py`) derive every API
object from the same `World`, so an ENI the Node CR lists is the ENI
DescribeNetworkInterfaces returns.

The world is mutable on purpose: time steps (`steps:`) and the scale scenario's churn
change it while the simulator runs, and both views read it on every request.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SCENARIO_PACKAGE = "terway_simulator.scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded; the message names the file and field."""


@dataclass
class WorldVSwitch:
    vswitch_id: str
    zone_id: str
    cidr_block: str
    name: str = ""
    vpc_id: str = ""
    # AvailableIpAddressCount; None means: usable addresses minus the IPs the world's ENIs hold.
    available_ips: int | None = None
    tags: dict[str, str] = field(default_factory=dict)  # VPC tags (DescribeVSwitches Tags.Tag[Key/Value])


@dataclass
class WorldSecurityGroup:
    security_group_id: str
    vpc_id: str = ""
    name: str = ""


@dataclass
class WorldInstanceType:
    instance_type: str
    eni_quantity: int
    ips_per_eni: int
    ipv6_per_eni: int = 0
    eni_total_quantity: int = 0
    trunk_supported: bool = False
    eri_quantity: int = 0


@dataclass
class WorldIP:
    ip: str
    pod_id: str = ""  # "namespace/name" when a pod uses it; "" when idle
    status: str = "Valid"


@dataclass
class WorldEni:
    eni_id: str
    vswitch_id: str
    zone_id: str
    instance_id: str = ""  # "" when detached
    status: str = "InUse"  # ECS status: Available, InUse, Attaching, Detaching, Deleting
    type: str = "Secondary"  # Primary, Secondary, Trunk
    creator: str = "terway"  # value of the `creator` tag; "" for no tag
    ips: list[WorldIP] = field(default_factory=list)
    created_at: float = 0.0  # unix seconds
    mac: str = ""
    # Prefix mode (Terway v1.17): the /28 IPv4 prefixes assigned to the ENI (Node CR nic ipv4Prefix).
    ipv4_prefixes: list[str] = field(default_factory=list)


@dataclass
class WorldPodEni:
    """A PodENI (network.alibabacloud.com) holding one of the world's ENIs for a pod (Kubernetes view)."""

    namespace: str
    name: str  # the pod's name; a PodENI is named after its pod
    eni_id: str
    phase: str = "Unbind"  # status.phase: "" (Initial), Bind, Binding, Unbind, Detaching, Deleting
    alloc_type: str = "Fixed"  # allocationType.type: Elastic or Fixed
    release_strategy: str = "TTL"  # TTL or Never (fixed IP only)
    release_after: str = "24h0m0s"  # Go duration (TTL only)
    last_seen: float = 0.0  # status.podLastSeen, unix seconds


@dataclass
class WorldCredential:
    """A temporary credential the simulated STS or metadata server issued (cloud view only)."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    expires_at: float  # unix seconds


@dataclass
class WorldNode:
    name: str
    instance_id: str
    instance_type: str
    zone_id: str
    vswitch_id: str  # the primary ENI's vSwitch
    primary_ip: str = ""
    enis: list[WorldEni] = field(default_factory=list)  # secondary ENIs, primary excluded
    ready: bool = True
    ready_message: str = "kubelet is posting ready status"
    sufficient_ip: bool | None = True
    labels: dict[str, str] = field(default_factory=dict)  # extra labels (terway-config, ...)
    annotations: dict[str, str] = field(default_factory=dict)
    min_pool_size: int = 0
    max_pool_size: int = 5
    last_sync_openapi: float | None = None  # unix seconds; None = now at load
    ip_prefix: bool = False  # prefix-mode IPAM (Node CR spec.eni.enableIPPrefix)
    created_at: float | None = None  # unix seconds the Node object was created; None = 30 days before start
    # Kubernetes-side extras for this node, read by the Kubernetes view (daemon pod state, ...).
    kube: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    name: str
    description: str = ""
    region_id: str = "cn-hangzhou"
    vpc_id: str = "vpc-sim0000000000000001"
    cluster_id: str = "c-sim0000000000000001"
    access_key_id: str = "LTAI5tSimulatorKeyId0001"
    access_key_secret: str = "SimulatorSecret00000000000000x"
    vswitches: dict[str, WorldVSwitch] = field(default_factory=dict)
    security_groups: dict[str, WorldSecurityGroup] = field(default_factory=dict)
    instance_types: dict[str, WorldInstanceType] = field(default_factory=dict)
    nodes: dict[str, WorldNode] = field(default_factory=dict)
    stray_enis: list[WorldEni] = field(default_factory=list)  # ENIs on no node (leaked, other owners)
    pod_enis: list[WorldPodEni] = field(default_factory=list)  # PodENIs referencing stray ENIs
    eni_quota: int = 1000
    eni_quota_usage: int | None = None  # None: every ENI in the world counts
    # API-specific extras, interpreted by each view (faults, ConfigMaps, workloads, events...).
    cloud: dict[str, Any] = field(default_factory=dict)
    kubernetes: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    # Temporary credentials by AccessKeyId, added by the simulated STS / metadata server.
    temporary_credentials: dict[str, WorldCredential] = field(default_factory=dict)

    def all_enis(self) -> list[WorldEni]:
        enis = [eni for node in self.nodes.values() for eni in node.enis]
        return enis + self.stray_enis

    def used_ips(self, vswitch_id: str) -> int:
        """IPs the world's ENIs hold in a vSwitch, primary ENIs' one address each included."""
        held = sum((len(e.ips) or 1) + 16 * len(e.ipv4_prefixes) for e in self.all_enis() if e.vswitch_id == vswitch_id)
        primaries = sum(1 for n in self.nodes.values() if n.vswitch_id == vswitch_id)
        return held + primaries

    def available_ips(self, vswitch: WorldVSwitch) -> int:
        if vswitch.available_ips is not None:
            return vswitch.available_ips
        size = ipaddress.ip_network(vswitch.cidr_block, strict=False).num_addresses - 4
        return max(size - self.used_ips(vswitch.vswitch_id), 0)

    def quota_usage(self) -> int:
        if self.eni_quota_usage is not None:
            return self.eni_quota_usage
        return len(self.all_enis()) + len(self.nodes)

    def used_ips_by_vswitch(self) -> dict[str, int]:
        """`used_ips` for every vSwitch in one pass (the cloud view answers 60 vSwitches at once)."""
        used: dict[str, int] = {}
        for node in self.nodes.values():
            used[node.vswitch_id] = used.get(node.vswitch_id, 0) + 1
        for eni in self.all_enis():
            used[eni.vswitch_id] = used.get(eni.vswitch_id, 0) + (len(eni.ips) or 1) + 16 * len(eni.ipv4_prefixes)
        return used

    def primary_eni(self, node: WorldNode) -> WorldEni:
        """The node's Primary ENI, which ECS creates with the instance; derived, never stored."""
        digest = hashlib.sha1(f"{self.name}/primary/{node.name}".encode()).hexdigest()
        return WorldEni(
            eni_id="eni-" + digest[:20], vswitch_id=node.vswitch_id, zone_id=node.zone_id,
            instance_id=node.instance_id, status="InUse", type="Primary", creator="",
            ips=[WorldIP(ip=node.primary_ip)], created_at=self.started_at - 7 * 86400,
            mac=f"00:16:3e:{digest[20:22]}:{digest[22:24]}:{digest[24:26]}",
        )

    def issue_temporary_credential(self, duration_seconds: float, now: float | None = None) -> WorldCredential:
        """Mint an STS-style credential the cloud view accepts until it expires."""
        now = time.time() if now is None else now
        serial = len(self.temporary_credentials) + 1
        seed = hashlib.sha1(f"{self.name}/sts/{serial}/{now}".encode()).hexdigest()
        cred = WorldCredential(
            access_key_id=f"STS.Sim{seed[:20]}", access_key_secret=f"Sim{seed[20:40]}",
            security_token=f"CAIS{hashlib.sha1(seed.encode()).hexdigest()}+Sim/Token==",
            expires_at=now + duration_seconds,
        )
        self.temporary_credentials[cred.access_key_id] = cred
        return cred


# --------------------------------------------------------------------------- loading


def scenario_names() -> list[str]:
    files = resources.files(SCENARIO_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def read_scenario(name_or_path: str) -> dict[str, Any]:
    """Read a shipped scenario by name, or any scenario file by path."""
    path = Path(name_or_path)
    try:
        if path.suffix in (".yaml", ".yml") or path.exists():
            text = path.read_text()
        else:
            text = resources.files(SCENARIO_PACKAGE).joinpath(f"{name_or_path}.yaml").read_text()
    except (FileNotFoundError, OSError) as err:
        known = ", ".join(scenario_names())
        raise ScenarioError(f"scenario {name_or_path!r}: cannot read it ({err}); shipped: {known}") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ScenarioError(f"scenario {name_or_path!r}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {name_or_path!r}: the top level must be a mapping")
    data.setdefault("name", path.stem if path.suffix else name_or_path)
    return data


def load_world(name_or_path: str, overrides: dict[str, Any] | None = None) -> World:
    """Load a scenario into a World. `overrides` replaces keys of `generate:` (e.g. nodes=500)."""
    data = read_scenario(name_or_path)
    return build_world(data, overrides or {})


def build_world(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> World:
    data = copy.deepcopy(data)
    name = str(data.get("name", "scenario"))
    try:
        world = World(
            name=name,
            description=str(data.get("description", "")),
            region_id=str(data.get("region", "cn-hangzhou")),
            vpc_id=str(data.get("vpc_id", "vpc-sim0000000000000001")),
            cluster_id=str(data.get("cluster_id", "c-sim0000000000000001")),
            eni_quota=int(data.get("eni_quota", 1000)),
            eni_quota_usage=_opt_int(data.get("eni_quota_usage")),
            cloud=dict(data.get("cloud") or {}),
            kubernetes=dict(data.get("kubernetes") or {}),
            steps=list(data.get("steps") or []),
        )
        creds = data.get("credentials") or {}
        world.access_key_id = str(creds.get("access_key_id", world.access_key_id))
        world.access_key_secret = str(creds.get("access_key_secret", world.access_key_secret))
        for item in data.get("vswitches") or []:
            vsw = WorldVSwitch(
                vswitch_id=item["id"], zone_id=item["zone"], cidr_block=item["cidr"],
                name=item.get("name", item["id"]), vpc_id=item.get("vpc_id", world.vpc_id),
                available_ips=_opt_int(item.get("available")),
                tags={str(k): str(v) for k, v in (item.get("tags") or {}).items()},
            )
            world.vswitches[vsw.vswitch_id] = vsw
        for item in data.get("security_groups") or []:
            sg = WorldSecurityGroup(item["id"], item.get("vpc_id", world.vpc_id), item.get("name", ""))
            world.security_groups[sg.security_group_id] = sg
        for item in data.get("instance_types") or []:
            it = WorldInstanceType(
                instance_type=item["type"], eni_quantity=int(item["eni_quantity"]),
                ips_per_eni=int(item["ips_per_eni"]), ipv6_per_eni=int(item.get("ipv6_per_eni", 0)),
                eni_total_quantity=int(item.get("eni_total_quantity", item["eni_quantity"])),
                trunk_supported=bool(item.get("trunk_supported", False)),
                eri_quantity=int(item.get("eri_quantity", 0)),
            )
            world.instance_types[it.instance_type] = it
        alloc = _Allocator(world)
        for item in data.get("nodes") or []:
            _add_node(world, alloc, item)
        generate = dict(data.get("generate") or {})
        generate.update(overrides or {})
        if generate:
            _generate_nodes(world, alloc, generate)
        for item in data.get("stray_enis") or []:
            _add_stray_enis(world, alloc, item)
    except ScenarioError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise ScenarioError(f"scenario {name!r}: invalid or missing field: {err!r}") from err
    return world


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class _Allocator:
    """Hands out deterministic IDs and addresses, so a scenario loads the same every time."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.counter = 0
        self.next_host: dict[str, int] = {}
        self.networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}

    def eni_id(self) -> str:
        self.counter += 1
        return "eni-" + hashlib.sha1(f"{self.world.name}/{self.counter}".encode()).hexdigest()[:20]

    def mac(self) -> str:
        return f"00:16:3e:{(self.counter >> 16) & 255:02x}:{(self.counter >> 8) & 255:02x}:{self.counter & 255:02x}"

    def ip(self, vswitch_id: str) -> str:
        net = self.networks.get(vswitch_id)
        if net is None:  # parsed once per vSwitch: the scale scenario hands out 180,000 addresses
            vsw = self.world.vswitches.get(vswitch_id)
            net = self.networks[vswitch_id] = ipaddress.ip_network(
                vsw.cidr_block if vsw else "10.255.0.0/16", strict=False)
        index = self.next_host.get(vswitch_id, 1)
        self.next_host[vswitch_id] = index + 1
        return str(net.network_address + (index % (net.num_addresses - 4)) + 1)

    def prefix(self, vswitch_id: str) -> str:
        """A /28 IPv4 prefix, handed out from the top of the vSwitch CIDR down (single addresses come
        from the bottom), skipping the last /28, which holds addresses the VPC reserves."""
        net = self.networks.get(vswitch_id)
        if net is None:
            vsw = self.world.vswitches.get(vswitch_id)
            net = self.networks[vswitch_id] = ipaddress.ip_network(
                vsw.cidr_block if vsw else "10.255.0.0/16", strict=False)
        index = self.next_host.get("prefix/" + vswitch_id, 0)
        self.next_host["prefix/" + vswitch_id] = index + 1
        return f"{net.broadcast_address + 1 - 16 * (index + 2)}/28"


def _add_node(world: World, alloc: _Allocator, item: dict[str, Any]) -> WorldNode:
    """A node: `enis` secondary ENIs holding `pods` in-use and `idle` idle IPs in total."""
    zone = item["zone"]
    vswitch = item.get("vswitch") or _first_vswitch(world, zone)
    instance_type = item["instance_type"]
    if instance_type not in world.instance_types:
        raise ScenarioError(
            f"scenario {world.name!r}: node {item['name']!r} names unknown instance type {instance_type!r}")
    derived_instance_id = "i-" + hashlib.sha1(f"{world.name}/{item['name']}".encode()).hexdigest()[:20]
    node = WorldNode(
        name=item["name"],
        instance_id=item.get("instance_id", derived_instance_id),
        instance_type=instance_type, zone_id=zone, vswitch_id=vswitch,
        primary_ip=item.get("primary_ip") or alloc.ip(vswitch),
        ready=bool(item.get("ready", True)),
        ready_message=str(item.get("ready_message", "kubelet is posting ready status")),
        sufficient_ip=item.get("sufficient_ip", True),
        labels=dict(item.get("labels") or {}), annotations=dict(item.get("annotations") or {}),
        min_pool_size=int(item.get("min_pool_size", 0)), max_pool_size=int(item.get("max_pool_size", 5)),
        last_sync_openapi=item.get("last_sync_openapi_ago") and world.started_at - float(item["last_sync_openapi_ago"]),
        kube=dict(item.get("kube") or {}),
    )
    limits = world.instance_types[instance_type]
    eni_count = int(item.get("enis", 1))
    pods, idle = int(item.get("pods", 0)), int(item.get("idle", 0))
    for _ in range(eni_count):
        eni = WorldEni(eni_id=alloc.eni_id(), vswitch_id=vswitch, zone_id=zone, instance_id=node.instance_id,
                       mac=alloc.mac(), created_at=world.started_at - 86400)
        node.enis.append(eni)
    if item.get("ipv4_prefixes") is not None:
        _add_prefixes(world, alloc, node, int(item["ipv4_prefixes"]), pods + idle)
    # Fill ENIs in order, as Terway's most_ips selection does, up to the per-ENI limit;
    # `spread_ips: true` deals them out round-robin instead (no ENI left without an address).
    wanted = [f"default/{node.name}-pod-{i}" for i in range(pods)] + [""] * idle
    wanted.reverse()  # pop() from the end is O(1); the order handed out stays pods first
    if item.get("spread_ips"):
        while wanted and any(len(e.ips) < limits.ips_per_eni for e in node.enis):
            for eni in node.enis:
                if wanted and len(eni.ips) < limits.ips_per_eni:
                    eni.ips.append(WorldIP(ip=alloc.ip(vswitch), pod_id=wanted.pop()))
    for eni in node.enis:
        while wanted and len(eni.ips) < limits.ips_per_eni:
            eni.ips.append(WorldIP(ip=alloc.ip(vswitch), pod_id=wanted.pop()))
    if wanted:
        raise ScenarioError(f"scenario {world.name!r}: node {node.name!r} holds more IPs than "
                            f"{eni_count} ENIs of {instance_type} allow")
    world.nodes[node.name] = node
    return node


def _add_prefixes(world: World, alloc: _Allocator, node: WorldNode, count: int, addresses: int) -> None:
    """Prefix mode: each ENI holds its primary address plus /28 prefixes, `count` in all, filled ENI by
    ENI up to `ips_per_eni` slots (a prefix takes one slot, as in Terway's syncPrefixAllocation). The
    daemon assigns pod IPs from the prefixes without telling the Node CR, so such a node takes no
    `pods`/`idle`."""
    if addresses:
        raise ScenarioError(f"scenario {world.name!r}: node {node.name!r} is in prefix mode (ipv4_prefixes): "
                            "the Node CR holds no pod or idle IPs there, drop `pods` and `idle`")
    node.ip_prefix = True
    slots = world.instance_types[node.instance_type].ips_per_eni - 1  # the primary address takes one
    for eni in node.enis:
        eni.ips.append(WorldIP(ip=alloc.ip(node.vswitch_id)))
        while count and len(eni.ipv4_prefixes) < slots:
            eni.ipv4_prefixes.append(alloc.prefix(node.vswitch_id))
            count -= 1
    if count:
        raise ScenarioError(f"scenario {world.name!r}: node {node.name!r} holds more prefixes than its ENIs allow")


def _first_vswitch(world: World, zone: str) -> str:
    for vsw in world.vswitches.values():
        if vsw.zone_id == zone:
            return vsw.vswitch_id
    raise ScenarioError(f"scenario {world.name!r}: no vSwitch in zone {zone!r}")


def _generate_nodes(world: World, alloc: _Allocator, gen: dict[str, Any]) -> None:
    """Many alike nodes for scale scenarios: `nodes` of them spread over the zones' vSwitches.

    Keys: nodes, instance_type, enis (per node), pods (per node), idle (per node), name_prefix,
    spread_ips (deal IPs round-robin over the ENIs).
    """
    count = int(gen.get("nodes", 0))
    zones = sorted({v.zone_id for v in world.vswitches.values()})
    by_zone = {z: [v.vswitch_id for v in world.vswitches.values() if v.zone_id == z] for z in zones}
    for i in range(count):
        zone = zones[i % len(zones)]
        vswitches = by_zone[zone]
        _add_node(world, alloc, {
            "name": f"{gen.get('name_prefix', world.region_id + '.10.')}{i // 250}.{i % 250}",
            "zone": zone, "vswitch": vswitches[(i // len(zones)) % len(vswitches)],
            "instance_type": gen["instance_type"], "enis": gen.get("enis", 1),
            "pods": gen.get("pods", 0), "idle": gen.get("idle", 0),
            "min_pool_size": gen.get("min_pool_size", 0), "max_pool_size": gen.get("max_pool_size", 5),
            "spread_ips": gen.get("spread_ips", False),
        })


def _add_stray_enis(world: World, alloc: _Allocator, item: dict[str, Any]) -> None:
    """ENIs on no node: `count` of them, `status`, `creator`, `age_seconds` since creation.

    `pod_eni: {namespace, name, phase, type, release_strategy, release_after, last_seen_ago}` gives
    each a PodENI, named `<name>-<ordinal>` as a StatefulSet's pods are.
    """
    vswitch = item.get("vswitch") or next(iter(world.vswitches))
    zone = world.vswitches[vswitch].zone_id if vswitch in world.vswitches else item.get("zone", "")
    pod_eni = item.get("pod_eni")
    if pod_eni is not None and not (isinstance(pod_eni, dict) and pod_eni.get("name")):
        raise ScenarioError(f"scenario {world.name!r}: stray_enis pod_eni needs a mapping with a `name`")
    for ordinal in range(int(item.get("count", 1))):
        eni = WorldEni(
            eni_id=alloc.eni_id(), vswitch_id=vswitch, zone_id=zone,
            instance_id=str(item.get("instance_id", "")), status=str(item.get("status", "Available")),
            type=str(item.get("type", "Secondary")), creator=str(item.get("creator", "terway")),
            ips=[WorldIP(alloc.ip(vswitch))], mac=alloc.mac(),
            created_at=world.started_at - float(item.get("age_seconds", 3600)),
        )
        world.stray_enis.append(eni)
        if pod_eni is not None:
            world.pod_enis.append(WorldPodEni(
                namespace=str(pod_eni.get("namespace", "default")), name=f"{pod_eni['name']}-{ordinal}",
                eni_id=eni.eni_id, phase=str(pod_eni.get("phase", "Unbind")),
                alloc_type=str(pod_eni.get("type", "Fixed")),
                release_strategy=str(pod_eni.get("release_strategy", "TTL")),
                release_after=str(pod_eni.get("release_after", "24h0m0s")),
                last_seen=world.started_at - float(pod_eni.get("last_seen_ago", 3600)),
            ))
