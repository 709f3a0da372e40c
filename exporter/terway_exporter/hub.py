"""Where sources hand over what they read, and where the renderer picks it up.

Sources call `publish_cloud`/`publish_kube` with a new immutable snapshot and
`report` with their status; counters about the exporter's own work go through
`ExporterCounters`. Every change bumps `version` and sets `changed`, which wakes the
renderer; nothing here renders or formats metrics.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from .collectors.base import ClusterState, ExporterSettings, ExporterStats, HistogramData, WebConfigStats
from .sources.cloud.snapshot import CloudSnapshot, CloudTargets
from .sources.kube.snapshot import KubeSnapshot
from .sources.status import SourceStatus

# Cloud API latency buckets, seconds: the RPC APIs answer in 50-500 ms, throttled retries take longer.
CLOUD_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ExporterCounters:
    """Thread-safe counters about the exporter's own work (SDK calls run in worker threads)."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._durations: dict[str, list[float]] = {}  # api -> [per-bucket counts..., sum]
        self._wait: dict[str, float] = {}
        self._restarts: dict[tuple[str, str], int] = {}
        self._scrapes_rejected: dict[str, int] = {}
        self._web_config: WebConfigStats | None = None
        self._on_change = on_change

    def count_cloud_request(self, api: str, code: str, seconds: float) -> None:
        with self._lock:
            self._requests[(api, code)] = self._requests.get((api, code), 0) + 1
            row = self._durations.setdefault(api, [0.0] * (len(CLOUD_LATENCY_BUCKETS) + 2))
            row[bisect.bisect_left(CLOUD_LATENCY_BUCKETS, seconds)] += 1
            row[-1] += seconds
        self._changed()

    def add_rate_limit_wait(self, api: str, seconds: float) -> None:
        with self._lock:
            self._wait[api] = self._wait.get(api, 0.0) + seconds
        self._changed()

    def count_watch_restart(self, resource: str, reason: str) -> None:
        with self._lock:
            self._restarts[(resource, reason)] = self._restarts.get((resource, reason), 0) + 1
        self._changed()

    def count_scrape_rejected(self, reason: str) -> None:
        with self._lock:
            self._scrapes_rejected[reason] = self._scrapes_rejected.get(reason, 0) + 1
        self._changed()

    def report_web_config(self, ok: bool, cert_not_after: float | None, now: float | None = None) -> None:
        """A load or reload of --web.config.file: ok with the serving certificate's notAfter, or failed."""
        with self._lock:
            previous = self._web_config or WebConfigStats()
            if ok:
                self._web_config = replace(previous, reload_success=True, cert_not_after=cert_not_after,
                                           last_success=time.time() if now is None else now)
            else:
                self._web_config = replace(previous, reload_success=False, failures=previous.failures + 1)
        self._changed()

    def cloud_requests_total(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def snapshot(self) -> ExporterStats:
        with self._lock:
            durations = {api: _histogram(row) for api, row in self._durations.items()}
            return ExporterStats(
                cloud_requests=dict(self._requests),
                cloud_request_durations=durations,
                cloud_rate_limit_wait=dict(self._wait),
                kube_watch_restarts=dict(self._restarts),
                scrapes_rejected=dict(self._scrapes_rejected),
                web_config=self._web_config,
            )

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def _histogram(row: list[float]) -> HistogramData:
    cumulative, buckets = 0, []
    for bound, count in zip((*CLOUD_LATENCY_BUCKETS, float("inf")), row[:-1]):
        cumulative += int(count)
        buckets.append((bound, cumulative))
    return HistogramData(buckets=tuple(buckets), sum=row[-1])


class SnapshotHub:
    """The latest snapshot of each source and the status of each source.

    Safe to call from the event loop; `notify_threadsafe` is the variant for worker
    threads. `changed` is an asyncio.Event the renderer waits on.
    """

    def __init__(self, settings: ExporterSettings | None = None, kube_enabled: bool = True) -> None:
        self.settings = settings or ExporterSettings()
        self.kube_enabled = kube_enabled
        self.cloud = CloudSnapshot()
        self.kube = KubeSnapshot()
        self.targets = CloudTargets()
        self.sources: dict[str, SourceStatus] = {}
        self.version = 0
        self.changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = ExporterCounters(on_change=self.notify_threadsafe)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_cloud(self, snapshot: CloudSnapshot) -> None:
        self.cloud = snapshot
        self._bump()

    def publish_kube(self, snapshot: KubeSnapshot) -> None:
        self.kube = snapshot
        self._bump()

    def publish_targets(self, targets: CloudTargets) -> None:
        if targets != self.targets:
            self.targets = targets
            self._bump()

    def register(self, name: str) -> None:
        """Declare a source, so /readyz waits for its first attempt."""
        self.sources.setdefault(name, SourceStatus(name=name))

    def report(self, status: SourceStatus) -> None:
        self.sources[status.name] = replace(status, attempted=True)
        self._bump()

    def ready(self) -> bool:
        return bool(self.sources) and all(s.attempted for s in self.sources.values())

    def state(self, now: float | None = None) -> ClusterState:
        return ClusterState(
            now=time.time() if now is None else now,
            cloud=self.cloud, kube=self.kube, sources=dict(self.sources),
            stats=self.counters.snapshot(), targets=self.targets,
            settings=self.settings, kube_enabled=self.kube_enabled,
        )

    def notify_threadsafe(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                self._bump()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()
