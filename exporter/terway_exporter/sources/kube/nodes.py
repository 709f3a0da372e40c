"""Projections of core Nodes and of `nodes.network.alibabacloud.com` CRs (raw dict -> snapshot type).

Pure functions: a missing field becomes the dataclass default, a field of the wrong
type raises `ProjectionError` (the reflector logs it and skips the object).
"""

from __future__ import annotations

import sys
from typing import Any

from ...model.kube import KubeNode, NodeCRNic, TerwayNodeCR
from .fields import ProjectionError, flag, integer, items, name_of, obj, strings, text, timestamp

LABEL_TERWAY_CONFIG = "terway-config"
LABEL_IGNORE = "k8s.aliyun.com/ignore-by-terway"
LABEL_EXCLUSIVE = "k8s.aliyun.com/exclusive-mode-eni-type"
ANNOTATION_MAX_IP = "k8s.aliyun.com/max-available-ip"


def project_node(raw: dict[str, Any]) -> KubeNode:
    metadata = obj(raw, "metadata")
    labels, annotations = obj(metadata, "labels"), obj(metadata, "annotations")
    conditions = {text(c, "type"): c for c in items(obj(raw, "status"), "conditions")}
    ready = conditions.get("Ready")
    sufficient = conditions.get("SufficientIP")
    return KubeNode(
        name=name_of(raw),
        instance_id=_instance_id(text(obj(raw, "spec"), "providerID")),
        # Interned: thousands of nodes share a few instance types, zones and regions.
        instance_type=sys.intern(
            _first_label(labels, "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")),
        zone_id=sys.intern(
            _first_label(labels, "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")),
        region_id=sys.intern(
            _first_label(labels, "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")),
        terway_config=text(labels, LABEL_TERWAY_CONFIG),
        ignored=text(labels, LABEL_IGNORE) == "true" or text(labels, "type") == "virtual-kubelet",
        exclusive_eni=text(labels, LABEL_EXCLUSIVE) == "eniOnly",
        ready=None if ready is None else text(ready, "status") == "True",
        ready_message=text(ready, "message") if ready is not None else "",
        sufficient_ip=_condition(sufficient),
        max_available_ip=_annotation_int(annotations, ANNOTATION_MAX_IP),
        created=timestamp(metadata, "creationTimestamp"),
    )


def project_terway_node(raw: dict[str, Any]) -> TerwayNodeCR:
    spec, status = obj(raw, "spec"), obj(raw, "status")
    metadata, cap = obj(spec, "nodeMetadata"), obj(spec, "nodeCap")
    eni, pool = obj(spec, "eni"), obj(spec, "pool")
    interfaces = obj(status, "networkInterfaces")
    return TerwayNodeCR(
        name=name_of(raw),
        instance_id=text(metadata, "instanceID"),
        instance_type=sys.intern(text(metadata, "instanceType")),
        zone_id=sys.intern(text(metadata, "zoneID")),
        adapters=integer(cap, "adapters"),
        total_adapters=integer(cap, "totalAdapters"),
        ipv4_per_adapter=integer(cap, "ipv4PerAdapter"),
        vswitch_ids=tuple(sys.intern(v) for v in strings(eni, "vSwitchOptions")),
        security_group_ids=tuple(sys.intern(g) for g in strings(eni, "securityGroupIDs")),
        min_pool_size=integer(pool, "minPoolSize"),
        max_pool_size=integer(pool, "maxPoolSize"),
        enable_ip_prefix=flag(eni, "enableIPPrefix"),
        enable_trunk=flag(eni, "enableTrunk"),
        # A map ENI id -> Nic; sorted so that equal CRs project to equal tuples.
        nics=tuple(_nic(eni_id, obj(interfaces, eni_id)) for eni_id in sorted(interfaces)),
        last_sync_openapi=timestamp(status, "lastSyncOpenAPITime"),
    )


def _nic(eni_id: str, raw: dict[str, Any]) -> NodeCRNic:
    in_use, free_valid, other = _address_counts(obj(raw, "ipv4"))
    prefix_addresses = sum(_prefix_addresses(p) for p in items(raw, "ipv4Prefix")
                           if text(p, "status") in OCCUPYING_PREFIX_STATUSES)
    return NodeCRNic(
        eni_id=text(raw, "id") or eni_id,
        status=sys.intern(text(raw, "status")),
        vswitch_id=sys.intern(text(raw, "vSwitchID")),
        unschedulable=flag(raw, "unschedulable"),
        conditions=tuple(sys.intern(c) for c in sorted(obj(raw, "conditions"))),
        ipv4_in_use=in_use,
        ipv4_free_valid=free_valid,
        ipv4_other=other,
        ipv4_prefix_addresses=prefix_addresses,
    )


# Prefix statuses that hold addresses on the ENI: Terway counts Valid and Frozen as occupying it
# (countOccupiedPrefixes, pkg/controller/multi-ip/node/pool.go, AliyunContainerService/terway v1.17.5);
# Invalid is gone from the cloud, Deleting on its way out.
OCCUPYING_PREFIX_STATUSES = frozenset({"Valid", "Frozen"})


def _prefix_addresses(prefix: Any) -> int:
    """Addresses of one ipv4Prefix entry ("10.0.1.16/28" -> 16; ECS hands out /28 prefixes)."""
    cidr = text(prefix, "prefix")
    _, slash, length = cidr.partition("/")
    if not slash or not length.isdigit() or int(length) > 32:
        raise ProjectionError(f"ipv4Prefix {cidr[:40]!r} is not an IPv4 prefix")
    return 1 << (32 - int(length))


def _address_counts(addresses: dict[str, Any]) -> tuple[int, int, int]:
    """(with a podID, Valid without one, the rest): counts, not records, so the snapshot stays
    small (one record per IP was most of the exporter's memory) while Terway's idle rule stays exact."""
    in_use = free_valid = other = 0
    for ip in addresses:
        address = obj(addresses, ip)
        if text(address, "podID"):
            in_use += 1
        elif text(address, "status") == "Valid":
            free_valid += 1
        else:
            other += 1
    return in_use, free_valid, other


def _instance_id(provider_id: str) -> str:
    """spec.providerID is "<region>.<instance-id>" on ACK (Terway splits it the same way)."""
    _, dot, instance = provider_id.partition(".")
    return instance if dot else ""


def _first_label(labels: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = text(labels, key)
        if value:
            return value
    return ""


def _condition(condition: dict[str, Any] | None) -> bool | None:
    if condition is None:
        return None
    status = text(condition, "status")
    return {"True": True, "False": False}.get(status)


def _annotation_int(annotations: dict[str, Any], key: str) -> int | None:
    # An annotation someone hand-edited into nonsense means "unknown", not "skip the node".
    value = text(annotations, key).strip()
    return int(value) if value.isdigit() else None
