"""Immutable snapshots of what the Alibaba Cloud source last read.

Each field is filled by one API family and carries no metric logic: collectors
(`terway_exporter.collectors`) turn these into metric families. A field that has
never been read successfully is `None` (its metric families are then absent);
after a failed poll the previous value stays in place and the source status says
it is stale.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# Alibaba Cloud reserves the first and the last three addresses of every vSwitch CIDR.
VPC_RESERVED_ADDRESSES = 4
# CloudSnapshot.eni_quota_usage_source values (the `source` label of terway_eni_quota_usage).
QUOTA_CENTER = "quota_center"
VPC_CENSUS = "vpc_census"


@dataclass(frozen=True, slots=True)
class VSwitch:
    vswitch_id: str
    vpc_id: str
    zone_id: str
    cidr_block: str
    name: str
    available_ips: int | None  # AvailableIpAddressCount; None when the API answered no count

    @property
    def usable_ips(self) -> int:
        """IPv4 addresses usable in the CIDR: its size minus the 4 the VPC reserves."""
        try:
            size = ipaddress.ip_network(self.cidr_block, strict=False).num_addresses
        except ValueError:
            return 0
        return max(size - VPC_RESERVED_ADDRESSES, 0)


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    security_group_id: str
    vpc_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class InstanceTypeLimits:
    """The ENI limits of one ECS instance type (DescribeInstanceTypes)."""

    instance_type: str
    eni_quantity: int  # EniQuantity: ENIs including the primary
    ips_per_eni: int  # EniPrivateIpAddressQuantity
    ipv6_per_eni: int = 0  # EniIpv6AddressQuantity
    eni_total_quantity: int = 0  # EniTotalQuantity
    trunk_supported: bool = False  # EniTrunkSupported


@dataclass(frozen=True, slots=True)
class Eni:
    """One ENI as DescribeNetworkInterfaces lists it (only the fields we use)."""

    eni_id: str
    status: str  # Available, InUse, Attaching, Detaching, Deleting, ...
    type: str  # Primary, Secondary, Trunk, Member
    creator: str  # "terway", "terway-controller" or "other" (from the `creator` tag)
    instance_id: str = ""
    vswitch_id: str = ""
    zone_id: str = ""
    private_ips: int = 0
    creation_time: float | None = None  # unix seconds


@dataclass(frozen=True, slots=True)
class EniCensus:
    """Every ENI of the cluster's VPC, read on the slow census interval."""

    counts: dict[tuple[str, str, str], int]  # (status, type, creator) -> ENIs
    by_instance: dict[str, tuple[Eni, ...]]  # instance_id -> attached ENIs (legacy IPAM)
    taken_at: float


@dataclass(frozen=True, slots=True)
class CloudTargets:
    """What the cloud source should look at; derived from flags or the cluster."""

    region_id: str | None = None
    vpc_id: str | None = None
    vswitch_ids: frozenset[str] = frozenset()
    security_group_ids: frozenset[str] = frozenset()
    instance_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CloudSnapshot:
    region_id: str | None = None
    vpc_id: str | None = None
    vswitches: dict[str, VSwitch] = field(default_factory=dict)
    # vSwitch IDs asked for that DescribeVSwitches did not return (deleted or wrong region).
    missing_vswitches: frozenset[str] = frozenset()
    security_groups: dict[str, SecurityGroup] = field(default_factory=dict)
    missing_security_groups: frozenset[str] = frozenset()
    eni_quota: int | None = None
    eni_quota_usage: int | None = None
    # Where eni_quota_usage comes from: QUOTA_CENTER (the account's usage in the region) or
    # VPC_CENSUS (only the cluster's VPC's secondary ENIs: a lower bound of the account's usage).
    eni_quota_usage_source: str | None = None
    # The VPC's Available ENIs that carry a Terway creator tag; None until first read. Which of them
    # are leaked also depends on the cluster's PodENIs, so the collectors decide (collectors/eni.py).
    detached_enis: tuple[Eni, ...] | None = None
    census: EniCensus | None = None
    instance_types: dict[str, InstanceTypeLimits] = field(default_factory=dict)
