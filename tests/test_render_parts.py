"""Per-node rendering: one changed Node CR re-renders one node, and the text stays exact."""

from __future__ import annotations

import gzip
from dataclasses import replace

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from terway_exporter.collectors.exporter import collector_duration, collector_success
from terway_exporter.collectors.registry import all_collectors
from terway_exporter.render import Renderer, _Families
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
    assert all(p.om_chunks is not None for p in renderer._parts["terway_nodes"].parts.values())
    assert not any(hasattr(p, "metrics") for p in renderer._parts["terway_nodes"].parts.values())
