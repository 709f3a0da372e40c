"""Terway / Exporter: whether the numbers on the other dashboards are fresh, and what they cost."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import (
    FAILED_CALL,
    Context,
    Query,
    assemble,
    by,
    increase,
    new_dashboard,
    rate,
    sel,
    stat_panel,
    state_mappings,
    timeseries_panel,
)

TITLE = "Terway / Exporter"
UID = "terway-exporter"

REQUESTS = "terway_exporter_cloud_api_requests_total"
# The scrape job of the exporter, as TerwayExporterDown selects it (the ServiceMonitor names it after the Service).
EXPORTER_JOB = 'job=~".*terway-exporter.*"'
SOURCE_UP = f"max {by('source')} ({sel('terway_exporter_source_up')})"
SOURCE_AGE = f"time() - max {by('source')} ({sel('terway_exporter_source_last_success_timestamp_seconds')})"


def _sources() -> list:
    return [
        stat_panel(
            "Exporter scrape health",
            "Whether Prometheus' last scrape of each exporter target succeeded (jobs named *terway-exporter*).",
            "none",
            Query(f"max {by('instance')} ({sel('up', EXPORTER_JOB)})", "{{instance}}",
                  instant=True),
            mappings=state_mappings("up", "down"),
            w=8,
        ),
        stat_panel(
            "Source up",
            "Whether the last poll or watch of each source succeeded.",
            "none",
            Query(SOURCE_UP, "{{source}}", instant=True),
            mappings=state_mappings("up", "down"),
            w=8,
        ),
        stat_panel(
            "Exporter version",
            "Version of the running exporter and of its Python.",
            "none",
            Query(
                f"max {by('version', 'python_version')} ({sel('terway_exporter_build_info')})",
                "{{version}} (Python {{python_version}})",
                instant=True,
            ),
            show_name=True,
            w=8,
        ),
        timeseries_panel(
            "Source data age",
            "Time since each source last succeeded. It grows while a source fails.",
            "s",
            Query(SOURCE_AGE, "{{source}}"),
            w=8,
        ),
        timeseries_panel(
            "Source failures",
            "1 while the last poll or watch of a source failed.",
            "short",
            Query(f"1 - {SOURCE_UP}", "{{source}}"),
            w=8,
        ),
        timeseries_panel(
            "Source poll duration",
            "How long the last poll of each source took.",
            "s",
            Query(f"max {by('source')} ({sel('terway_exporter_source_duration_seconds')})", "{{source}}"),
            w=8,
        ),
    ]


def _cloud_api() -> list:
    return [
        timeseries_panel(
            "Cloud API calls by API and code",
            "Alibaba Cloud API requests per second, by API and result code (Success or the error code).",
            "reqps",
            Query(f"sum {by('api', 'code')} ({rate(REQUESTS)})", "{{api}} {{code}}"),
        ),
        timeseries_panel(
            "Cloud API errors by code",
            "Failed Alibaba Cloud API requests per second, by API and error code. Throttling means the "
            "account's API rate is shared with other tools; Forbidden.RAM means the RAM policy lacks an action.",
            "reqps",
            Query(f"sum {by('api', 'code')} ({rate(REQUESTS, FAILED_CALL)})", "{{api}} {{code}}"),
        ),
        timeseries_panel(
            "Cloud API latency (p95)",
            "95th percentile duration of Alibaba Cloud API requests, by API.",
            "s",
            Query(
                "histogram_quantile(0.95, sum "
                f"{by('api', 'le')} ({rate('terway_exporter_cloud_api_request_duration_seconds_bucket')}))",
                "{{api}}",
            ),
        ),
        timeseries_panel(
            "Rate-limit wait",
            "Share of time spent waiting for the exporter's own cloud API rate limiter (--cloud-api-rate), by "
            "API. Near 100% means polls are limited by the rate, not the cloud.",
            "percentunit",
            Query(f"sum {by('api')} ({rate('terway_exporter_cloud_api_rate_limit_wait_seconds_total')})", "{{api}}"),
        ),
    ]


def _kube() -> list:
    return [
        timeseries_panel(
            "Kubernetes watch restarts",
            "Kubernetes watches the exporter restarted, by resource and reason (expired resourceVersion, errors).",
            "short",
            Query(
                f"sum {by('resource', 'reason')} ({increase('terway_exporter_kube_watch_restarts_total')})",
                "{{resource}} {{reason}}",
            ),
            w=24,
        ),
    ]


def build(ctx: Context) -> dashboard.Dashboard:
    builder = new_dashboard(ctx, TITLE, UID, "The exporter itself: source freshness and errors, cloud API use.")
    rows = [("Sources", _sources()), ("Alibaba Cloud API", _cloud_api()), ("Kubernetes API", _kube())]
    return assemble(ctx, builder, TITLE, rows)
