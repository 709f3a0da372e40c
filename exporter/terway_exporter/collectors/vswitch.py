"""vSwitch families: free and usable IPs (VPC DescribeVSwitches) and which
configuration names each vSwitch (eni-config, dynamic node configs, Node CRs,
PodNetworking)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..model.state import ClusterState
from ..terway.eniconf import configured_vswitches
from .base import Collector


def collect_vswitches(state: ClusterState) -> Iterator[Metric]:
    vswitches = sorted(state.cloud.vswitches.values(), key=lambda v: v.vswitch_id)
    available = GaugeMetricFamily(
        "terway_vswitch_available_ip_addresses",
        "Free IPv4 addresses of the vSwitch (AvailableIpAddressCount from VPC DescribeVSwitches).",
        labels=["vswitch_id"])
    usable = GaugeMetricFamily(
        "terway_vswitch_ip_addresses",
        "Usable IPv4 addresses of the vSwitch CIDR: its size minus the 4 the VPC reserves.",
        labels=["vswitch_id"])
    info = GaugeMetricFamily(
        "terway_vswitch_info",
        "1 for each vSwitch the cluster uses or is configured to use.",
        labels=["vswitch_id", "vpc_id", "zone_id", "cidr_block", "name"])
    for vsw in vswitches:
        if vsw.available_ips is not None:  # None: the API's answer was not a count (logged)
            available.add_metric([vsw.vswitch_id], vsw.available_ips)
        usable.add_metric([vsw.vswitch_id], vsw.usable_ips)
        info.add_metric([vsw.vswitch_id, vsw.vpc_id, vsw.zone_id, vsw.cidr_block, vsw.name], 1)
    yield from (available, usable, info)


def collect_configured(state: ClusterState) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "terway_vswitch_configured",
        "1 when a configuration references the vSwitch; source is eni_config, node_config "
        "(dynamic per-node config), node_cr or pod_networking.",
        labels=["vswitch_id", "source"])
    for vswitch_id, source in sorted(configured_vswitches(state.kube)):
        family.add_metric([vswitch_id, source], 1)
    yield family


COLLECTORS: tuple[Collector, ...] = (
    Collector("vswitch", collect=collect_vswitches, reads=frozenset({"cloud"})),
    Collector("vswitch_configured", collect=collect_configured, reads=frozenset({"kube"})),
)
