"""vSwitch families: free and usable IPs (VPC DescribeVSwitches) and which
configuration names each vSwitch (eni-config, dynamic node configs, Node CRs,
PodNetworking)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric

from ..model.state import ClusterState
from ..terway.eniconf import configured_vswitches
from .base import Collector
from .families import Family

AVAILABLE = Family(
    "terway_vswitch_available_ip_addresses",
    "Free IPv4 addresses of the vSwitch (AvailableIpAddressCount from VPC DescribeVSwitches).",
    ("vswitch_id",),
)
USABLE = Family(
    "terway_vswitch_ip_addresses",
    "Usable IPv4 addresses of the vSwitch CIDR: its size minus the 4 the VPC reserves.",
    ("vswitch_id",),
)
INFO = Family(
    "terway_vswitch_info",
    "1 for each vSwitch the cluster uses or is configured to use.",
    ("vswitch_id", "vpc_id", "zone_id", "cidr_block", "name"),
)
CONFIGURED = Family(
    "terway_vswitch_configured",
    "1 when a configuration references the vSwitch; source is eni_config, node_config "
    "(dynamic per-node config), node_cr or pod_networking.",
    ("vswitch_id", "source"),
)


def collect_vswitches(state: ClusterState) -> Iterator[Metric]:
    vswitches = sorted(state.cloud.vswitches.values(), key=lambda v: v.vswitch_id)
    # None: the API's answer was not a count (logged); the series is left out rather than faked.
    yield AVAILABLE.build_rows(((v.vswitch_id,), v.available_ips) for v in vswitches if v.available_ips is not None)
    yield USABLE.build_rows(((v.vswitch_id,), v.usable_ips) for v in vswitches)
    yield INFO.build_rows(((v.vswitch_id, v.vpc_id, v.zone_id, v.cidr_block, v.name), 1) for v in vswitches)


def collect_configured(state: ClusterState) -> Iterator[Metric]:
    yield CONFIGURED.build_rows((pair, 1) for pair in sorted(configured_vswitches(state.kube)))


COLLECTORS: tuple[Collector, ...] = (
    Collector("vswitch", collect=collect_vswitches, reads=frozenset({"cloud"})),
    Collector("vswitch_configured", collect=collect_configured, reads=frozenset({"kube"})),
)
