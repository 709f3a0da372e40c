"""What the collectors, the checks and the `check` command read: the cluster's state at one moment.

The hub assembles a `ClusterState` from the sources' latest snapshots and statuses and the
exporter's own counters; everything above reads it and nothing below imports it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cloud import CloudSnapshot, CloudTargets
from .kube import KubeSnapshot
from .status import SourceStatus


@dataclass(frozen=True, slots=True)
class HistogramData:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    sum: float


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """Counters the exporter keeps about itself, copied at render time."""

    cloud_requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (api, code) -> calls
    cloud_request_durations: dict[str, HistogramData] = field(default_factory=dict)  # api ->
    cloud_rate_limit_wait: dict[str, float] = field(default_factory=dict)  # api -> seconds
    kube_watch_restarts: dict[tuple[str, str], int] = field(default_factory=dict)  # (resource, reason)
    scrapes_rejected: dict[str, int] = field(default_factory=dict)  # reason -> /metrics requests
    web_config: WebConfigStats | None = None  # None without --web.config.file


@dataclass(frozen=True, slots=True)
class WebConfigStats:
    """Loads of --web.config.file (see webconfig.WebSecurity.check)."""

    reload_success: bool = True  # the last load or reload of the file and its certificates succeeded
    failures: int = 0  # reloads that failed (the previous configuration stayed in force)
    last_success: float | None = None  # unix time of the last successful load
    cert_not_after: float | None = None  # notAfter of the serving certificate in force; None without TLS


@dataclass(frozen=True, slots=True)
class ExporterSettings:
    """Settings some collectors need (thresholds that are configuration, not data)."""

    leak_grace_period: float = 900.0


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Everything the collectors may read, as of `now` (unix seconds)."""

    now: float
    cloud: CloudSnapshot = field(default_factory=CloudSnapshot)
    kube: KubeSnapshot = field(default_factory=KubeSnapshot)
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    stats: ExporterStats = field(default_factory=ExporterStats)
    targets: CloudTargets = field(default_factory=CloudTargets)
    settings: ExporterSettings = field(default_factory=ExporterSettings)
    kube_enabled: bool = True  # False when the exporter runs without a cluster
    # Every source /readyz waits for had its first try (SnapshotHub.ready): an exposition of this state is
    # what /readyz promises, not one rendered halfway through the first sync.
    complete: bool = False


def synced(state: ClusterState, *sources: str) -> bool:
    """Whether each named source (`kube_workloads`, `kube_configmaps`, ...) has read its data once.

    Before that the snapshot's empty defaults would read as "no DaemonSet pods", "controlplane
    hosted" or "every check passes"; families built from it stay absent instead, as cloud families
    do before their first poll. A source the runtime never registered (tests, other runtimes) is
    taken at its snapshot's word. After the first success the last known data keeps being served.
    """
    for name in sources:
        status = state.sources.get(name)
        if status is not None and status.last_success is None:
            return False
    return True
