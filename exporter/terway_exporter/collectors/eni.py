"""ENI families: the region's ENI quota, the VPC's ENIs by status/type/creator,
leaked Terway ENIs and those PodENIs hold, instance type ENI limits and security group existence."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..model.state import ClusterState
from ..terway.enis import classify_detached
from .base import Collector


def collect_quota(state: ClusterState) -> Iterator[Metric]:
    cloud = state.cloud
    if cloud.eni_quota is not None:
        yield GaugeMetricFamily(
            "terway_eni_quota",
            "The region's ENI quota for the account (Quota Center q_elastic-network-interfaces, "
            "else DescribeAccountAttributes max-elastic-network-interfaces).",
            value=cloud.eni_quota)
    if cloud.eni_quota_usage is not None and cloud.eni_quota_usage_source is not None:
        family = GaugeMetricFamily(
            "terway_eni_quota_usage",
            "ENIs counted against the ENI quota. source=\"quota_center\": the account's usage in the region "
            "(Quota Center). source=\"vpc_census\" (when Quota Center gives no usage): only the cluster's VPC's "
            "non-primary ENIs from the cached ENI census, a lower bound: the quota is per account and region.",
            labels=["source"])
        family.add_metric([cloud.eni_quota_usage_source], cloud.eni_quota_usage)
        yield family


def collect_enis(state: ClusterState) -> Iterator[Metric]:
    census = state.cloud.census
    if census is not None:
        family = GaugeMetricFamily(
            "terway_enis",
            "ENIs in the cluster's VPC by ECS status, ENI type and creator tag; cached from the "
            "ENI census, which lists every ENI of the VPC on a slow interval (default 15 minutes).",
            labels=["status", "type", "creator"])
        for (status, eni_type, creator), count in sorted(census.counts.items()):
            family.add_metric([status, eni_type, creator], count)
        yield family


def collect_detached(state: ClusterState) -> Iterator[Metric]:
    detached = state.cloud.detached_enis
    if detached is None:
        return
    split = classify_detached(detached, state.kube.pod_enis, state.now, state.settings.leak_grace_period)
    family = GaugeMetricFamily(
        "terway_enis_leaked",
        "ENIs in the cluster's VPC created by Terway (creator tag terway or terway-controller) that sit "
        "Available (detached) longer than the leak grace period and that no PodENI references. "
        "creator=\"terway-controller\" is absent until the PodENIs could be listed.",
        labels=["creator"])
    for creator, count in sorted(split.leaked.items()):
        family.add_metric([creator], count)
    yield family
    if split.held is not None:
        family = GaugeMetricFamily(
            "terway_enis_held_by_podeni",
            "ENIs in the cluster's VPC created by Terway that sit Available (detached) longer than the "
            "leak grace period but that a PodENI references, so Terway keeps them on purpose (phase "
            "Unbind: a fixed-IP pod's ENI kept until releaseAfter), by the PodENI's status.phase. "
            "Not counted in terway_enis_leaked.",
            labels=["phase"])
        for phase, count in sorted(split.held.items()):
            family.add_metric([phase], count)
        yield family


def collect_instance_types(state: ClusterState) -> Iterator[Metric]:
    limits = sorted(state.cloud.instance_types.values(), key=lambda t: t.instance_type)
    eni_limit = GaugeMetricFamily(
        "terway_instance_type_eni_limit",
        "ENIs an instance of the type can hold, the primary included (EniQuantity from "
        "DescribeInstanceTypes; cached for hours).",
        labels=["instance_type"])
    ips = GaugeMetricFamily(
        "terway_instance_type_ips_per_eni",
        "IPv4 addresses per ENI of the instance type (EniPrivateIpAddressQuantity from "
        "DescribeInstanceTypes; cached for hours).",
        labels=["instance_type"])
    for lim in limits:
        eni_limit.add_metric([lim.instance_type], lim.eni_quantity)
        ips.add_metric([lim.instance_type], lim.ips_per_eni)
    yield from (eni_limit, ips)


def collect_security_groups(state: ClusterState) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "terway_security_group_exists",
        "1 when a security group the configuration names exists (DescribeSecurityGroups), 0 when not.",
        labels=["security_group_id"])
    cloud = state.cloud
    rows = {sg: 1 for sg in cloud.security_groups} | {sg: 0 for sg in cloud.missing_security_groups}
    for sg_id, exists in sorted(rows.items()):
        family.add_metric([sg_id], exists)
    yield family


COLLECTORS: tuple[Collector, ...] = (
    Collector("eni_quota", collect=collect_quota, reads=frozenset({"cloud"})),
    Collector("enis", collect=collect_enis, reads=frozenset({"cloud"})),
    # Cloud (the detached ENIs) and Kubernetes (the PodENIs); `now` moves ENIs past the grace period.
    Collector("detached_enis", collect=collect_detached, reads=frozenset({"cloud", "kube", "now"})),
    Collector("instance_types", collect=collect_instance_types, reads=frozenset({"cloud"})),
    Collector("security_groups", collect=collect_security_groups, reads=frozenset({"cloud"})),
)
