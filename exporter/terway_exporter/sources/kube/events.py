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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...terway.errors import network_error_code
from .fields import integer, obj, text, timestamp


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """A Warning event about Terway or pod networking."""

    code: str  # a known code, or "other"
    reason: str
    count: int  # occurrences so far
    last_seen: float  # unix seconds of the latest occurrence (0 when the event carries no time)


def project_event(raw: dict[str, Any]) -> NetworkEvent | None:
    """A core/v1 Event as a NetworkEvent; None for events that are not network-related Warnings."""
    if text(raw, "type") not in ("", "Warning"):
        return None
    reason, message = text(raw, "reason"), text(raw, "message")
    component = text(obj(raw, "source"), "component") or text(raw, "reportingComponent")
    code = network_error_code(reason, message, component)
    if code is None:
        return None
    series = obj(raw, "series")
    count = max(integer(raw, "count") or 0, integer(series, "count") or 0, 1)
    times = (
        timestamp(raw, "lastTimestamp"), timestamp(series, "lastObservedTime"),
        timestamp(raw, "eventTime"), timestamp(raw, "firstTimestamp"),
        timestamp(obj(raw, "metadata"), "creationTimestamp"),
    )
    return NetworkEvent(code=code, reason=reason, count=count, last_seen=max((t for t in times if t), default=0.0))


class EventTally:
    """Cumulative occurrences per (code, reason), fed by the events reflector's store changes."""

    def __init__(self, since: float) -> None:
        # Event times have whole seconds: an event in the very second the source started counts.
        self.since = math.floor(since)
        self._totals: dict[tuple[str, str], int] = {}

    def observe(self, key: str, old: NetworkEvent | None, new: NetworkEvent | None) -> None:
        """A store change for one event UID (old None: first seen; new None: gone)."""
        del key
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
