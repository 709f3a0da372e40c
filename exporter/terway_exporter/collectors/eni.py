"""ENI families: the region's ENI quota, the VPC's ENIs by status/type/creator,
leaked Terway ENIs and those PodENIs hold, instance type ENI limits and security group existence."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric

from ..model.state import ClusterState
from ..terway.enis import classify_detached
from .base import Collector
from .families import Family

QUOTA = Family(
    "terway_eni_quota",
    "The region's ENI quota for the account (Quota Center q_elastic-network-interfaces, "
    "else DescribeAccountAttributes max-elastic-network-interfaces).",
)
QUOTA_USAGE = Family(
    "terway_eni_quota_usage",
    "ENIs counted against the ENI quota. source=\"quota_center\": the account's usage in the region "
    "(Quota Center). source=\"vpc_census\" (when Quota Center gives no usage): only the cluster's VPC's "
    "non-primary ENIs from the cached ENI census, a lower bound: the quota is per account and region.",
    ("source",),
)
ENIS = Family(
    "terway_enis",
    "ENIs in the cluster's VPC by ECS status, ENI type and creator tag; cached from the "
    "ENI census, which lists every ENI of the VPC on a slow interval (default 15 minutes).",
    ("status", "type", "creator"),
)
LEAKED = Family(
    "terway_enis_leaked",
    "ENIs in the cluster's VPC created by Terway (creator tag terway or terway-controller) that sit "
    "Available (detached) longer than the leak grace period and that no PodENI references. "
    "creator=\"terway-controller\" is absent until the PodENIs could be listed.",
    ("creator",),
)
HELD = Family(
    "terway_enis_held_by_podeni",
    "ENIs in the cluster's VPC created by Terway that sit Available (detached) longer than the "
    "leak grace period but that a PodENI references, so Terway keeps them on purpose (phase "
    "Unbind: a fixed-IP pod's ENI kept until releaseAfter), by the PodENI's status.phase. "
    "Not counted in terway_enis_leaked.",
    ("phase",),
)
ENI_LIMIT = Family(
    "terway_instance_type_eni_limit",
    "ENIs an instance of the type can hold, the primary included (EniQuantity from "
    "DescribeInstanceTypes; cached for hours).",
    ("instance_type",),
)
IPS_PER_ENI = Family(
    "terway_instance_type_ips_per_eni",
    "IPv4 addresses per ENI of the instance type (EniPrivateIpAddressQuantity from "
    "DescribeInstanceTypes; cached for hours).",
    ("instance_type",),
)
SECURITY_GROUP_EXISTS = Family(
    "terway_security_group_exists",
    "1 when a security group the configuration names exists (DescribeSecurityGroups), 0 when not.",
    ("security_group_id",),
)


def collect_quota(state: ClusterState) -> Iterator[Metric]:
    cloud = state.cloud
    if cloud.eni_quota is not None:
        yield QUOTA.build([({}, cloud.eni_quota)])
    if cloud.eni_quota_usage is not None and cloud.eni_quota_usage_source is not None:
        yield QUOTA_USAGE.build_rows([((cloud.eni_quota_usage_source,), cloud.eni_quota_usage)])


def collect_enis(state: ClusterState) -> Iterator[Metric]:
    census = state.cloud.census
    if census is not None:
        yield ENIS.build_rows(sorted(census.counts.items()))


def collect_detached(state: ClusterState) -> Iterator[Metric]:
    detached = state.cloud.detached_enis
    if detached is None:
        return
    split = classify_detached(detached, state.kube.pod_enis, state.now, state.settings.leak_grace_period)
    yield LEAKED.build_rows(((creator,), count) for creator, count in sorted(split.leaked.items()))
    if split.held is not None:
        yield HELD.build_rows(((phase,), count) for phase, count in sorted(split.held.items()))


def collect_instance_types(state: ClusterState) -> Iterator[Metric]:
    limits = sorted(state.cloud.instance_types.values(), key=lambda t: t.instance_type)
    yield ENI_LIMIT.build_rows(((lim.instance_type,), lim.eni_quantity) for lim in limits)
    yield IPS_PER_ENI.build_rows(((lim.instance_type,), lim.ips_per_eni) for lim in limits)


def collect_security_groups(state: ClusterState) -> Iterator[Metric]:
    cloud = state.cloud
    rows = {sg: 1 for sg in cloud.security_groups} | {sg: 0 for sg in cloud.missing_security_groups}
    yield SECURITY_GROUP_EXISTS.build_rows(((sg_id,), exists) for sg_id, exists in sorted(rows.items()))


COLLECTORS: tuple[Collector, ...] = (
    Collector("eni_quota", collect=collect_quota, reads=frozenset({"cloud"})),
    Collector("enis", collect=collect_enis, reads=frozenset({"cloud"})),
    # Cloud (the detached ENIs) and Kubernetes (the PodENIs); `now` moves ENIs past the grace period.
    Collector("detached_enis", collect=collect_detached, reads=frozenset({"cloud", "kube", "now"})),
    Collector("instance_types", collect=collect_instance_types, reads=frozenset({"cloud"})),
    Collector("security_groups", collect=collect_security_groups, reads=frozenset({"cloud"})),
)
