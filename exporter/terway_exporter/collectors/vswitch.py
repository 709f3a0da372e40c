"""vSwitch families: free and usable IPs (VPC DescribeVSwitches) and which
configuration names each vSwitch (eni-config, dynamic node configs, Node CRs,
PodNetworking)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..sources.kube.snapshot import KubeSnapshot
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
    """(vswitch_id, source) for every vSwitch some configuration names."""
    pairs = {(v, "eni_config") for v in _eni_conf_vswitches(kube.eni_config)}
    for data in kube.dynamic_configs.values():
        pairs |= {(v, "node_config") for v in _eni_conf_vswitches(data)}
    for node in (kube.terway_nodes or {}).values():
        pairs |= {(v, "node_cr") for v in node.vswitch_ids if v}
    pairs |= {(v, "pod_networking") for v in kube.pod_networking_vswitches if v}
    return pairs


def _eni_conf_vswitches(data: dict[str, str] | None) -> set[str]:
    """vSwitch IDs in a ConfigMap's `eni_conf` JSON (`vswitches`: zone -> [IDs]).

    Read here directly until terway/eniconf.py offers a parser; an unparsable
    eni_conf yields nothing (the config checks report it).
    """
    if not data or "eni_conf" not in data:
        return set()
    try:
        conf = json.loads(data["eni_conf"])
    except (TypeError, ValueError):
        return set()
    vswitches = conf.get("vswitches") if isinstance(conf, dict) else None
    lists: Iterable = vswitches.values() if isinstance(vswitches, dict) else [vswitches or []]
    return {v for ids in lists if isinstance(ids, list) for v in ids if isinstance(v, str) and v}


COLLECTORS: tuple[Collector, ...] = (
    Collector("vswitch", collect=collect_vswitches, reads=frozenset({"cloud"})),
    Collector("vswitch_configured", collect=collect_configured, reads=frozenset({"kube"})),
)
