"""Projections of Pods: Terway-namespace pods in full, cluster-wide Pending pods as WaitingPod.

Only Pending pods are watched cluster-wide, and only those that may still wait for their
sandbox are kept, so memory follows the number of stuck pods, never the number of running pods.

"Waiting for its network" means the pod's sandbox is not set up, never merely `ContainerCreating`:
that waiting reason is the kubelet's default for every container not started yet, image pulls
included (`PodInitializing` when the pod has init containers). A pod counts when:

- it is scheduled, Pending and not `hostNetwork` (a host-network sandbox needs no CNI, so it never
  waits for Terway);
- its `PodReadyToStartContainers` condition is `False`: the kubelet sets it `True` once the sandbox
  is created and its network configured, before it pulls images
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-condition/, formerly the Pod Lifecycle page's
  #pod-has-network; beta and on by default since Kubernetes 1.29,
  https://kubernetes.io/blog/2023/12/19/pod-ready-to-start-containers-condition-now-in-beta/).
  A pod whose volumes are not ready yet waits before its sandbox too, with the condition `False`
  (KEP-3085, https://www.kubernetes.dev/resources/keps/3085/, "Volume mounting issues"):
  when a `FailedMount`/`FailedAttachVolume` event names it and no sandbox-network failure does, it
  waits for storage and does not count;
- or, where the pod does not report the condition (older clusters, feature gate off), a kubelet
  Warning on the pod says its sandbox network failed (`FailedCreatePodSandBox` naming the CNI, or
  `NetworkNotReady`) within the last `SANDBOX_FAILURE_WINDOW` seconds (model/kube.py). Without such an event a
  `ContainerCreating` pod is most likely pulling its image and does not count. The window keeps a
  pod whose sandbox failed once and then got its network, and now pulls, from counting until it
  runs: the kubelet repeats the event while the failure lasts (client-go's event spam filter,
  tools/record/events_cache.go, lets one through per 5 minutes per object once its burst is spent).

Pods on a node that is not Ready follow the same rules. A node whose network plugin is not ready
(Terway's daemon not running yet on a new node, or crash-looping) leaves its pods' sandboxes
uncreated, with `NetworkNotReady` events: they count, they do wait for Terway. A node whose
kubelet stopped reporting keeps its pods' last reported status until the node lifecycle
controller evicts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...model.kube import ContainerStatus, PodSummary, WaitingPod
from .events import EventRecord
from .fields import ProjectionError, flag, integer, items, name_of, obj, text, timestamp

# The kubelet's default waiting reasons for containers not started yet (sandbox, image pull...):
# `PodInitializing` for every container of a pod with init containers, `ContainerCreating` otherwise.
NOT_STARTED_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
SANDBOX_CONDITION = "PodReadyToStartContainers"


def project_pod_summary(raw: dict[str, Any]) -> PodSummary:
    metadata, spec, status = obj(raw, "metadata"), obj(raw, "spec"), obj(raw, "status")
    return PodSummary(
        namespace=text(metadata, "namespace"),
        name=name_of(raw),
        node=text(spec, "nodeName"),
        phase=text(status, "phase"),
        ready=_condition_true(status, "Ready"),
        containers=tuple(_container(c) for c in items(status, "containerStatuses")),
        init_containers=tuple(_container(c) for c in items(status, "initContainerStatuses")),
    )


def project_waiting_pod(raw: dict[str, Any]) -> WaitingPod | None:
    """A scheduled Pending pod that may wait for its sandbox network; None for any other pod."""
    metadata, spec, status = obj(raw, "metadata"), obj(raw, "spec"), obj(raw, "status")
    node = text(spec, "nodeName")
    phase = text(status, "phase")
    if not node or phase not in ("", "Pending") or flag(spec, "hostNetwork"):
        return None
    conditions = items(status, "conditions")
    sandbox = _condition(conditions, SANDBOX_CONDITION)
    if sandbox == "True":
        return None  # sandbox and network are up: image pulls, init containers...
    if sandbox != "False":
        statuses = items(status, "containerStatuses") + items(status, "initContainerStatuses")
        if statuses and not any(_waiting_reason(c) in NOT_STARTED_REASONS for c in statuses):
            return None  # crash loops, image pull back-off...: the sandbox exists
    scheduled = next((c for c in conditions if text(c, "type") == "PodScheduled"), None)
    since = timestamp(scheduled, "lastTransitionTime") if scheduled is not None else None
    if since is None:
        since = timestamp(metadata, "creationTimestamp")
    if since is None:
        raise ProjectionError("neither a PodScheduled time nor metadata.creationTimestamp")
    return WaitingPod(node=node, since=since, ref=f"{text(metadata, 'namespace')}/{name_of(raw)}",
                      sandbox_ready=False if sandbox == "False" else None)


def join_pod_waits(pending: Mapping[str, WaitingPod], events: Mapping[str, Any]) -> dict[str, WaitingPod]:
    """The pending pods (keyed by UID, else "namespace/name") with what Warning events say of them."""
    if not pending:
        return {}
    failed: dict[str, float] = {}
    volume: set[str] = set()
    for record in events.values():
        wait = record.pod_wait if isinstance(record, EventRecord) else None
        if wait is None:
            continue
        if wait.network:
            failed[wait.pod] = max(failed.get(wait.pod, 0.0), wait.last_seen)
        else:
            volume.add(wait.pod)
    if not failed and not volume:
        return dict(pending)
    joined: dict[str, WaitingPod] = {}
    for key, pod in pending.items():
        refs = (key, pod.ref)
        failed_at = max((failed[r] for r in refs if r in failed), default=None)
        on_volume = any(r in volume for r in refs)
        joined[key] = dataclasses.replace(pod, network_failed_at=failed_at, volume_wait=on_volume) if (
            failed_at is not None or on_volume) else pod
    return joined


def _container(raw: dict[str, Any]) -> ContainerStatus:
    terminated = obj(obj(raw, "lastState"), "terminated")
    return ContainerStatus(
        name=text(raw, "name"),
        ready=flag(raw, "ready"),
        restarts=integer(raw, "restartCount") or 0,
        waiting_reason=_waiting_reason(raw),
        last_terminated_reason=text(terminated, "reason"),
    )


def _waiting_reason(raw: dict[str, Any]) -> str:
    return text(obj(obj(raw, "state"), "waiting"), "reason")


def _condition_true(status: dict[str, Any], kind: str) -> bool:
    return any(text(c, "type") == kind and text(c, "status") == "True" for c in items(status, "conditions"))


def _condition(conditions: list[Any], kind: str) -> str:
    """The status of a condition ("True", "False", "Unknown"), "" when the pod does not report it."""
    return next((text(c, "status") for c in conditions if text(c, "type") == kind), "")
