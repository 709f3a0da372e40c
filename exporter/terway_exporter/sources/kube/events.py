"""Warning events naming a network error, and their cumulative count per (code, reason).

An Event object is one deduplicated series: the kubelet or controller bumps its `count`
(or `series.count`) when the same thing happens again. The tally therefore adds the
increase of each event's count since it was last seen, keyed by event UID: first seen with
count 3 adds 3, seen again with count 5 adds 2.

Exporter restarts: an event whose latest occurrence is older than `since` (the source's
start) adds nothing when first seen; its later increments are added. Prometheus reads a
restarted exporter's counter as a reset, so re-adding history would show up as a burst
of errors in `increase()` after every restart. Its (code, reason) series still appears,
at 0, so the next real occurrence is an increase. The one-shot `collect` command counts
every event present (since = 0).

The exporter lists events through core/v1, which also serves events written through
events.k8s.io/v1 (what Terway's controllers use since v1.17.2, see terway/errors.py). The API
server converts such an event (`Convert_v1_Event_To_core_Event`, kubernetes
pkg/apis/events/v1/conversion.go): `note` becomes `message`, `regarding` `involvedObject`,
`reportingController` `reportingComponent`, and `source`, `count`, `firstTimestamp` and
`lastTimestamp` come from the `deprecated*` fields the new recorder leaves empty, so only
`eventTime` and `series` date and count it. client-go's events.k8s.io recorder
(k8s.io/client-go/tools/events, event_broadcaster.go) writes the first occurrence without
`series`, the second with `series.count` 2 at once, and later ones when it flushes the series:
every 30 minutes, and once the series has gone 6 minutes without a repeat (checked every 6
minutes). For those events the counter moves in such steps.

The same stream also yields `PodWait` facts: a kubelet Warning on a pod saying its sandbox
network could not be set up, or that its volumes are not attached or mounted. The waiting-pods
metric joins them with the Pending pods (see pods.py); one small record per such event, gone
when the API server expires the event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...terway.errors import is_sandbox_network_failure, is_terway_component, network_error_code
from .fields import integer, obj, text, timestamp

# Kubelet and attach/detach controller reasons for a pod whose volumes are not ready: such a pod
# waits before its sandbox is created, like one waiting for its network.
VOLUME_REASONS = frozenset({"FailedMount", "FailedAttachVolume"})

# The window of the alerts on Terway's events (`increase(terway_network_errors_total[10m])` in
# alerts/terway-exporter.rules.yaml): `check` counts the events seen in it, as a running exporter would.
ALERT_WINDOW_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """A Warning event about Terway or pod networking."""

    code: str  # a known code, or "other"
    reason: str
    count: int  # occurrences so far
    last_seen: float  # unix seconds of the latest occurrence (0 when the event carries no time)


@dataclass(frozen=True, slots=True)
class PodWait:
    """A Warning on a pod about what its sandbox waits for."""

    pod: str  # involvedObject.uid, else "namespace/name"
    network: bool  # True: the sandbox network (CNI) failed; False: its volumes are not attached or mounted
    last_seen: float  # unix seconds of the latest occurrence


@dataclass(frozen=True, slots=True)
class EventRecord:
    """What the events store keeps of one Warning event: either part may be None, not both."""

    network: NetworkEvent | None = None
    pod_wait: PodWait | None = None


def project_warning(raw: dict[str, Any]) -> EventRecord | None:
    """The events reflector's projection: the network error and the pod wait an event tells of."""
    network, wait = project_event(raw), project_pod_wait(raw)
    if network is None and wait is None:
        return None
    return EventRecord(network=network, pod_wait=wait)


def project_event(raw: dict[str, Any]) -> NetworkEvent | None:
    """A core/v1 Event as a NetworkEvent; None for events that are not network-related Warnings.

    Either component may name Terway: `source.component` (core/v1 recorders) or `reportingComponent`
    (events.k8s.io/v1 recorders, whose core/v1 view has an empty `source`).
    """
    if text(raw, "type") not in ("", "Warning"):
        return None
    reason, message = text(raw, "reason"), text(raw, "message")
    source, reporting = text(obj(raw, "source"), "component"), text(raw, "reportingComponent")
    component = reporting if not is_terway_component(source) and is_terway_component(reporting) else (
        source or reporting)
    code = network_error_code(reason, message, component)
    if code is None:
        return None
    series = obj(raw, "series")
    count = max(integer(raw, "count") or 0, integer(series, "count") or 0, 1)
    return NetworkEvent(code=code, reason=reason, count=count, last_seen=_last_seen(raw))


def project_pod_wait(raw: dict[str, Any]) -> PodWait | None:
    """A Warning on a Pod saying its sandbox network failed or its volumes are not ready; else None."""
    if text(raw, "type") not in ("", "Warning"):
        return None
    involved = obj(raw, "involvedObject")
    if text(involved, "kind") != "Pod":
        return None
    reason = text(raw, "reason")
    if is_sandbox_network_failure(reason, text(raw, "message")):
        network = True
    elif reason in VOLUME_REASONS:
        network = False
    else:
        return None
    pod = text(involved, "uid")
    if not pod:
        namespace, name = text(involved, "namespace"), text(involved, "name")
        if not name:
            return None
        pod = f"{namespace}/{name}"
    return PodWait(pod=pod, network=network, last_seen=_last_seen(raw))


def _last_seen(raw: dict[str, Any]) -> float:
    """The latest occurrence an event records, from whichever of its times are set (0 when none)."""
    series = obj(raw, "series")
    times = (
        timestamp(raw, "lastTimestamp"), timestamp(series, "lastObservedTime"),
        timestamp(raw, "eventTime"), timestamp(raw, "firstTimestamp"),
        timestamp(obj(raw, "metadata"), "creationTimestamp"),
    )
    return max((t for t in times if t), default=0.0)


class EventTally:
    """Cumulative occurrences per (code, reason), fed by the events reflector's store changes."""

    def __init__(self, since: float) -> None:
        # Event times have whole seconds: an event in the very second the source started counts.
        self.since = math.floor(since)
        self._totals: dict[tuple[str, str], int] = {}

    def observe(self, key: str, old: EventRecord | NetworkEvent | None, new: EventRecord | NetworkEvent | None) -> None:
        """A store change for one event UID (old None: first seen; new None: gone)."""
        del key
        old, new = _network(old), _network(new)
        if new is None:
            return  # a deleted (expired) event: what it counted stays counted
        series = (new.code, new.reason)
        self._totals.setdefault(series, 0)
        if old is None:
            if new.last_seen >= self.since:
                self._totals[series] += new.count
            return
        # Counts only grow; a smaller one (a recreated object with a reused UID) adds nothing.
        self._totals[series] += max(new.count - old.count, 0)

    def totals(self) -> dict[tuple[str, str], int]:
        return dict(self._totals)


def _network(value: EventRecord | NetworkEvent | None) -> NetworkEvent | None:
    return value.network if isinstance(value, EventRecord) else value
