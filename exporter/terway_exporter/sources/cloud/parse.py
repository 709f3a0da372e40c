"""Pure functions from API response JSON to snapshot types.

Each takes one item of a response list; a malformed item raises `ValueError`
(the caller logs it once and skips it). Field names and shapes: the response parameters of
each call's API reference (docs/api-contract.md lists the calls and their reference pages).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
from typing import Any

from .snapshot import Eni, InstanceTypeLimits, SecurityGroup, VSwitch

TERWAY_CREATORS = ("terway", "terway-controller")


def _get(item: Any, key: str) -> Any:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    return item.get(key)


def _nested_list(item: Any, outer: str, inner: str) -> list[Any]:
    """`{"Outer": {"Inner": [...]}}` → the list; absent or null → []."""
    value = _get(item, outer)
    if isinstance(value, dict):
        value = value.get(inner)
    return value if isinstance(value, list) else []


def _required_str(item: Any, key: str) -> str:
    value = _get(item, key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {key}")
    return value


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(float(value))


def parse_time(value: Any) -> float | None:
    """ECS time "2019-12-25T12:31:31Z" (or with minutes only) to unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    return None


def vswitches(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "VSwitches", "VSwitch")


def parse_vswitch(item: Any) -> VSwitch:
    return VSwitch(
        vswitch_id=_required_str(item, "VSwitchId"),
        vpc_id=str(_get(item, "VpcId") or ""),
        zone_id=str(_get(item, "ZoneId") or ""),
        cidr_block=str(_get(item, "CidrBlock") or ""),
        name=str(_get(item, "VSwitchName") or ""),
        available_ips=_int(_get(item, "AvailableIpAddressCount")),
    )


def network_interfaces(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "NetworkInterfaceSets", "NetworkInterfaceSet")


def creator_of(tags: Iterable[Any]) -> str:
    """`terway`, `terway-controller` or `other`, from the `creator` tag (TagKey or Key)."""
    for tag in tags:
        if not isinstance(tag, dict):
            continue
        key = tag.get("TagKey", tag.get("Key"))
        if key == "creator":
            value = tag.get("TagValue", tag.get("Value"))
            return value if value in TERWAY_CREATORS else "other"
    return "other"


def parse_eni(item: Any) -> Eni:
    attachment = _get(item, "Attachment")
    instance_id = _get(item, "InstanceId") or (attachment.get("InstanceId") if isinstance(attachment, dict) else "")
    return Eni(
        eni_id=_required_str(item, "NetworkInterfaceId"),
        status=str(_get(item, "Status") or ""),
        type=str(_get(item, "Type") or ""),
        creator=creator_of(_nested_list(item, "Tags", "Tag")),
        instance_id=str(instance_id or ""),
        vswitch_id=str(_get(item, "VSwitchId") or ""),
        zone_id=str(_get(item, "ZoneId") or ""),
        private_ips=len(_nested_list(item, "PrivateIpSets", "PrivateIpSet")),
        creation_time=parse_time(_get(item, "CreationTime")),
    )


def instance_types(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "InstanceTypes", "InstanceType")


def parse_instance_type(item: Any) -> InstanceTypeLimits:
    trunk = _get(item, "EniTrunkSupported")
    return InstanceTypeLimits(
        instance_type=_required_str(item, "InstanceTypeId"),
        eni_quantity=_int(_get(item, "EniQuantity")),
        ips_per_eni=_int(_get(item, "EniPrivateIpAddressQuantity")),
        ipv6_per_eni=_int(_get(item, "EniIpv6AddressQuantity")),
        eni_total_quantity=_int(_get(item, "EniTotalQuantity")),
        trunk_supported=trunk is True or str(trunk).lower() == "true",
        eri_quantity=_int(_get(item, "EriQuantity")),
    )


def security_groups(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "SecurityGroups", "SecurityGroup")


def parse_security_group(item: Any) -> SecurityGroup:
    return SecurityGroup(
        security_group_id=_required_str(item, "SecurityGroupId"),
        vpc_id=str(_get(item, "VpcId") or ""),
        name=str(_get(item, "SecurityGroupName") or ""),
    )


def product_quota(body: dict[str, Any]) -> tuple[int, int | None]:
    """GetProductQuota → (TotalQuota, TotalUsage or None)."""
    quota = _get(body, "Quota")
    total = _get(quota, "TotalQuota")
    if total is None:
        raise ValueError("missing Quota.TotalQuota")
    usage = _get(quota, "TotalUsage")
    return _int(total), (None if usage is None else _int(usage))


def account_eni_quota(body: dict[str, Any]) -> int:
    """DescribeAccountAttributes → the `max-elastic-network-interfaces` value (a string)."""
    for attribute in _nested_list(body, "AccountAttributeItems", "AccountAttributeItem"):
        if _get(attribute, "AttributeName") == "max-elastic-network-interfaces":
            for value in _nested_list(attribute, "AttributeValues", "ValueItem"):
                return _int(_get(value, "Value"))
    raise ValueError("no max-elastic-network-interfaces in the response")
