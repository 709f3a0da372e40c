"""Pure functions from API response JSON to snapshot types.

Each takes one item of a response list; a malformed item raises `ValueError`
(the caller logs it once and skips it). Field names and shapes: the response parameters of
each call's API reference (docs/api-contract.md lists the calls and their reference pages).
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Iterable
from typing import Any

from ...model.cloud import Eni, InstanceTypeLimits, SecurityGroup, VSwitch
from ...terway.enis import TERWAY_CREATORS
from ...utf8 import valid_utf8

log = logging.getLogger(__name__)



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
    return valid_utf8(value)


def _str(item: Any, key: str) -> str:
    """An optional text field ("" when absent), as valid UTF-8 (it may become a label value)."""
    return valid_utf8(str(_get(item, key) or ""))


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(float(value))


# Above this a count is not a count (float64 stops being exact; no quota or vSwitch comes near it).
MAX_COUNT = 2**53


def _count(item: Any, key: str, default: int = 0) -> int:
    """A non-negative count field; raises ValueError for a negative, fractional-nonsense or absurd one."""
    value = _get(item, key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} is {str(value)[:40]!r}, not a number") from None
    if not 0 <= number <= MAX_COUNT:  # also false for NaN
        raise ValueError(f"{key} is {str(value)[:40]}, not a count")
    return int(number)


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
    vswitch_id = _required_str(item, "VSwitchId")
    try:
        available: int | None = _count(item, "AvailableIpAddressCount")
    except ValueError as err:
        # Not a reason to drop the vSwitch (it would read as deleted): its free IPs are unknown.
        log.warning("DescribeVSwitches: %s of %s; its free IPs are left out", err, vswitch_id)
        available = None
    return VSwitch(
        vswitch_id=vswitch_id,
        vpc_id=_str(item, "VpcId"),
        zone_id=_str(item, "ZoneId"),
        cidr_block=_str(item, "CidrBlock"),
        name=_str(item, "VSwitchName"),
        available_ips=available,
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
        status=_str(item, "Status"),
        type=_str(item, "Type"),
        creator=creator_of(_nested_list(item, "Tags", "Tag")),
        instance_id=valid_utf8(str(instance_id or "")),
        vswitch_id=_str(item, "VSwitchId"),
        zone_id=_str(item, "ZoneId"),
        private_ips=len(_nested_list(item, "PrivateIpSets", "PrivateIpSet")),
        creation_time=parse_time(_get(item, "CreationTime")),
    )


def instance_types(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "InstanceTypes", "InstanceType")


def parse_instance_type(item: Any) -> InstanceTypeLimits:
    trunk = _get(item, "EniTrunkSupported")
    return InstanceTypeLimits(
        instance_type=_required_str(item, "InstanceTypeId"),
        eni_quantity=_count(item, "EniQuantity"),
        ips_per_eni=_count(item, "EniPrivateIpAddressQuantity"),
        ipv6_per_eni=_count(item, "EniIpv6AddressQuantity"),
        eni_total_quantity=_count(item, "EniTotalQuantity"),
        trunk_supported=trunk is True or str(trunk).lower() == "true",
    )


def security_groups(body: dict[str, Any]) -> list[Any]:
    return _nested_list(body, "SecurityGroups", "SecurityGroup")


def parse_security_group(item: Any) -> SecurityGroup:
    return SecurityGroup(
        security_group_id=_required_str(item, "SecurityGroupId"),
        vpc_id=_str(item, "VpcId"),
        name=_str(item, "SecurityGroupName"),
    )


def product_quota(body: dict[str, Any]) -> tuple[int, int | None]:
    """GetProductQuota → (TotalQuota, TotalUsage or None)."""
    quota = _get(body, "Quota")
    if _get(quota, "TotalQuota") is None:
        raise ValueError("missing Quota.TotalQuota")
    usage = None if _get(quota, "TotalUsage") is None else _count(quota, "TotalUsage")
    return _count(quota, "TotalQuota"), usage


def account_eni_quota(body: dict[str, Any]) -> int:
    """DescribeAccountAttributes → the `max-elastic-network-interfaces` value (a string)."""
    for attribute in _nested_list(body, "AccountAttributeItems", "AccountAttributeItem"):
        if _get(attribute, "AttributeName") == "max-elastic-network-interfaces":
            for value in _nested_list(attribute, "AttributeValues", "ValueItem"):
                return _count(value, "Value")
    raise ValueError("no max-elastic-network-interfaces in the response")
