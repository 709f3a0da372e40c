"""terway_exporter_*: the exporter's own health, from source statuses and its counters.

The counters' names and HELP texts are telemetry's, where prometheus_client keeps their values; the
families here are built from the `ExporterStats` copy in the state (telemetry's module doc says why).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import Metric

from .. import __version__, telemetry
from ..model.state import ClusterState
from .base import Collector
from .families import Family

BUILD_INFO = Family("terway_exporter_build_info", "Version of terway-exporter and of its Python; always 1.",
                    ("version", "python_version"))
SOURCE_UP = Family("terway_exporter_source_up",
                   "1 when the last poll or watch of the source succeeded, 0 when it failed "
                   "(its metrics then keep their last good values).", ("source",))
SOURCE_LAST_SUCCESS = Family("terway_exporter_source_last_success_timestamp_seconds",
                             "Unix time of the source's last successful poll or watch sync.", ("source",))
SOURCE_DURATION = Family("terway_exporter_source_duration_seconds", "Duration of the source's last poll or list.",
                         ("source",))
CLOUD_REQUESTS = Family(telemetry.CLOUD_REQUESTS + "_total", telemetry.CLOUD_REQUESTS_HELP, ("api", "code"),
                        kind="counter")
CLOUD_DURATION = Family(telemetry.CLOUD_DURATION, telemetry.CLOUD_DURATION_HELP, ("api",), kind="histogram")
RATE_LIMIT_WAIT = Family(telemetry.RATE_LIMIT_WAIT + "_total", telemetry.RATE_LIMIT_WAIT_HELP, ("api",),
                         kind="counter")
WATCH_RESTARTS = Family(telemetry.WATCH_RESTARTS + "_total", telemetry.WATCH_RESTARTS_HELP, ("resource", "reason"),
                        kind="counter")
SCRAPES_REJECTED = Family(telemetry.SCRAPES_REJECTED + "_total", telemetry.SCRAPES_REJECTED_HELP, ("reason",),
                          kind="counter")
WEB_RELOAD_SUCCESS = Family(telemetry.WEB_RELOAD_SUCCESS, telemetry.WEB_RELOAD_SUCCESS_HELP)
WEB_RELOAD_FAILURES = Family(telemetry.WEB_RELOAD_FAILURES + "_total", telemetry.WEB_RELOAD_FAILURES_HELP,
                             kind="counter")
WEB_LAST_SUCCESS = Family(telemetry.WEB_LAST_SUCCESS, telemetry.WEB_LAST_SUCCESS_HELP)
WEB_CERT_NOT_AFTER = Family(telemetry.WEB_CERT_NOT_AFTER, telemetry.WEB_CERT_NOT_AFTER_HELP)
# node_exporter's node_scrape_collector_success{collector} (collector/collector.go): a collector that
# raises is visible, while the renderer keeps serving the others (render.Renderer adds this family).
COLLECTOR_SUCCESS = Family("terway_exporter_collector_success",
                           "1 when the collector's last run succeeded, 0 when it raised (its families then keep "
                           "their last good output, or are absent).", ("collector",))
# node_exporter's node_scrape_collector_duration_seconds{collector}: where the render's time goes. Here a
# collector runs when a state part it reads changed, not per scrape: the value is its last run's.
COLLECTOR_DURATION = Family("terway_exporter_collector_duration_seconds",
                            "Wall time of the collector's last run (it runs when the state it reads changed; "
                            "an unchanged collector's output is reused).", ("collector",))
REJECT_REASONS = ("too_many_concurrent", "write_timeout")


def build_info(state: ClusterState) -> Iterable[Metric]:
    yield BUILD_INFO.build_rows([((__version__, platform.python_version()), 1)])


def source_health(state: ClusterState) -> Iterable[Metric]:
    statuses = [state.sources[name] for name in sorted(state.sources) if state.sources[name].attempted]
    yield SOURCE_UP.build_rows(((s.name,), 1 if s.up else 0) for s in statuses)
    yield SOURCE_LAST_SUCCESS.build_rows(((s.name,), s.last_success) for s in statuses if s.last_success is not None)
    yield SOURCE_DURATION.build_rows(((s.name,), s.last_duration) for s in statuses if s.last_duration is not None)


def cloud_api(state: ClusterState) -> Iterable[Metric]:
    stats = state.stats
    yield CLOUD_REQUESTS.build_rows(sorted(stats.cloud_requests.items()))
    yield CLOUD_DURATION.histogram(((api,), hist.buckets, hist.sum)
                                   for api, hist in sorted(stats.cloud_request_durations.items()))
    yield RATE_LIMIT_WAIT.build_rows(((api,), seconds) for api, seconds in sorted(stats.cloud_rate_limit_wait.items()))


def kube_watches(state: ClusterState) -> Iterable[Metric]:
    yield WATCH_RESTARTS.build_rows(sorted(state.stats.kube_watch_restarts.items()))


def scrapes_rejected(state: ClusterState) -> Iterable[Metric]:
    yield SCRAPES_REJECTED.build_rows(((r,), state.stats.scrapes_rejected.get(r, 0)) for r in REJECT_REASONS)


def web_config(state: ClusterState) -> Iterable[Metric]:
    """Only with --web.config.file: whether the file and its certificates reloaded, and the certificate's end."""
    stats = state.stats.web_config
    if stats is None:
        return
    yield WEB_RELOAD_SUCCESS.build([({}, 1 if stats.reload_success else 0)])
    yield WEB_RELOAD_FAILURES.build([({}, stats.failures)])
    if stats.last_success is not None:
        yield WEB_LAST_SUCCESS.build([({}, stats.last_success)])
    if stats.cert_not_after is not None:
        yield WEB_CERT_NOT_AFTER.build([({}, stats.cert_not_after)])


def collector_success(outcomes: Iterable[tuple[str, bool]]) -> Metric:
    """The renderer's own family: whether each collector's last run succeeded, in exposition order."""
    return COLLECTOR_SUCCESS.build_rows(((name,), 1 if ok else 0) for name, ok in outcomes)


def collector_duration(durations: Iterable[tuple[str, float]]) -> Metric:
    """The renderer's own family: each collector's last run time, in exposition order."""
    return COLLECTOR_DURATION.build_rows(((name,), seconds) for name, seconds in durations)


COLLECTORS = (
    Collector("exporter_build_info", build_info, frozenset()),
    Collector("exporter_sources", source_health, frozenset({"sources"})),
    Collector("exporter_cloud_api", cloud_api, frozenset({"stats"})),
    Collector("exporter_kube_watches", kube_watches, frozenset({"stats"})),
    Collector("exporter_scrapes", scrapes_rejected, frozenset({"stats"})),
    Collector("exporter_web_config", web_config, frozenset({"stats"})),
)
