"""terway_exporter_collector_success: a collector that raises is visible, and the others keep being served
(node_exporter's node_scrape_collector_success)."""

from __future__ import annotations

import re
from dataclasses import replace

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.collectors.base import Collector
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.cloud import CloudSnapshot
from terway_exporter.model.state import ClusterState
from terway_exporter.render import Renderer
from terway_exporter.selection import FamilySelection, parse_patterns


def fails_in(region: str) -> Collector:
    """A collector that raises while the cloud snapshot is of `region`, and works otherwise."""
    def collect(state: ClusterState):
        if state.cloud.region_id == region:
            raise RuntimeError("deliberately broken")
        family = GaugeMetricFamily("test_fragile", "a family of the collector that breaks")
        family.add_metric([], 1)
        yield family
    return Collector("fragile", collect, frozenset({"cloud"}))


def good() -> Collector:
    def collect(state: ClusterState):
        family = GaugeMetricFamily("test_sturdy", "a family of the collector that works")
        family.add_metric([], 7)
        yield family
    return Collector("sturdy", collect, frozenset({"cloud"}))


def in_region(region: str) -> ClusterState:
    return replace(SnapshotHub().state(now=1_700_000_000.0), cloud=replace(CloudSnapshot(), region_id=region))


def success(text: str) -> dict[str, float]:
    family = next(f for f in text_string_to_metric_families(text) if f.name == "terway_exporter_collector_success")
    assert family.type == "gauge"
    return {s.labels["collector"]: s.value for s in family.samples}


def test_a_raising_collector_reads_0_and_the_others_are_still_served():
    renderer = Renderer([fails_in("cn-broken"), good(), *SELF_COLLECTORS])
    exposition = renderer.render(in_region("cn-broken"), 1)
    text = exposition.text.decode()
    assert success(text) == {"fragile": 0.0, "sturdy": 1.0, **{c.name: 1.0 for c in SELF_COLLECTORS}}
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"test_sturdy", "terway_exporter_build_info"} <= names
    assert "test_fragile" not in names  # it never succeeded: nothing to fall back on
    assert renderer.failures == {"fragile": 1}
    # The family closes the exposition, once.
    assert text.count("# TYPE terway_exporter_collector_success gauge") == 1
    assert text.rstrip("\n").splitlines()[-1].startswith("terway_exporter_collector_success{")


def test_a_collector_failing_after_a_success_keeps_its_last_output_and_reads_0_until_it_recovers():
    renderer = Renderer([fails_in("cn-broken"), good()])
    text = renderer.render(in_region("cn-hangzhou"), 1).text.decode()
    assert success(text) == {"fragile": 1.0, "sturdy": 1.0}
    text = renderer.render(in_region("cn-broken"), 2).text.decode()
    assert success(text) == {"fragile": 0.0, "sturdy": 1.0}
    assert "test_fragile 1.0" in text, "the last good output is served"
    # Unchanged state (a cache hit for the good one, a re-run for the failed one): still 0.
    text = renderer.render(in_region("cn-broken"), 3).text.decode()
    assert success(text) == {"fragile": 0.0, "sturdy": 1.0}
    text = renderer.render(in_region("cn-beijing"), 4).text.decode()
    assert success(text) == {"fragile": 1.0, "sturdy": 1.0}
    assert renderer.failures == {"fragile": 2}


def test_openmetrics_carries_it_before_eof():
    renderer = Renderer([fails_in("cn-broken"), good()])
    renderer.want_openmetrics()
    body = renderer.render(in_region("cn-broken"), 1).openmetrics
    assert body is not None and body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
    assert b'terway_exporter_collector_success{collector="fragile"} 0.0\n' in body
    assert b'terway_exporter_collector_success{collector="sturdy"} 1.0\n' in body
    assert b"test_sturdy 7.0" in body


def test_the_metric_lists_select_it_like_any_family():
    deny = FamilySelection(deny=parse_patterns("terway_exporter_collector_success"))
    text = Renderer([fails_in("cn-broken"), good()], selection=deny).render(in_region("cn-broken"), 1).text
    assert b"terway_exporter_collector_success" not in text and b"test_sturdy" in text
    allow = FamilySelection(allow=parse_patterns("terway_exporter_collector_.*"))
    text = Renderer([fails_in("cn-broken"), good()], selection=allow).render(in_region("cn-broken"), 1).text
    assert re.findall(rb"^# TYPE (\S+)", text, re.M) == [b"terway_exporter_collector_duration_seconds",
                                                         b"terway_exporter_collector_success"]


def test_each_collector_reports_its_last_run_time_and_a_reused_output_keeps_it():
    renderer = Renderer([fails_in("cn-broken"), good()])

    def durations(text: bytes) -> dict[str, float]:
        family = next(f for f in text_string_to_metric_families(text.decode())
                      if f.name == "terway_exporter_collector_duration_seconds")
        return {s.labels["collector"]: s.value for s in family.samples}

    state = in_region("cn-hangzhou")
    first = durations(renderer.render(state, 1).text)
    assert set(first) == {"fragile", "sturdy"} and all(v >= 0 for v in first.values())
    assert first == renderer.durations
    # The very same state: both outputs are reused, nothing ran, the figures stay those of the last runs.
    assert durations(renderer.render(state, 2).text) == first
    # A failed run is a run too (node_exporter reports the duration of failed collectors as well).
    assert set(durations(renderer.render(in_region("cn-broken"), 3).text)) == {"fragile", "sturdy"}
