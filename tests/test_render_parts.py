"""Per-node rendering: one changed Node CR re-renders one node, and the text stays exact."""

from __future__ import annotations

import gzip
from dataclasses import replace

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from terway_exporter.collectors.base import Collector, Parts
from terway_exporter.collectors.exporter import collector_duration, collector_success
from terway_exporter.collectors.families import Family
from terway_exporter.collectors.registry import all_collectors
from terway_exporter.render import Renderer, _Families, _sample_lines
from test_collectors_kube import cluster, state


def families_of(state_, renderer: Renderer) -> list:
    """Every collector's families, then the renderer's own: the run times it measured, and collector_success
    (all succeeded)."""
    return [*(m for c in all_collectors() for m in c.collect(state_)),
            collector_duration((c.name, renderer.durations[c.name]) for c in all_collectors()),
            collector_success((c.name, True) for c in all_collectors())]


def direct(state_, renderer: Renderer) -> bytes:
    return generate_latest(_Families(families_of(state_, renderer)))


def with_cr(state_, name: str, **changes):
    crs = dict(state_.kube.terway_nodes)
    crs[name] = replace(crs[name], **changes)
    return replace(state_, kube=replace(state_.kube, terway_nodes=crs))


def test_per_node_parts_match_the_whole_rendering_and_only_changed_nodes_rebuild():
    first = state(cluster(300))
    renderer = Renderer(all_collectors())
    assert renderer.render(first, 1).text == direct(first, renderer)
    before = dict(renderer._parts["terway_nodes"].parts)

    name = sorted(first.kube.terway_nodes)[42]
    second = with_cr(first, name, last_sync_openapi=1_800_000_000.0)
    exposition = renderer.render(second, 2)
    after = renderer._parts["terway_nodes"].parts
    assert [key for key, part in after.items() if part is not before[key]] == [name]
    assert exposition.text == direct(second, renderer)
    assert f'terway_node_last_openapi_sync_timestamp_seconds{{node="{name}"}} 1.8e+09'.encode() in exposition.text
    assert exposition.openmetrics is None, "not asked for yet: only the text format is rendered"
    renderer.want_openmetrics()
    exposition = renderer.render(second, 3)
    assert exposition.openmetrics == generate_openmetrics(_Families(families_of(second, renderer)))
    assert gzip.decompress(exposition.openmetrics_gzip) == exposition.openmetrics
    assert gzip.decompress(exposition.text_gzip) == exposition.text


def test_a_node_that_leaves_takes_its_series_and_shared_changes_rebuild_all():
    first = state(cluster(20))
    renderer = Renderer(all_collectors())
    renderer.render(first, 1)
    gone = sorted(first.kube.nodes)[3]
    nodes = {k: v for k, v in first.kube.nodes.items() if k != gone}
    second = replace(first, kube=replace(first.kube, nodes=nodes))
    text = renderer.render(second, 2).text
    assert f'node="{gone}"'.encode() not in text
    assert text == direct(second, renderer)
    # The eni_config ConfigMap is shared by every node: a new pool size reaches all of them.
    conf = first.kube.eni_config["eni_conf"].replace('"max_pool_size": 5', '"max_pool_size": 7')
    crs = {k: replace(v, max_pool_size=None, min_pool_size=None) for k, v in second.kube.terway_nodes.items()}
    third = replace(second, kube=replace(second.kube, terway_nodes=crs,
                                         eni_config={**second.kube.eni_config, "eni_conf": conf}))
    text = renderer.render(third, 3).text
    assert text == direct(third, renderer)
    assert text.count(b"\nterway_node_pool_max_ips{") == 19
    assert b'terway_node_pool_max_ips{node="' + sorted(nodes)[0].encode() + b'"} 7.0' in text


