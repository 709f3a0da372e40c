"""PodENIs (`podenis.network.alibabacloud.com`, v1beta1, namespaced) derived from the World.

Shaped as Terway's controlplane writes them (AliyunContainerService/terway v1.17.5): the
pod controller fills `spec.allocations[]` with the ENI it created (pkg/controller/pod/
pod_controller.go), the PodENI controller sets `status` (pkg/controller/pod-eni/
eni_controller.go): `phase` Bind with `eniInfos` status Bind once attached, Unbind with
`eniInfos` status Unbind and no instance once a fixed-IP pod's ENI is detached. Valid
against the CRD pkg/apis/crds/network.alibabacloud.com_podenis.yaml (tests/crds).
"""

from __future__ import annotations

from typing import Any

from .kube_objects import CRD_API_VERSION, ts, uid
from .world import World, WorldEni, WorldPodEni

# types/k8s.go (terway v1.17.5): the finalizer the pod controller puts on a PodENI.
FINALIZER = "network.alibabacloud.com/pod-eni"


def pod_eni(world: World, item: WorldPodEni, eni: WorldEni | None) -> dict[str, Any]:
    vsw = world.vswitches.get(eni.vswitch_id) if eni else None
    allocation_type: dict[str, Any] = {"type": item.alloc_type}
    if item.alloc_type == "Fixed":
        allocation_type["releaseStrategy"] = item.release_strategy
        if item.release_strategy == "TTL":
            allocation_type["releaseAfter"] = item.release_after
    allocation: dict[str, Any] = {
        "allocationType": allocation_type,
        "eni": {"id": item.eni_id, "mac": eni.mac if eni else "", "zone": eni.zone_id if eni else "",
                "vSwitchID": eni.vswitch_id if eni else "", "vpcID": world.vpc_id,
                "securityGroupIDs": sorted(world.security_groups)},
        "interface": "eth0", "defaultRoute": True,
    }
    if eni and eni.ips:
        allocation["ipv4"] = eni.ips[0].ip
    if vsw is not None:
        allocation["ipv4CIDR"] = vsw.cidr_block
    bound = item.phase in ("Bind", "Detaching")
    status: dict[str, Any] = {
        "phase": item.phase,
        "podLastSeen": ts(item.last_seen),
        "eniInfos": {item.eni_id: {"id": item.eni_id, "type": "Secondary", "status": "Bind" if bound else "Unbind"}},
    }
    if bound and eni and eni.instance_id:
        status["instanceID"] = eni.instance_id
    return {
        "apiVersion": CRD_API_VERSION, "kind": "PodENI",
        "metadata": {"name": item.name, "namespace": item.namespace, "uid": uid("podeni", item.namespace, item.name),
                     "generation": 1, "finalizers": [FINALIZER],
                     "creationTimestamp": ts(eni.created_at if eni else world.started_at)},
        "spec": {"allocations": [allocation], "zone": eni.zone_id if eni else ""},
        "status": status,
    }


def pod_enis(world: World) -> list[dict[str, Any]]:
    enis = {e.eni_id: e for e in world.stray_enis}
    return [pod_eni(world, item, enis.get(item.eni_id)) for item in world.pod_enis]
