"""Counters about the exporter's own work: cloud calls, rate-limit waits, watch restarts, rejected
scrapes, --web.config.file loads. Sources and the server write them (from worker threads too); the
hub copies them into each `ClusterState` as `ExporterStats`. It sits just above model/, so every
layer that does work may count it without importing the hub.

The values live in prometheus_client's own `Counter`, `Histogram` and `Gauge`, registered in a
private `CollectorRegistry` (never the global `REGISTRY`: two hubs in one process, as in the tests,
must not share or collide; https://prometheus.github.io/client_python/collector/custom/ shows
private registries). They are not served from that registry: the renderer formats them from the
`ExporterStats` copy in the `ClusterState` (collectors/exporter.py), because the exposition is a
pure function of that state and the renderer re-runs a collector only when the part of the state
it reads changed (`render._state_key` compares `stats` by value). Rendering straight from the live
registry would let a render show counts its cache key did not see. The names, HELP texts and
buckets below are the ones collectors/exporter.py exposes (tests/test_telemetry.py checks both
agree), so the private registry formatted by prometheus_client reads like the served families.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Sample

from .model.state import ExporterStats, HistogramData, WebConfigStats

# Cloud API latency buckets, seconds: the RPC APIs answer in 50-500 ms, throttled retries take longer.
CLOUD_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Family names as prometheus_client spells them (a counter without its `_total`) and their HELP.
CLOUD_REQUESTS = "terway_exporter_cloud_api_requests"
CLOUD_REQUESTS_HELP = "Cloud API calls the exporter made, by API and result code (Success or the error code)."
CLOUD_DURATION = "terway_exporter_cloud_api_request_duration_seconds"
CLOUD_DURATION_HELP = "Duration of cloud API calls, retries counted one by one."
RATE_LIMIT_WAIT = "terway_exporter_cloud_api_rate_limit_wait_seconds"
RATE_LIMIT_WAIT_HELP = "Time spent waiting for the exporter's own cloud API rate limiter."
WATCH_RESTARTS = "terway_exporter_kube_watch_restarts"
WATCH_RESTARTS_HELP = ("Kubernetes watches restarted, by resource and reason (expired resourceVersion, "
                       "errors, closed streams).")
SCRAPES_REJECTED = "terway_exporter_scrapes_rejected"
SCRAPES_REJECTED_HELP = ("/metrics requests refused (too_many_concurrent: every response slot busy "
                         "for 10 s) or aborted (write_timeout: the client did not read the body "
                         "within 30 s).")
WEB_RELOAD_SUCCESS = "terway_exporter_web_config_reload_success"
WEB_RELOAD_SUCCESS_HELP = ("1 when the last load of --web.config.file and its certificates succeeded, 0 when "
                           "a changed file could not be loaded (the previous one stays in force).")
WEB_RELOAD_FAILURES = "terway_exporter_web_config_reload_failures"
WEB_RELOAD_FAILURES_HELP = "Reloads of --web.config.file or its certificates that failed."
WEB_LAST_SUCCESS = "terway_exporter_web_config_last_reload_success_timestamp_seconds"
WEB_LAST_SUCCESS_HELP = "Unix time of the last successful load of --web.config.file."
WEB_CERT_NOT_AFTER = "terway_exporter_web_tls_certificate_not_after_timestamp_seconds"
WEB_CERT_NOT_AFTER_HELP = "notAfter of the TLS certificate the exporter serves (unix time)."

_UNKNOWN = math.nan  # what the web-config gauges hold before (or without) a value: see `snapshot`


class ExporterCounters:
    """The exporter's own counters (SDK calls run in worker threads).

    prometheus_client's metrics are thread-safe one by one; `_lock` makes an update that touches
    several of them (a request's count and its duration) and `snapshot` one step each, so a
    snapshot never holds a request counted but not yet timed.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._on_change = on_change
        self.registry = CollectorRegistry()  # private: never the global REGISTRY
        registry = self.registry
        self._requests = Counter(CLOUD_REQUESTS, CLOUD_REQUESTS_HELP, ["api", "code"], registry=registry)
        self._durations = Histogram(CLOUD_DURATION, CLOUD_DURATION_HELP, ["api"], registry=registry,
                                    buckets=CLOUD_LATENCY_BUCKETS)
        self._wait = Counter(RATE_LIMIT_WAIT, RATE_LIMIT_WAIT_HELP, ["api"], registry=registry)
        self._restarts = Counter(WATCH_RESTARTS, WATCH_RESTARTS_HELP, ["resource", "reason"], registry=registry)
        self._scrapes_rejected = Counter(SCRAPES_REJECTED, SCRAPES_REJECTED_HELP, ["reason"], registry=registry)
        # The --web.config.file families exist only with that flag, and the two timestamps only once
        # known; an unlabelled prometheus_client metric always has a value, so NaN stands for
        # "unknown" here and `snapshot` turns it into None (the renderer then leaves the family out).
        self._web_success = Gauge(WEB_RELOAD_SUCCESS, WEB_RELOAD_SUCCESS_HELP, registry=registry)
        self._web_failures = Counter(WEB_RELOAD_FAILURES, WEB_RELOAD_FAILURES_HELP, registry=registry)
        self._web_last_success = Gauge(WEB_LAST_SUCCESS, WEB_LAST_SUCCESS_HELP, registry=registry)
        self._web_cert_not_after = Gauge(WEB_CERT_NOT_AFTER, WEB_CERT_NOT_AFTER_HELP, registry=registry)
        for gauge in (self._web_success, self._web_last_success, self._web_cert_not_after):
            gauge.set(_UNKNOWN)

    def count_cloud_request(self, api: str, code: str, seconds: float) -> None:
        with self._lock:
            self._requests.labels(api, code).inc()
            self._durations.labels(api).observe(seconds)
        self._changed()

    def add_rate_limit_wait(self, api: str, seconds: float) -> None:
        with self._lock:
            self._wait.labels(api).inc(seconds)
        self._changed()

    def count_watch_restart(self, resource: str, reason: str) -> None:
        with self._lock:
            self._restarts.labels(resource, reason).inc()
        self._changed()

    def count_scrape_rejected(self, reason: str) -> None:
        with self._lock:
            self._scrapes_rejected.labels(reason).inc()
        self._changed()

    def report_web_config(self, ok: bool, cert_not_after: float | None, now: float | None = None) -> None:
        """A load or reload of --web.config.file: ok with the serving certificate's notAfter, or failed."""
        with self._lock:
            if ok:
                self._web_success.set(1)
                self._web_cert_not_after.set(_UNKNOWN if cert_not_after is None else cert_not_after)
                self._web_last_success.set(time.time() if now is None else now)
            else:  # the certificate and the last success in force stay as they were
                self._web_success.set(0)
                self._web_failures.inc()
        self._changed()

    def cloud_requests_total(self) -> int:
        with self._lock:
            return int(sum(s.value for s in _samples(self._requests) if s.name.endswith("_total")))

    def snapshot(self) -> ExporterStats:
        """The values as plain immutable data: what `ClusterState.stats` holds and the collectors read."""
        with self._lock:
            return ExporterStats(
                cloud_requests={(s.labels["api"], s.labels["code"]): int(s.value)
                                for s in _samples(self._requests) if s.name.endswith("_total")},
                cloud_request_durations=_histograms(_samples(self._durations)),
                cloud_rate_limit_wait={s.labels["api"]: s.value
                                       for s in _samples(self._wait) if s.name.endswith("_total")},
                kube_watch_restarts={(s.labels["resource"], s.labels["reason"]): int(s.value)
                                     for s in _samples(self._restarts) if s.name.endswith("_total")},
                scrapes_rejected={s.labels["reason"]: int(s.value)
                                  for s in _samples(self._scrapes_rejected) if s.name.endswith("_total")},
                web_config=self._web_config(),
            )

    def _web_config(self) -> WebConfigStats | None:
        success = _value(self._web_success)
        if math.isnan(success):
            return None  # never loaded: no --web.config.file
        return WebConfigStats(reload_success=success == 1, failures=int(_value(self._web_failures)),
                              last_success=_known(_value(self._web_last_success)),
                              cert_not_after=_known(_value(self._web_cert_not_after)))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def _samples(metric: Counter | Gauge | Histogram) -> Iterable[Sample]:
    """A metric's samples through prometheus_client's public `collect()` (`_created` ones included)."""
    for family in metric.collect():
        yield from family.samples


def _value(metric: Counter | Gauge) -> float:
    """An unlabelled counter's or gauge's value."""
    return next(s.value for s in _samples(metric) if not s.name.endswith("_created"))


def _known(value: float) -> float | None:
    return None if math.isnan(value) else value


def _histograms(samples: Iterable[Sample]) -> dict[str, HistogramData]:
    """Per `api`: prometheus_client's cumulative `_bucket` samples (+Inf last) and `_sum`."""
    buckets: dict[str, list[tuple[float, int]]] = {}
    sums: dict[str, float] = {}
    for sample in samples:
        if sample.name.endswith("_bucket"):
            buckets.setdefault(sample.labels["api"], []).append((float(sample.labels["le"]), int(sample.value)))
        elif sample.name.endswith("_sum"):
            sums[sample.labels["api"]] = sample.value
    return {api: HistogramData(buckets=tuple(sorted(rows)), sum=sums.get(api, 0.0)) for api, rows in buckets.items()}
