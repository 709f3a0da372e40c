"""Render-once exposition and the HTTP endpoints, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
from dataclasses import replace

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from terway_exporter.collectors.base import Collector
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.render import Renderer
from terway_exporter.server import make_app
from terway_exporter.sources.cloud.snapshot import CloudSnapshot
from terway_exporter.sources.status import SourceStatus


def counting_collector(calls: list[str], name: str, reads: frozenset[str]) -> Collector:
    def collect(state):
        calls.append(name)
        family = GaugeMetricFamily(f"test_{name}", "test family")
        family.add_metric([], len(state.cloud.vswitches))
        yield family
    return Collector(name, collect, reads)


def broken_collector(state):
    raise RuntimeError("boom")
    yield  # pragma: no cover


def test_collectors_rerun_only_when_what_they_read_changes():
    calls: list[str] = []
    renderer = Renderer([counting_collector(calls, "cloudy", frozenset({"cloud"})),
                         counting_collector(calls, "kubey", frozenset({"kube"}))])
    hub = SnapshotHub()
    renderer.render(hub.state(), 1)
    renderer.render(hub.state(), 2)
    assert calls == ["cloudy", "kubey"]
    hub.publish_cloud(replace(CloudSnapshot(), region_id="cn-hangzhou"))
    renderer.render(hub.state(), 3)
    assert calls == ["cloudy", "kubey", "cloudy"]


def test_a_failing_collector_keeps_the_others():
    renderer = Renderer([Collector("broken", broken_collector, frozenset()), *SELF_COLLECTORS])
    exposition = renderer.render(SnapshotHub().state(), 1)
    names = {f.name for f in text_string_to_metric_families(exposition.text.decode())}
    assert "terway_exporter_build_info" in names
    assert renderer.failures == {"broken": 1}


async def serve(hub: SnapshotHub, exposition):
    server = TestServer(make_app(hub, lambda: exposition), host="127.0.0.1")
    await server.start_server()
    return server


async def test_endpoints_and_negotiation():
    hub = SnapshotHub()
    hub.register("cloud_vswitches")
    exposition = Renderer(SELF_COLLECTORS).render(hub.state(), 1)
    server = await serve(hub, exposition)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with session.get(f"{base}/readyz") as r:
                assert r.status == 503
                assert "cloud_vswitches" in await r.text()
            hub.report(SourceStatus("cloud_vswitches", up=False, error="Forbidden.RAM"))
            async with session.get(f"{base}/readyz") as r:
                assert r.status == 200  # attempted, even if failed: serve what says it is broken
            async with session.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                plain = await r.read()
            assert plain == exposition.text
            async with session.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(await r.read()) == plain
            accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            async with session.get(f"{base}/metrics", headers={"Accept": accept}) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                body = (await r.read()).decode()
            assert body.endswith("# EOF\n") and body.count("# EOF") == 1
            async with session.get(f"{base}/") as r:
                page = await r.text()
            assert "/metrics" in page and "cloud_vswitches" in page and "Forbidden.RAM" in page
    finally:
        await server.close()


async def test_metrics_before_first_render_is_503():
    server = await serve(SnapshotHub(), None)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as r:
                assert r.status == 503
    finally:
        await server.close()
