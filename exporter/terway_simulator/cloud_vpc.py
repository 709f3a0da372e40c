"""VPC (2016-04-28) actions of the simulated cloud, derived from the World on every call.

DescribeVSwitches, as its reference documents it
(https://www.alibabacloud.com/help/en/vpc/developer-reference/api-vpc-2016-04-28-describevswitches):

- `VSwitchId` is "The ID of the vSwitch that you want to query": one ID. The value is compared
  whole, so a comma-separated list is simply an ID that does not exist and matches nothing. An ID
  that does not exist is absent from the answer (an empty list, not an error): Terway's
  DescribeVSwitchByID turns an empty list into "not found" (pkg/aliyun/client/vpc_service.go at
  v1.17.5).
- Paging is `PageNumber` (default 1) / `PageSize` ("Maximum value: 50. Default value: 10"); there is
  no NextToken. A PageSize outside 1..50 or a PageNumber below 1 is refused with InvalidParameter
  (the real code for that is **unverified**).
- "Specify at least one of the RegionId and VpcId parameters": neither answers MissingParameter.
- Filters the simulator models: `VpcId`, `VSwitchId`, `ZoneId`, `VSwitchName`; the other documented
  ones are refused as unsupported and undocumented names as invalid (cloud_contract.py).

The deprecated ECS twin (2014-05-26) is answered by the same function; its own reference documents
fewer parameters (no VSwitchName), which cloud_contract.py enforces.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from .cloud_http import ApiError
from .cloud_params import iso_time, matches, number_page
from .world import World, WorldVSwitch

OWNER_ID = 1234567890123456  # the simulated account's UID
VSWITCH_PAGE_MAX = 50


def available_ips(world: World, vsw: WorldVSwitch, used: dict[str, int]) -> int:
    """AvailableIpAddressCount: the scenario's figure, else usable addresses minus those held."""
    if vsw.available_ips is not None:
        return vsw.available_ips
    size = ipaddress.ip_network(vsw.cidr_block, strict=False).num_addresses - 4
    return max(size - used.get(vsw.vswitch_id, 0), 0)


def vswitch_item(world: World, vsw: WorldVSwitch, used: dict[str, int]) -> dict[str, Any]:
    digest = hashlib.sha1(vsw.vswitch_id.encode()).hexdigest()
    return {
        "VSwitchId": vsw.vswitch_id, "VpcId": vsw.vpc_id, "ZoneId": vsw.zone_id, "CidrBlock": vsw.cidr_block,
        "Ipv6CidrBlock": "", "EnabledIpv6": False, "AvailableIpAddressCount": available_ips(world, vsw, used),
        "Status": "Available", "VSwitchName": vsw.name, "Description": "", "IsDefault": False,
        "CreationTime": iso_time(world.started_at - 30 * 86400), "NetworkAclId": "", "OwnerId": OWNER_ID,
        "ResourceGroupId": "rg-acfm" + digest[:11], "ShareType": "",
        "RouteTable": {"RouteTableId": "vtb-" + digest[11:31], "RouteTableType": "System"},
        "Tags": {"Tag": [{"Key": k, "Value": v} for k, v in vsw.tags.items()]},
    }


def describe_vswitches(world: World, params: dict[str, str]) -> dict[str, Any]:
    if not params.get("RegionId") and not params.get("VpcId"):
        raise ApiError("MissingParameter", message=(
            "The input parameter \"RegionId\" or \"VpcId\" that is mandatory for processing this request "
            "is not supplied."))
    found = [
        vsw for vsw in world.vswitches.values()
        if matches(params, "RegionId", world.region_id)
        and matches(params, "VSwitchId", vsw.vswitch_id)  # one ID, compared whole
        and matches(params, "VpcId", vsw.vpc_id)
        and matches(params, "ZoneId", vsw.zone_id)
        and matches(params, "VSwitchName", vsw.name)
    ]
    page, paging = number_page(found, params, default=10, maximum=VSWITCH_PAGE_MAX)
    used = world.used_ips_by_vswitch() if any(v.available_ips is None for v in page) else {}
    return {**paging, "VSwitches": {"VSwitch": [vswitch_item(world, v, used) for v in page]}}
