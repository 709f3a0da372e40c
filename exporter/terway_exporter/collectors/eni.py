"""ENI families: the region's ENI quota, the VPC's ENIs by status/type/creator,
leaked Terway ENIs and those PodENIs hold, instance type ENI limits and security group existence."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..sources.cloud.parse import TERWAY_CREATORS
from ..sources.cloud.snapshot import Eni
from ..sources.kube.snapshot import PodEni
from .base import ClusterState, Collector

# The creator tag of the ENIs Terway's controlplane creates per pod, the only ones a PodENI holds
# (pkg/controller/pod/pod_controller.go, AliyunContainerService/terway v1.17.5).
PER_POD_CREATOR = "terway-controller"
# PodENI status.phase values (pkg/apis/network.alibabacloud.com/v1beta1/types.go, terway v1.17.5),
# as `phase` label values: "" is Terway's ENIPhaseInitial. Any other value reads as "other".
PODENI_PHASES = {"": "Initial", "Bind": "Bind", "Binding": "Binding", "Unbind": "Unbind",
                 "Detaching": "Detaching", "Deleting": "Deleting"}
OTHER_PHASE = "other"


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


@dataclass(frozen=True, slots=True)
class DetachedEnis:
    """Terway-created ENIs detached past the grace period, split by whether a PodENI holds them."""

    leaked: dict[str, int]  # creator -> ENIs no PodENI references; a creator that cannot be told is absent
    held: dict[str, int] | None  # PodENI phase label -> ENIs a PodENI references; None: PodENIs unknown


def classify_detached(enis: Iterable[Eni], pod_enis: Mapping[str, PodEni] | None,
                      now: float, grace: float) -> DetachedEnis:
    """Split the Available Terway ENIs older than `grace` into leaked ones and those a PodENI holds.

    Terway's own ENI GC deletes a detached terway-controller ENI only when no PodENI's
    spec.allocations names it (`gcENIs` in pkg/controller/pod-eni/eni_controller.go, terway v1.17.5
    and v1.16.x): a fixed-IP pod's ENI stays detached on purpose until its releaseAfter. So an ENI any
    PodENI references is never leaked, whatever its creator tag. Without the PodENIs (never listed, or
    no Kubernetes access) the per-pod creator cannot be told apart and is left out of `leaked`.
    """
    leaked = dict.fromkeys(TERWAY_CREATORS, 0)
    held = None if pod_enis is None else dict.fromkeys(PODENI_PHASES.values(), 0)
    candidates = [eni for eni in enis if eni.status == "Available" and eni.creator in leaked
                  and eni.creation_time is not None and now - eni.creation_time > grace]
    wanted = {eni.eni_id for eni in candidates}
    referenced: dict[str, str] = {}  # ENI ID -> phase label of the (first) PodENI naming it
    for pod_eni in (pod_enis or {}).values() if wanted else ():  # a trunk cluster has a PodENI per pod
        for eni_id in pod_eni.eni_ids:
            if eni_id in wanted and eni_id not in referenced:
                referenced[eni_id] = PODENI_PHASES.get(pod_eni.phase, OTHER_PHASE)
    for eni in candidates:
        phase = referenced.get(eni.eni_id)
        if phase is None:
            leaked[eni.creator] += 1
        elif held is not None:
            held[phase] = held.get(phase, 0) + 1
    if pod_enis is None:
        del leaked[PER_POD_CREATOR]
    return DetachedEnis(leaked=leaked, held=held)


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
