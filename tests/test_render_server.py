"""Render-once exposition and the HTTP endpoints, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import socket
from dataclasses import replace

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from support.waiting import wait_until_async
from terway_exporter.collectors.base import Collector
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.cloud import CloudSnapshot
from terway_exporter.model.status import SourceStatus
from terway_exporter.render import Exposition, Renderer
from terway_exporter.server import WRITE_CHUNK, ScrapeLimits, make_app


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
    renderer = Renderer(SELF_COLLECTORS)
    exposition = renderer.render(hub.state(), 1)
    current = {"exposition": exposition}
    server = TestServer(make_app(hub, lambda: current["exposition"]), host="127.0.0.1")
    await server.start_server()
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
                # every source tried, but /metrics still serves an exposition rendered before that
                assert r.status == 503
                assert "rendering" in await r.text()
            assert hub.first_sync_done.is_set()  # wakes the render loop out of its pacing pause
            exposition = renderer.render(hub.state(), 2)
            current["exposition"] = exposition
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
            # The first OpenMetrics request gets the text format (nothing is formatted on the event
            # loop) and asks the renderer for OpenMetrics, which the next render then carries.
            async with session.get(f"{base}/metrics", headers={"Accept": accept,
                                                               "Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert await r.read() == plain
            assert renderer.openmetrics_wanted
            current["exposition"] = renderer.render(hub.state(), 2)
            async with session.get(f"{base}/metrics", headers={"Accept": accept,
                                                               "Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert "Content-Encoding" not in r.headers
                body = (await r.read()).decode()
            assert body.endswith("# EOF\n") and body.count("# EOF") == 1
            # Prometheus asks for OpenMetrics with gzip: it gets it compressed, like the text format.
            async with session.get(f"{base}/metrics", headers={"Accept": accept,
                                                               "Accept-Encoding": "gzip"}) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(await r.read()).decode() == body
            # q=0 means "not acceptable" (RFC 9110): neither OpenMetrics nor gzip then.
            refuse = {"Accept": "application/openmetrics-text;version=1.0.0;q=0, text/plain",
                      "Accept-Encoding": "gzip;q=0, identity"}
            async with session.get(f"{base}/metrics", headers=refuse) as r:
                assert r.headers["Content-Type"].startswith("text/plain")
                assert "Content-Encoding" not in r.headers
                assert await r.read() == current["exposition"].text
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


# ----------------------------------------------------------------------------- hostile clients


def large_exposition(size: int) -> Exposition:
    """An exposition whose text is `size` bytes: larger than loopback's socket buffers."""
    line = b"test_padding_metric 1\n"
    return Exposition.of(1, line * (size // len(line)))


async def request_without_reading(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
    await writer.drain()
    return reader, writer


def server_transports(server: TestServer) -> list[asyncio.Transport]:
    return [h.transport for h in server.runner.server.connections if h.transport is not None]


async def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    await wait_until_async(condition, timeout, what, interval=0.01)


async def stall(server: TestServer, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`count` clients that ask for /metrics and never read, once each response is blocked on its client."""
    clients = [await request_without_reading(server.port) for _ in range(count)]
    await wait_for(lambda: len(server_transports(server)) == count
                   and all(t.get_write_buffer_size() > 0 for t in server_transports(server)),
                   "every response blocked on its client")
    return clients


async def test_a_client_that_does_not_read_holds_no_copy_of_the_body():
    exposition = large_exposition(32 * 1024 * 1024)
    hub = SnapshotHub()
    server = TestServer(make_app(hub, lambda: exposition), host="127.0.0.1")
    await server.start_server()
    clients = []
    try:
        clients = await stall(server, 5)
        buffered = [t.get_write_buffer_size() for t in server_transports(server)]
        # Without slicing, each transport held what the socket did not take: tens of MB apiece.
        assert max(buffered) <= 3 * WRITE_CHUNK, buffered
    finally:
        for _, writer in clients:
            writer.close()
        await server.close()


async def test_excess_scrapers_get_503_and_stalled_ones_are_cut_off():
    exposition = large_exposition(32 * 1024 * 1024)
    hub = SnapshotHub()
    limits = ScrapeLimits(max_concurrent=2, queue_timeout=0.2, write_timeout=1.0)
    server = TestServer(make_app(hub, lambda: exposition, limits), host="127.0.0.1")
    await server.start_server()
    stalled = []
    try:
        stalled = await stall(server, 2)  # both slots taken
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
        # The stalled responses are aborted after write_timeout: the slots free up again.
        await wait_for(lambda: hub.counters.snapshot().scrapes_rejected.get("write_timeout") == 2, "aborted")
        stats = hub.counters.snapshot().scrapes_rejected
        assert stats == {"too_many_concurrent": 1, "write_timeout": 2}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics",
                                   headers={"Accept-Encoding": "gzip"}) as r:
                assert r.status == 200
                assert await r.read() == exposition.text  # aiohttp decompressed it
        text = Renderer(SELF_COLLECTORS).render(hub.state(), 2).text.decode()
        assert 'terway_exporter_scrapes_rejected_total{reason="write_timeout"} 2.0' in text
        assert 'terway_exporter_scrapes_rejected_total{reason="too_many_concurrent"} 1.0' in text
    finally:
        for _, writer in stalled:
            writer.close()
        await server.close()
