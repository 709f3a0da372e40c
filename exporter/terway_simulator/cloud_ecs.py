"""ECS (2014-05-26) actions of the simulated cloud, derived from the World on every call.

Each action answers only the forms its API reference documents (the references are listed in
docs/api-contract.md; cloud_contract.py refuses undocumented parameter names):

- DescribeNetworkInterfaces: `RegionId` required; `MaxResults` 10..500 ("less than 10 ... the
  default value is 10", "greater than 500 ... the default value is 500") + `NextToken`, or the
  deprecated `PageNumber`/`PageSize` (1..1000); `NetworkInterfaceId.N`, `PrivateIpAddress.N`
  (N up to 100), `Tag.N.Key/Value` (N up to 20); `Status` one of Available, Attaching, InUse,
  Detaching, Deleting. ENI tags are TagKey/TagValue.
- DescribeInstanceTypes: `InstanceTypes.N` (N up to 10); `MaxResults` 1..100 ("As of November 15,
  2023, only 100 can be used as the maximum value of MaxResults"; without NextToken only the first
  100 entries come back) + `NextToken`.
- DescribeSecurityGroups: `RegionId` required; `SecurityGroupIds` is a JSON array of up to 100 IDs;
  `MaxResults` up to 100 (default 10) + `NextToken`, or the deprecated `PageNumber`/`PageSize` (up to 50).
- DescribeAccountAttributes: `RegionId` required; `AttributeName.N` (N up to 8); every value is a string.

Values outside a documented range that the reference does not say are brought into range are
refused with InvalidParameter (HTTP 400; the code the real API answers is **unverified**). IDs that
do not exist are absent from list results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .cloud_http import ApiError, invalid_parameter
from .cloud_params import any_page, iso_time, json_list, matches, repeat_list, tag_filters, token_page
from .cloud_vpc import OWNER_ID
from .world import World, WorldEni, WorldInstanceType, WorldNode

ENI_STATUSES = frozenset({"Available", "Attaching", "InUse", "Detaching", "Deleting"})
INSTANCE_TYPE_PAGE_MAX = 100


def require_region(params: dict[str, str]) -> None:
    if not params.get("RegionId"):
        raise ApiError("MissingParameter", message=(
            "The input parameter \"RegionId\" that is mandatory for processing this request is not supplied."))


# --------------------------------------------------------------------------- ENIs


@dataclass(frozen=True)
class EniView:
    """A World ENI with what the API shows beside it: its node and device index."""

    eni: WorldEni
    node: WorldNode | None
    device_index: int


def eni_views(world: World) -> Iterator[EniView]:
    """Every ENI of the world, each node's Primary ENI first, then its secondaries, then strays."""
    for node in world.nodes.values():
        yield EniView(world.primary_eni(node), node, 0)
        for index, eni in enumerate(node.enis, start=1):
            yield EniView(eni, node, index)
    for eni in world.stray_enis:
        yield EniView(eni, None, 0)


def eni_tags(world: World, eni: WorldEni) -> list[dict[str, str]]:
    """Terway's tags (types/aliyun.go at v1.17.5): creator, plus the cluster ID (ack.aliyun.com) on
    controller-made ENIs."""
    if not eni.creator:
        return []
    tags = [{"TagKey": "creator", "TagValue": eni.creator}]
    if eni.creator == "terway-controller":
        tags.insert(0, {"TagKey": "ack.aliyun.com", "TagValue": world.cluster_id})
    return tags


def eni_vpc(world: World, eni: WorldEni) -> str:
    vsw = world.vswitches.get(eni.vswitch_id)
    return vsw.vpc_id if vsw else world.vpc_id


