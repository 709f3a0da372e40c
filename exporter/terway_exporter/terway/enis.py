"""Which ENIs Terway created, and which of its detached ENIs are leaked rather than kept on purpose."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..model.cloud import Eni
from ..model.kube import PodEni

# The `creator` tag values of the ENIs Terway creates: NetworkInterfaceTagCreatorValue ("terway") and
# TagTerwayController ("terway-controller") in types/aliyun.go (AliyunContainerService/terway v1.17.5).
TERWAY_CREATORS = ("terway", "terway-controller")
# The creator tag of the ENIs Terway's controlplane creates per pod, the only ones a PodENI holds
# (pkg/controller/pod/pod_controller.go, AliyunContainerService/terway v1.17.5).
PER_POD_CREATOR = "terway-controller"
# PodENI status.phase values (pkg/apis/network.alibabacloud.com/v1beta1/types.go, terway v1.17.5),
# as `phase` label values: "" is Terway's ENIPhaseInitial. Any other value reads as "other".
PODENI_PHASES = {"": "Initial", "Bind": "Bind", "Binding": "Binding", "Unbind": "Unbind",
                 "Detaching": "Detaching", "Deleting": "Deleting"}
OTHER_PHASE = "other"



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
