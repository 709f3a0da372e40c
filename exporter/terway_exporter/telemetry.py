"""Counters about the exporter's own work: cloud calls, rate-limit waits, watch restarts, rejected
scrapes, --web.config.file loads. Sources and the server write them (from worker threads too); the
hub copies them into each `ClusterState` as `ExporterStats`. It sits just above model/, so every
layer that does work may count it without importing the hub.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from .model.state import ExporterStats, HistogramData, WebConfigStats

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
