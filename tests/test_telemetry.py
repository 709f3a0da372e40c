"""telemetry.ExporterCounters: prometheus_client's Counter/Histogram/Gauge in a private registry, read back
as the ExporterStats the collectors render, with the very names, HELP texts and buckets they expose."""

from __future__ import annotations

import math
from dataclasses import replace

from prometheus_client import REGISTRY
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.collectors.base import Collector
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.state import ClusterState, WebConfigStats
from terway_exporter.render import Renderer
from terway_exporter.telemetry import CLOUD_LATENCY_BUCKETS, ExporterCounters


def busy_counters(changes: list[int] | None = None) -> ExporterCounters:
    counters = ExporterCounters(on_change=None if changes is None else lambda: changes.append(1))
    counters.count_cloud_request("DescribeVSwitches", "Success", 0.025)  # on a bound: that bucket (le)
    counters.count_cloud_request("DescribeVSwitches", "Success", 0.3)
    counters.count_cloud_request("DescribeVSwitches", "Throttling", 45.0)  # above every bound: +Inf only
    counters.count_cloud_request("DescribeInstanceTypes", "Success", 0.07)
    counters.add_rate_limit_wait("DescribeVSwitches", 1.5)
    counters.add_rate_limit_wait("DescribeVSwitches", 0.25)
    counters.count_watch_restart("nodes", "closed")
    counters.count_watch_restart("nodes", "closed")
    counters.count_watch_restart("pods", "expired")
    counters.count_scrape_rejected("write_timeout")
    return counters


def test_snapshot_reads_back_every_count_as_plain_data():
    changes: list[int] = []
    stats = busy_counters(changes).snapshot()
    assert len(changes) == 10, "every update notifies (the hub bumps its version and renders)"
    assert stats.cloud_requests == {("DescribeVSwitches", "Success"): 2, ("DescribeVSwitches", "Throttling"): 1,
                                    ("DescribeInstanceTypes", "Success"): 1}
    assert all(type(v) is int for v in stats.cloud_requests.values())
    assert stats.cloud_rate_limit_wait == {"DescribeVSwitches": 1.75}
    assert stats.kube_watch_restarts == {("nodes", "closed"): 2, ("pods", "expired"): 1}
    assert stats.scrapes_rejected == {"write_timeout": 1}
    assert stats.web_config is None, "no --web.config.file: none of its families"
    histogram = stats.cloud_request_durations["DescribeVSwitches"]
    assert [bound for bound, _ in histogram.buckets] == [*CLOUD_LATENCY_BUCKETS, math.inf]
    assert dict(histogram.buckets) == {0.025: 1, 0.05: 1, 0.1: 1, 0.25: 1, 0.5: 2, 1.0: 2, 2.5: 2, 5.0: 2,
                                       10.0: 2, 30.0: 2, math.inf: 3}
    assert math.isclose(histogram.sum, 45.325)
    assert dict(stats.cloud_request_durations["DescribeInstanceTypes"].buckets)[0.1] == 1
    assert ExporterCounters().snapshot() == type(stats)(), "nothing counted: empty stats"


def test_cloud_requests_total():
    assert busy_counters().cloud_requests_total() == 4
    assert ExporterCounters().cloud_requests_total() == 0


def test_web_config_loads():
    counters = ExporterCounters()
    counters.report_web_config(False, None)  # the first load failed
    assert counters.snapshot().web_config == WebConfigStats(reload_success=False, failures=1)
    counters.report_web_config(True, 1_900_000_000.0, now=1_700_000_000.0)
    assert counters.snapshot().web_config == WebConfigStats(reload_success=True, failures=1,
                                                            last_success=1_700_000_000.0,
                                                            cert_not_after=1_900_000_000.0)
    counters.report_web_config(False, None)  # a reload failed: the previous certificate stays in force
    assert counters.snapshot().web_config == WebConfigStats(reload_success=False, failures=2,
                                                            last_success=1_700_000_000.0,
                                                            cert_not_after=1_900_000_000.0)
    counters.report_web_config(True, None, now=1_700_000_100.0)  # plain HTTP: no certificate
    assert counters.snapshot().web_config == WebConfigStats(reload_success=True, failures=2,
                                                            last_success=1_700_000_100.0)


def test_the_registry_is_private():
    first, second = busy_counters(), busy_counters()  # two in one process do not collide
    assert first.registry is not REGISTRY and first.registry is not second.registry
    assert REGISTRY.get_sample_value("terway_exporter_cloud_api_requests_total",
                                     {"api": "DescribeVSwitches", "code": "Success"}) is None
    assert first.registry.get_sample_value("terway_exporter_cloud_api_requests_total",
                                           {"api": "DescribeVSwitches", "code": "Success"}) == 2.0


def families(text: str) -> dict[str, tuple[str, str, list]]:
    """name -> (type, help, samples without _created), for families that have samples."""
    out = {}
    for family in text_string_to_metric_families(text):
        samples = sorted((s.name, sorted(s.labels.items()), s.value) for s in family.samples
                         if not s.name.endswith("_created") and not math.isnan(s.value))
        if samples:
            out[family.name] = (family.type, family.documentation, samples)
    return out


def test_the_private_registry_formatted_by_prometheus_client_matches_the_served_families():
    counters = busy_counters()
    counters.count_scrape_rejected("too_many_concurrent")  # the served family always has both reasons
    counters.report_web_config(False, None)
    counters.report_web_config(True, 1_900_000_000.0, now=1_700_000_000.0)
    state = replace(SnapshotHub().state(now=1_700_000_000.0), stats=counters.snapshot())
    served = families(Renderer(SELF_COLLECTORS).render(state, 1).text.decode())
    registry = families(generate_latest(counters.registry).decode())
    assert len(registry) == 9
    for name, family in registry.items():
        assert served[name] == family, name


def test_a_change_of_the_counts_re_renders_the_self_metrics_and_nothing_else_moves():
    calls: list[str] = []

    def counting(state: ClusterState):
        calls.append("cloud")
        return ()

    hub = SnapshotHub()
    renderer = Renderer([Collector("cloudy", counting, frozenset({"cloud"})), *SELF_COLLECTORS])
    renderer.render(hub.state(now=1.0), 1)
    hub.counters.count_cloud_request("DescribeVSwitches", "Success", 0.1)
    text = renderer.render(hub.state(now=2.0), 2).text.decode()
    assert calls == ["cloud"]
    assert 'terway_exporter_cloud_api_requests_total{api="DescribeVSwitches",code="Success"} 1.0' in text
