"""vSwitch families: free and usable IPs (VPC DescribeVSwitches) and which
configuration names each vSwitch (eni-config, dynamic node configs, Node CRs,
PodNetworking)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..sources.kube.snapshot import KubeSnapshot
from ..terway.eniconf import ENI_CONF_KEY, ConfigError, parse_eni_conf
from .base import ClusterState, Collector


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


def configured_vswitches(kube: KubeSnapshot) -> set[tuple[str, str]]:
    """(vswitch_id, source) for every vSwitch some configuration names.

    A dynamic config counts with the vSwitches its own `eni_conf` patch names (not the
    ones it inherits from eni-config); an unparsable config names none (the config
    checks report it).
    """
    pairs = {(v, "eni_config") for v in _named_vswitches(kube.eni_config)}
    for data in kube.dynamic_configs.values():
        pairs |= {(v, "node_config") for v in _named_vswitches(data)}
    for node in (kube.terway_nodes or {}).values():
        pairs |= {(v, "node_cr") for v in node.vswitch_ids if v}
    pairs |= {(v, "pod_networking") for v in kube.pod_networking_vswitches if v}
    return pairs


def _named_vswitches(data: dict[str, str] | None) -> frozenset[str]:
    if not data or ENI_CONF_KEY not in data:
        return frozenset()
    conf = parse_eni_conf(data[ENI_CONF_KEY])
    return frozenset() if isinstance(conf, ConfigError) else conf.vswitch_ids


COLLECTORS: tuple[Collector, ...] = (
    Collector("vswitch", collect=collect_vswitches, reads=frozenset({"cloud"})),
    Collector("vswitch_configured", collect=collect_configured, reads=frozenset({"kube"})),
)