def eni_item(world: World, view: EniView) -> dict[str, Any]:
    eni = view.eni
    attached = bool(eni.instance_id) and eni.status in ("InUse", "Attaching", "Detaching")
    groups = list(world.security_groups)[:1]
    item: dict[str, Any] = {
        "NetworkInterfaceId": eni.eni_id, "Status": eni.status, "Type": eni.type,
        "InstanceId": eni.instance_id if attached else "", "VSwitchId": eni.vswitch_id, "VpcId": eni_vpc(world, eni),
        "ZoneId": eni.zone_id, "MacAddress": eni.mac, "PrivateIpAddress": eni.ips[0].ip if eni.ips else "",
        "CreationTime": iso_time(eni.created_at),
        "PrivateIpSets": {"PrivateIpSet": [
            {"PrivateIpAddress": ip.ip, "Primary": n == 0, "PrivateDnsName": "",
             "AssociatedPublicIp": {"PublicIpAddress": "", "AllocationId": ""}}
            for n, ip in enumerate(eni.ips)]},
        "Ipv6Sets": {"Ipv6Set": []}, "Ipv4PrefixSets": {"Ipv4PrefixSet": []}, "Ipv6PrefixSets": {"Ipv6PrefixSet": []},
        "SecurityGroupIds": {"SecurityGroupId": groups},
        "Tags": {"Tag": eni_tags(world, eni)},
        "AssociatedPublicIp": {"PublicIpAddress": "", "AllocationId": ""},
        "Description": "interface create by terway" if eni.creator.startswith("terway") else "",
        "NetworkInterfaceName": "", "NetworkInterfaceTrafficMode": "Standard", "OwnerId": str(OWNER_ID),
        "ResourceGroupId": "", "ServiceID": 0, "ServiceManaged": False, "SourceDestCheck": False,
        "DeleteOnRelease": eni.type == "Primary", "QueueNumber": 1, "QueuePairNumber": 0,
    }
    if attached:
        item["Attachment"] = {"InstanceId": eni.instance_id, "DeviceIndex": view.device_index,
                              "NetworkCardIndex": 0, "TrunkNetworkInterfaceId": ""}
    return item


def _eni_filter(world: World, params: dict[str, str]):
    """A predicate over EniView for the request's filters; raises the real errors for bad ones."""
    ids = set(repeat_list(params, "NetworkInterfaceId"))
    ips = set(repeat_list(params, "PrivateIpAddress"))
    tags = tag_filters(params)
    status = params.get("Status")
    if status and status not in ENI_STATUSES:
        raise invalid_parameter("Status", status)
    group = params.get("SecurityGroupId")
    if group and group not in world.security_groups:
        raise ApiError("InvalidSecurityGroupId.NotFound")
    first_group = next(iter(world.security_groups), "")
    fields: dict[str, Callable[[WorldEni], str]] = {
        "VSwitchId": lambda e: e.vswitch_id, "Status": lambda e: e.status, "Type": lambda e: e.type,
        "InstanceId": lambda e: e.instance_id, "VpcId": lambda e: eni_vpc(world, e),
        "PrimaryIpAddress": lambda e: e.ips[0].ip if e.ips else "",
    }
    # Only the filters the request sets, resolved once: the census pages through 40,000 ENIs.
    active = [(get, params[name]) for name, get in fields.items() if params.get(name)]

    def keep(view: EniView) -> bool:
        eni = view.eni
        if ids and eni.eni_id not in ids:
            return False
        if active and any(get(eni) != wanted for get, wanted in active):
            return False
        if group and group != first_group:
            return False
        if ips and not ips.intersection(ip.ip for ip in eni.ips):
            return False
        if tags:
            have = {(t["TagKey"], t["TagValue"]) for t in eni_tags(world, eni)}
            keys = {k for k, _ in have}
            return all((k, v) in have if v is not None else k in keys for k, v in tags)
        return True

    return keep


