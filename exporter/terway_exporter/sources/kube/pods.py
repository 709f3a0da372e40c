"""Projections of Pods: Terway-namespace pods in full, cluster-wide Pending pods as WaitingPod.

Only Pending pods are watched cluster-wide, and only those waiting for their sandbox are
kept, so memory follows the number of stuck pods, never the number of running pods.
"""

from __future__ import annotations

from typing import Any

from .fields import ProjectionError, flag, integer, items, name_of, obj, text, timestamp
from .snapshot import ContainerStatus, PodSummary, WaitingPod

# The kubelet's waiting reason while the sandbox (and so the pod's network) is being set up.
SANDBOX_WAITING_REASON = "ContainerCreating"


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
    """A scheduled Pending pod whose sandbox is not created yet; None for any other pod."""
    spec, status = obj(raw, "spec"), obj(raw, "status")
    node = text(spec, "nodeName")
    phase = text(status, "phase")
    if not node or phase not in ("", "Pending"):
        return None
    statuses = items(status, "containerStatuses") + items(status, "initContainerStatuses")
    creating = any(_waiting_reason(c) == SANDBOX_WAITING_REASON for c in statuses)
    if statuses and not creating:
        return None  # image pulls, crash loops...: not a network wait
    scheduled = next((c for c in items(status, "conditions") if text(c, "type") == "PodScheduled"), None)
    since = timestamp(scheduled, "lastTransitionTime") if scheduled is not None else None
    if since is None:
        since = timestamp(obj(raw, "metadata"), "creationTimestamp")
    if since is None:
        raise ProjectionError("neither a PodScheduled time nor metadata.creationTimestamp")
    return WaitingPod(node=node, since=since)


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