def test_openmetrics_once_asked_for_is_rendered_per_node_with_the_text():
    first = state(cluster(30))
    wakes: list[int] = []
    renderer = Renderer(all_collectors(), wake=lambda: wakes.append(1))
    assert not renderer.openmetrics_wanted
    renderer.render(first, 1).want_openmetrics()  # what the first OpenMetrics request does
    renderer.render(first, 1).want_openmetrics()  # asked again before the next render: one wake
    assert renderer.openmetrics_wanted and wakes == [1]
    name = sorted(first.kube.terway_nodes)[7]
    second = with_cr(first, name, last_sync_openapi=1_800_000_000.0)
    exposition = renderer.render(second, 2)
    assert exposition.openmetrics == generate_openmetrics(_Families(families_of(second, renderer)))
    # Each node's lines are one set of bytes, referenced by both variants (no second copy per format).
    parts = renderer._parts["terway_nodes"].parts.values()
    chunk_ids = {id(chunk) for p in parts for chunk in p.chunks if chunk}
    assert chunk_ids and not any(hasattr(p, "metrics") for p in parts)
    text_pieces = {id(piece) for piece in renderer._cache["terway_nodes"].text}
    om_pieces = {id(piece) for piece in renderer._cache["terway_nodes"].openmetrics}
    assert chunk_ids <= text_pieces & om_pieces


HOSTILE_VALUES = ['plain', '', 'quote " inside', 'back\\slash', 'new\nline', 'all \\" \n\\n', 'ünïcødé ✓',
                  'trailing backslash \\', '{node="x"} 1']
NUMBERS = [0.0, -0.0, 1.0, -2.5, 1e-9, 1.5e300, 2.0**53 + 1, 123456789.0, float("nan"), float("inf"), float("-inf")]


def _lines_of(exposition: bytes, family: Metric) -> bytes:
    """The sample lines of a one-family exposition: headers and the OpenMetrics EOF removed."""
    return b"".join(line + b"\n" for line in exposition.splitlines() if not line.startswith(b"# "))


def test_part_lines_are_prometheus_clients_bytes_in_both_formats():
    """The renderer formats per-node lines itself (a first render at 10,000 nodes spent two thirds of its time in
    prometheus_client's formatters); its bytes must be theirs, for any label value and float."""
    for kind, name in (("gauge", "terway_test_value"), ("counter", "terway_test_events_total")):
        family = Family(name, "A test family.", ("node", "zone_id"), kind=kind)
        shared = {"node": "n-1", "zone_id": 'z"1'}
        samples = [family.sample({"node": v, "zone_id": HOSTILE_VALUES[-1 - i]}, NUMBERS[i % len(NUMBERS)])
                   for i, v in enumerate(HOSTILE_VALUES)]
        samples += [family.sample(shared, n) for n in NUMBERS]  # one labels dict shared by many samples
        metric = family.build()
        metric.samples = samples
        ours = _sample_lines(samples, {})
        assert ours == _lines_of(generate_latest(_Families([metric])), metric), kind
        assert ours == _lines_of(generate_openmetrics(_Families([metric])), metric), kind
    unlabelled = Family("terway_test_total_nodes", "No labels.")
    assert _sample_lines([unlabelled.sample({}, 3.0)], {}) == b"terway_test_total_nodes 3.0\n"


def test_a_part_family_the_line_formatter_cannot_write_fails_that_collector_only():
    histogram = Metric("terway_test_seconds", "A histogram cannot be a per-object family.", "histogram")

    def parts(_state):
        return Parts(shared=(), empty=(histogram,), items=[("a", (), lambda: [[]])])

    odd = Collector("odd", lambda _state: [histogram], frozenset({"kube"}), parts=parts)
    renderer = Renderer([odd, *all_collectors()])
    exposition = renderer.render(state(cluster(3)), 1)
    assert renderer.succeeded["odd"] is False and all(renderer.succeeded[c.name] for c in all_collectors())
    assert b'terway_exporter_collector_success{collector="odd"} 0.0' in exposition.text
    assert b"terway_node_info{" in exposition.text