def describe_network_interfaces(world: World, params: dict[str, str]) -> dict[str, Any]:
    require_region(params)
    if not matches(params, "RegionId", world.region_id):
        found: list[EniView] = []
    else:
        keep = _eni_filter(world, params)
        found = [view for view in eni_views(world) if keep(view)]
    page, paging = any_page(found, params, token=(10, 10, 500), clamp=True, numbered=(10, 1000))
    return {**paging, "NetworkInterfaceSets": {"NetworkInterfaceSet": [eni_item(world, v) for v in page]}}


# --------------------------------------------------------------------------- instance types


def _size(instance_type: str) -> tuple[int, float]:
    """vCPUs and GiB guessed from the type name (ecs.g7.2xlarge -> 8 vCPU, 32 GiB)."""
    parts = instance_type.split(".")
    family, size = (parts[1] if len(parts) > 1 else ""), parts[-1]
    match = re.match(r"(\d*)xlarge$", size)
    cpus = 4 * int(match.group(1) or 1) if match else {"large": 2, "medium": 1, "small": 1}.get(size, 2)
    per_cpu = {"c": 2, "g": 4, "r": 8}.get(family[:1], 4)
    return cpus, float(cpus * per_cpu)


def instance_type_item(it: WorldInstanceType) -> dict[str, Any]:
    cpus, memory = _size(it.instance_type)
    parts = it.instance_type.split(".")
    return {
        "InstanceTypeId": it.instance_type, "InstanceTypeFamily": ".".join(parts[:2]),
        "CpuCoreCount": cpus, "MemorySize": memory, "EniQuantity": it.eni_quantity,
        "EniPrivateIpAddressQuantity": it.ips_per_eni, "EniIpv6AddressQuantity": it.ipv6_per_eni,
        "EniTotalQuantity": it.eni_total_quantity or it.eni_quantity, "EniTrunkSupported": it.trunk_supported,
        "EriQuantity": it.eri_quantity, "MaximumQueueNumberPerEni": 4, "PrimaryEniQueueNumber": 4,
        "SecondaryEniQueueNumber": 4, "TotalEniQueueQuantity": 4 * it.eni_quantity,
        "InstanceBandwidthRx": 1024000, "InstanceBandwidthTx": 1024000,
        "NetworkCards": {"NetworkCardInfo": [{"NetworkCardIndex": 0}]},
    }


def describe_instance_types(world: World, params: dict[str, str]) -> dict[str, Any]:
    wanted = repeat_list(params, "InstanceTypes")
    found = [it for it in world.instance_types.values()
             if (not wanted or it.instance_type in wanted)
             and matches(params, "InstanceTypeFamily", ".".join(it.instance_type.split(".")[:2]))]
    page, paging = token_page(found, params, minimum=1, default=INSTANCE_TYPE_PAGE_MAX,
                              maximum=INSTANCE_TYPE_PAGE_MAX, clamp=False)
    return {"NextToken": paging["NextToken"],
            "InstanceTypes": {"InstanceType": [instance_type_item(it) for it in page]}}


# --------------------------------------------------------------------------- security groups


def describe_security_groups(world: World, params: dict[str, str]) -> dict[str, Any]:
    require_region(params)
    wanted = json_list(params, "SecurityGroupIds", limit=100)
    found = [
        sg for sg in world.security_groups.values()
        if matches(params, "RegionId", world.region_id) and (wanted is None or sg.security_group_id in wanted)
        and matches(params, "SecurityGroupId", sg.security_group_id) and matches(params, "VpcId", sg.vpc_id)
        and matches(params, "SecurityGroupName", sg.name)
    ]
    page, paging = any_page(found, params, token=(1, 10, 100), clamp=False, numbered=(10, 50))
    items = [{
        "SecurityGroupId": sg.security_group_id, "SecurityGroupName": sg.name, "SecurityGroupType": "normal",
        "VpcId": sg.vpc_id, "CreationTime": iso_time(world.started_at - 30 * 86400), "Description": "",
        "ResourceGroupId": "", "ServiceManaged": False, "RuleCount": 4, "EcsCount": len(world.nodes),
        "Tags": {"Tag": []},
    } for sg in page]
    return {**paging, "RegionId": world.region_id, "SecurityGroups": {"SecurityGroup": items}}


