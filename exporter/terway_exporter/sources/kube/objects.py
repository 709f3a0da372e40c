"""Projections of the few single objects the exporter reads by name.

DaemonSet terway-eniip, Deployments terway-controlplane and coredns, Lease
terway-controlplane, the Terway ConfigMaps, Service default/kubernetes, and the
vSwitches and security groups PodNetworkings name. Each returns None for an object it does not keep
(a watch over a namespace sees the others too).
"""

from __future__ import annotations

from typing import Any

from ...model.kube import LeaseStatus, PodNetworkingRefs, WorkloadStatus
from .fields import integer, items, name_of, obj, strings, text, timestamp

DAEMONSET = "terway-eniip"
CONTROLPLANE = "terway-controlplane"  # Deployment, Lease and ConfigMap share the name
COREDNS = "coredns"
ENI_CONFIG = "eni-config"
KUBERNETES_SERVICE = "kubernetes"
# The key a dynamic-config ConfigMap (named by the node label `terway-config`) carries.
DYNAMIC_CONFIG_KEY = "eni_conf"


def project_daemonset(raw: dict[str, Any]) -> WorkloadStatus | None:
    name = name_of(raw)
    if name != DAEMONSET:
        return None
    status = obj(raw, "status")
    return WorkloadStatus(
        name=name,
        desired=integer(status, "desiredNumberScheduled") or 0,
        available=integer(status, "numberAvailable") or 0,
        ready=integer(status, "numberReady") or 0,
    )


def project_deployment(raw: dict[str, Any]) -> WorkloadStatus | None:
    name = name_of(raw)
    if name not in (CONTROLPLANE, COREDNS):
        return None
    replicas = integer(obj(raw, "spec"), "replicas")
    status = obj(raw, "status")
    return WorkloadStatus(
        name=name,
        desired=1 if replicas is None else replicas,  # the API server defaults spec.replicas to 1
        available=integer(status, "availableReplicas") or 0,
        ready=integer(status, "readyReplicas") or 0,
    )


def project_lease(raw: dict[str, Any]) -> LeaseStatus | None:
    if name_of(raw) != CONTROLPLANE:
        return None
    spec = obj(raw, "spec")
    return LeaseStatus(
        holder=text(spec, "holderIdentity"),
        renew_time=timestamp(spec, "renewTime"),
        duration_seconds=integer(spec, "leaseDurationSeconds"),
    )


def project_configmap(raw: dict[str, Any]) -> dict[str, str]:
    """The data of eni-config, terway-controlplane and dynamic configs; {} for any other ConfigMap.

    Dynamic configs are named by node labels, which change independently of ConfigMaps,
    so every ConfigMap of the namespace is remembered by name, but only Terway's keep
    their data: a node labelled with a ConfigMap that has no `eni_conf` then reads as {}
    ("exists, configures nothing"), distinct from a missing one.
    """
    name = name_of(raw)
    data = {str(k): text(obj(raw, "data"), k) for k in obj(raw, "data")}
    if name in (ENI_CONFIG, CONTROLPLANE) or DYNAMIC_CONFIG_KEY in data:
        return data
    return {}


def project_service(raw: dict[str, Any]) -> str | None:
    """The ClusterIP of default/kubernetes."""
    if name_of(raw) != KUBERNETES_SERVICE or text(obj(raw, "metadata"), "namespace") not in ("", "default"):
        return None
    return text(obj(raw, "spec"), "clusterIP")


def project_pod_networking(raw: dict[str, Any]) -> PodNetworkingRefs:
    """The vSwitches and security groups a PodNetworking names.

    `spec.vSwitchOptions` is what the user configured; Terway's pod-networking controller resolves it
    into `status.vSwitches` (with zones) only when every ID resolves, and keeps the previous list
    otherwise (`pkg/controller/pod-networking/networking.go`, Terway v1.17.5), so both are kept.
    """
    name_of(raw)
    spec = obj(raw, "spec")
    configured = [v for v in strings(spec, "vSwitchOptions") if v]
    resolved = [text(v, "id") for v in items(obj(raw, "status"), "vSwitches") if text(v, "id")]
    return PodNetworkingRefs(
        vswitch_ids=tuple(dict.fromkeys(configured + resolved)),
        security_group_ids=tuple(dict.fromkeys(g for g in strings(spec, "securityGroupIDs") if g)),
    )
