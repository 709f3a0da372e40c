"""terway_exporter_*: the exporter's own health, from source statuses and its counters.

The counters' names and HELP texts are telemetry's, where prometheus_client keeps their values; the
families here are built from the `ExporterStats` copy in the state (telemetry's module doc says why).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .. import __version__, telemetry
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
    requests = CounterMetricFamily(telemetry.CLOUD_REQUESTS, telemetry.CLOUD_REQUESTS_HELP, labels=["api", "code"])
    for (api, code), count in sorted(stats.cloud_requests.items()):
        requests.add_metric([api, code], count)
    latency = HistogramMetricFamily(telemetry.CLOUD_DURATION, telemetry.CLOUD_DURATION_HELP, labels=["api"])
    for api, hist in sorted(stats.cloud_request_durations.items()):
        buckets = [(_bound(b), float(c)) for b, c in hist.buckets]
        latency.add_metric([api], buckets, hist.sum)
    wait = CounterMetricFamily(telemetry.RATE_LIMIT_WAIT, telemetry.RATE_LIMIT_WAIT_HELP, labels=["api"])
    for api, seconds in sorted(stats.cloud_rate_limit_wait.items()):
        wait.add_metric([api], seconds)
    yield from (requests, latency, wait)


def kube_watches(state: ClusterState) -> Iterable[Metric]:
    restarts = CounterMetricFamily(telemetry.WATCH_RESTARTS, telemetry.WATCH_RESTARTS_HELP,
                                   labels=["resource", "reason"])
    for (resource, reason), count in sorted(state.stats.kube_watch_restarts.items()):
        restarts.add_metric([resource, reason], count)
    yield restarts


def scrapes_rejected(state: ClusterState) -> Iterable[Metric]:
    rejected = CounterMetricFamily(telemetry.SCRAPES_REJECTED, telemetry.SCRAPES_REJECTED_HELP, labels=["reason"])
    for reason in ("too_many_concurrent", "write_timeout"):
        rejected.add_metric([reason], state.stats.scrapes_rejected.get(reason, 0))
    yield rejected


def web_config(state: ClusterState) -> Iterable[Metric]:
    """Only with --web.config.file: whether the file and its certificates reloaded, and the certificate's end."""
    stats = state.stats.web_config
    if stats is None:
        return
    success = GaugeMetricFamily(telemetry.WEB_RELOAD_SUCCESS, telemetry.WEB_RELOAD_SUCCESS_HELP)
    success.add_metric([], 1 if stats.reload_success else 0)
    failures = CounterMetricFamily(telemetry.WEB_RELOAD_FAILURES, telemetry.WEB_RELOAD_FAILURES_HELP)
    failures.add_metric([], stats.failures)
    yield from (success, failures)
    if stats.last_success is not None:
        last = GaugeMetricFamily(telemetry.WEB_LAST_SUCCESS, telemetry.WEB_LAST_SUCCESS_HELP)
        last.add_metric([], stats.last_success)
        yield last
    if stats.cert_not_after is not None:
        expiry = GaugeMetricFamily(telemetry.WEB_CERT_NOT_AFTER, telemetry.WEB_CERT_NOT_AFTER_HELP)
        expiry.add_metric([], stats.cert_not_after)
        yield expiry


# node_exporter's node_scrape_collector_success{collector} (collector/collector.go): a collector that
# raises is visible, while the renderer keeps serving the others (render.Renderer adds this family).
COLLECTOR_SUCCESS = "terway_exporter_collector_success"
COLLECTOR_SUCCESS_HELP = ("1 when the collector's last run succeeded, 0 when it raised (its families then keep "
                          "their last good output, or are absent).")


def collector_success(outcomes: Iterable[tuple[str, bool]]) -> Metric:
    """The renderer's own family: whether each collector's last run succeeded, in exposition order."""
    family = GaugeMetricFamily(COLLECTOR_SUCCESS, COLLECTOR_SUCCESS_HELP, labels=["collector"])
    for name, ok in outcomes:
        family.add_metric([name], 1 if ok else 0)
    return family


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
