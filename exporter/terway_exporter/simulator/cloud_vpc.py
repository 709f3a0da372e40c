"""VPC (2016-04-28) actions of the simulated cloud, derived from the World on every call.

DescribeVSwitches: PageNumber/PageSize paging (PageSize max 50, default 10; no NextToken),
filters VpcId, VSwitchId, ZoneId, VSwitchName. An unknown VSwitchId is simply absent from
the result, which is how Terway detects a missing vSwitch (alicloud-api.md §2.1).
VSwitchId also takes a comma-separated list of up to 20 IDs (the ROS data source's
documented limit; the API's own cap is unverified, so the simulator refuses more than 20
with InvalidParameter to keep clients honest about chunking).
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from .cloud_http import ApiError
from .cloud_params import iso_time, matches, number_page
from .world import World, WorldVSwitch

OWNER_ID = 1234567890123456  # the simulated account's UID
MAX_VSWITCH_IDS = 20
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
    wanted = [v for v in params.get("VSwitchId", "").split(",") if v]
    if len(wanted) > MAX_VSWITCH_IDS:
        raise ApiError("InvalidParameter", message=(
            f"The specified parameter VSwitchId is not valid: at most {MAX_VSWITCH_IDS} IDs are allowed."))
    found = [
        vsw for vsw in world.vswitches.values()
        if matches(params, "RegionId", world.region_id)
        and (not wanted or vsw.vswitch_id in wanted)
        and matches(params, "VpcId", vsw.vpc_id)
        and matches(params, "ZoneId", vsw.zone_id)
        and matches(params, "VSwitchName", vsw.name)
    ]
    page, paging = number_page(found, params, default=10, maximum=VSWITCH_PAGE_MAX)
    used = world.used_ips_by_vswitch() if any(v.available_ips is None for v in page) else {}
    return {**paging, "VSwitches": {"VSwitch": [vswitch_item(world, v, used) for v in page]}}
