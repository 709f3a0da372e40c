"""terway_exporter_*: the exporter's own health, from source statuses and its counters."""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .. import __version__
from ..model.state import ClusterState
from .base import Collector


def build_info(state: ClusterState) -> Iterable[Metric]:
    family = GaugeMetricFamily("terway_exporter_build_info", "Version of terway-exporter and of its Python; always 1.",
                               labels=["version", "python_version"])
    family.add_metric([__version__, platform.python_version()], 1)
    yield family


def source_health(state: ClusterState) -> Iterable[Metric]:
    up = GaugeMetricFamily("terway_exporter_source_up",
                           "1 when the last poll or watch of the source succeeded, 0 when it failed "
                           "(its metrics then keep their last good values).", labels=["source"])
    last = GaugeMetricFamily("terway_exporter_source_last_success_timestamp_seconds",
                             "Unix time of the source's last successful poll or watch sync.", labels=["source"])
    duration = GaugeMetricFamily("terway_exporter_source_duration_seconds",
                                 "Duration of the source's last poll or list.", labels=["source"])
    for name in sorted(state.sources):
        status = state.sources[name]
        if not status.attempted:
            continue
        up.add_metric([name], 1 if status.up else 0)
        if status.last_success is not None:
            last.add_metric([name], status.last_success)
        if status.last_duration is not None:
            duration.add_metric([name], status.last_duration)
    yield from (up, last, duration)


def cloud_api(state: ClusterState) -> Iterable[Metric]:
    stats = state.stats
    requests = CounterMetricFamily("terway_exporter_cloud_api_requests",
                                   "Cloud API calls the exporter made, by API and result code (Success or the error code).",
                                   labels=["api", "code"])
    for (api, code), count in sorted(stats.cloud_requests.items()):
        requests.add_metric([api, code], count)
    latency = HistogramMetricFamily("terway_exporter_cloud_api_request_duration_seconds",
                                    "Duration of cloud API calls, retries counted one by one.", labels=["api"])
    for api, hist in sorted(stats.cloud_request_durations.items()):
        buckets = [(_bound(b), float(c)) for b, c in hist.buckets]
        latency.add_metric([api], buckets, hist.sum)
    wait = CounterMetricFamily("terway_exporter_cloud_api_rate_limit_wait_seconds",
                               "Time spent waiting for the exporter's own cloud API rate limiter.", labels=["api"])
    for api, seconds in sorted(stats.cloud_rate_limit_wait.items()):
        wait.add_metric([api], seconds)
    yield from (requests, latency, wait)


def kube_watches(state: ClusterState) -> Iterable[Metric]:
    restarts = CounterMetricFamily("terway_exporter_kube_watch_restarts",
                                   "Kubernetes watches restarted, by resource and reason (expired resourceVersion, "
                                   "errors, closed streams).", labels=["resource", "reason"])
    for (resource, reason), count in sorted(state.stats.kube_watch_restarts.items()):
        restarts.add_metric([resource, reason], count)
    yield restarts


def scrapes_rejected(state: ClusterState) -> Iterable[Metric]:
    rejected = CounterMetricFamily("terway_exporter_scrapes_rejected",
                                   "/metrics requests refused (too_many_concurrent: every response slot busy "
                                   "for 10 s) or aborted (write_timeout: the client did not read the body "
                                   "within 30 s).", labels=["reason"])
    for reason in ("too_many_concurrent", "write_timeout"):
        rejected.add_metric([reason], state.stats.scrapes_rejected.get(reason, 0))
    yield rejected


def web_config(state: ClusterState) -> Iterable[Metric]:
    """Only with --web.config.file: whether the file and its certificates reloaded, and the certificate's end."""
    stats = state.stats.web_config
    if stats is None:
        return
    success = GaugeMetricFamily("terway_exporter_web_config_reload_success",
                                "1 when the last load of --web.config.file and its certificates succeeded, 0 when "
                                "a changed file could not be loaded (the previous one stays in force).")
    success.add_metric([], 1 if stats.reload_success else 0)
    failures = CounterMetricFamily("terway_exporter_web_config_reload_failures",
                                   "Reloads of --web.config.file or its certificates that failed.")
    failures.add_metric([], stats.failures)
    yield from (success, failures)
    if stats.last_success is not None:
        last = GaugeMetricFamily("terway_exporter_web_config_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful load of --web.config.file.")
        last.add_metric([], stats.last_success)
        yield last
    if stats.cert_not_after is not None:
        expiry = GaugeMetricFamily("terway_exporter_web_tls_certificate_not_after_timestamp_seconds",
                                   "notAfter of the TLS certificate the exporter serves (unix time).")
        expiry.add_metric([], stats.cert_not_after)
        yield expiry


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


COLLECTORS = (
    Collector("exporter_build_info", build_info, frozenset()),
    Collector("exporter_sources", source_health, frozenset({"sources"})),
    Collector("exporter_cloud_api", cloud_api, frozenset({"stats"})),
    Collector("exporter_kube_watches", kube_watches, frozenset({"stats"})),
    Collector("exporter_scrapes", scrapes_rejected, frozenset({"stats"})),
    Collector("exporter_web_config", web_config, frozenset({"stats"})),
)
