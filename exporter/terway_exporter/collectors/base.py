"""The contract between sources and collectors.

A collector is a pure function from a `ClusterState` to metric families
(`prometheus_client.Metric`). It reads snapshots, never calls an API, keeps no
state, and is table-tested: a state in, exposition text out. The runtime renders
the exposition once per state change, so a scrape only copies bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Metric

from ..sources.cloud.snapshot import CloudSnapshot, CloudTargets
from ..sources.kube.snapshot import KubeSnapshot
from ..sources.status import SourceStatus


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
    terway_namespace: str = "kube-system"


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


Collect = Callable[[ClusterState], Iterable[Metric]]


@dataclass(frozen=True, slots=True)
class Parts:
    """A collector's output split into independent per-object parts (one per node).

    The renderer keeps each part's text and re-renders a part only when its `inputs` are no
    longer the very same objects (projections are immutable and kept while unchanged), or
    when `shared` (what every part depends on) is no longer equal: one Node CR changing
    re-renders one node, not 5,000 (kube-state-metrics caches per object the same way).
    """

    shared: tuple  # compared by ==
    empty: tuple[Metric, ...]  # the families, without samples, in exposition order
    # (key, inputs compared by identity, build) in exposition order; build() returns one
    # metric per family of `empty`, in that order, holding only this object's samples.
    items: Sequence[tuple[str, tuple, Callable[[], Sequence[Metric]]]]


@dataclass(frozen=True, slots=True)
class Collector:
    """A named collector; `reads` names the parts of the state it depends on, so the
    runtime re-runs it only when one of them changed ("cloud", "kube", "sources",
    "stats", "targets")."""

    name: str
    collect: Collect
    reads: frozenset[str]
    parts: Callable[[ClusterState], Parts] | None = None  # optional: per-object rendering of `collect`