# --------------------------------------------------------------------------- account attributes


def _attribute_values(world: World) -> dict[str, list[str]]:
    return {
        "instance-network-type": ["vpc"],
        "max-security-groups": ["100"],
        "max-elastic-network-interfaces": [str(world.eni_quota)],
        "max-postpaid-instance-vcpu-count": ["10000"],
        "max-spot-instance-vcpu-count": ["10000"],
        "used-postpaid-instance-vcpu-count": [str(sum(_size(n.instance_type)[0] for n in world.nodes.values()))],
        "used-spot-instance-vcpu-count": ["0"],
        "max-dedicated-hosts": ["0"],
        "supported-postpaid-instance-types": sorted(world.instance_types),
        "max-axt-command-count": ["500"],
        "max-axt-invocation-daily": ["10000"],
        "real-name-authentication": ["yes"],
        "max-cloud-assistant-activation-count": ["100"],
    }


def describe_account_attributes(world: World, params: dict[str, str]) -> dict[str, Any]:
    require_region(params)
    names = repeat_list(params, "AttributeName")
    values = _attribute_values(world)
    items = [
        {"AttributeName": name, "AttributeValues": {"ValueItem": [
            {"Value": value, "Count": 1, "ZoneId": params.get("ZoneId", "")} for value in values[name]]}}
        for name in (names or list(values)) if name in values
    ]
    return {"AccountAttributeItems": {"AccountAttributeItem": items}}


# --------------------------------------------------------------------------- instances


def instance_item(world: World, node: WorldNode) -> dict[str, Any]:
    cpus, memory = _size(node.instance_type)
    enis = [world.primary_eni(node)] + node.enis
    return {
        "InstanceId": node.instance_id, "InstanceName": node.name, "HostName": node.name,
        "InstanceType": node.instance_type, "InstanceTypeFamily": ".".join(node.instance_type.split(".")[:2]),
        "Cpu": cpus, "Memory": int(memory * 1024), "ZoneId": node.zone_id, "RegionId": world.region_id,
        "Status": "Running", "InstanceNetworkType": "vpc",
        "CreationTime": iso_time(world.started_at - 7 * 86400),
        "VpcAttributes": {"VpcId": world.vpc_id, "VSwitchId": node.vswitch_id,
                          "PrivateIpAddress": {"IpAddress": [node.primary_ip]}},
        "NetworkInterfaces": {"NetworkInterface": [
            {"NetworkInterfaceId": e.eni_id, "Type": e.type, "MacAddress": e.mac,
             "PrimaryIpAddress": e.ips[0].ip if e.ips else "",
             "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": ip.ip, "Primary": i == 0}
                                                for i, ip in enumerate(e.ips)]}}
            for e in enis]},
        "SecurityGroupIds": {"SecurityGroupId": list(world.security_groups)[:1]},
        "Tags": {"Tag": [{"TagKey": "ack.aliyun.com", "TagValue": world.cluster_id}]},
    }


def describe_instances(world: World, params: dict[str, str]) -> dict[str, Any]:
    wanted = json_list(params, "InstanceIds", limit=100)
    found = [
        node for node in world.nodes.values()
        if matches(params, "RegionId", world.region_id) and (wanted is None or node.instance_id in wanted)
        and matches(params, "VpcId", world.vpc_id) and matches(params, "VSwitchId", node.vswitch_id)
        and matches(params, "ZoneId", node.zone_id) and matches(params, "InstanceType", node.instance_type)
        and matches(params, "Status", "Running")
    ]
    page, paging = any_page(found, params, token=(10, 10, 100), clamp=True, numbered=(10, 100))
    return {**paging, "Instances": {"Instance": [instance_item(world, n) for n in page]}}
