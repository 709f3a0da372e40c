"""/metrics content negotiation through prometheus_client's `choose_encoder`, q=0 honoured, over real HTTP on
127.0.0.1; every answer is pre-rendered bytes: no request runs a collector."""

from __future__ import annotations

import gzip

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.core import GaugeMetricFamily

from terway_exporter.collectors.base import Collector
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.render import Renderer
from terway_exporter.server import make_app

# Prometheus 2.42's default scrape Accept header (scrape_configs without scrape_protocols).
PROMETHEUS_2_42 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

CASES = [
    (PROMETHEUS_2_42, "openmetrics"),
    (None, "text"),  # no Accept header at all
    ("", "text"),
    ("*/*", "text"),
    ("text/plain;version=0.0.4", "text"),
    ("application/openmetrics-text", "openmetrics"),
    ("application/openmetrics-text;version=1.0.0,text/plain;q=0.5", "openmetrics"),
    # q=0 is "not acceptable" (RFC 9110 section 12.4.2), which choose_encoder alone would not see.
    ("application/openmetrics-text;version=1.0.0;q=0", "text"),
    ("application/openmetrics-text;version=1.0.0;q=0, text/plain", "text"),
    ("application/openmetrics-text; version=1.0.0; q=0.0, text/plain;version=0.0.4;q=0.5", "text"),
    ("application/openmetrics-text;version=1.0.0;q=0,application/openmetrics-text;version=1.0.0;q=0.3", "openmetrics"),
]


def counting(calls: list[str]) -> Collector:
    def collect(state):
        calls.append("run")
        family = GaugeMetricFamily("test_counted", "runs only in the renderer")
        family.add_metric([], 1)
        yield family
    return Collector("counted", collect, frozenset())


@pytest.fixture
async def served():
    calls: list[str] = []
    renderer = Renderer([counting(calls), *SELF_COLLECTORS])
    renderer.want_openmetrics()  # as after the first OpenMetrics request: the render makes both formats
    exposition = renderer.render(SnapshotHub().state(), 1)
    assert exposition.openmetrics is not None and calls == ["run"]
    server = TestServer(make_app(SnapshotHub(), lambda: exposition), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/metrics", exposition, calls
    finally:
        await server.close()


@pytest.mark.parametrize("gzipped", [False, True])
async def test_the_format_follows_prometheus_clients_choice_and_q0(served, gzipped):
    url, exposition, calls = served
    async with aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=["Accept", "Accept-Encoding"]) as session:
        for accept, expected in CASES:
            headers = {"Accept-Encoding": "gzip" if gzipped else "identity"}
            if accept is not None:
                headers["Accept"] = accept
            async with session.get(url, headers=headers) as r:
                assert r.status == 200
                body = await r.read()
                content_type = r.headers["Content-Type"]
                assert r.headers["Vary"] == "Accept, Accept-Encoding"
                assert (r.headers.get("Content-Encoding") == "gzip") is gzipped, accept
            if gzipped:
                body = gzip.decompress(body)
            if expected == "openmetrics":
                assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8", accept
                assert body == exposition.openmetrics
            else:
                assert content_type == "text/plain; version=0.0.4; charset=utf-8", accept
                assert body == exposition.text
    assert calls == ["run"], "requests only copy pre-rendered bytes"


async def test_gzip_q0_is_refused(served):
    url, exposition, _ = served
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url, headers={"Accept": PROMETHEUS_2_42, "Accept-Encoding": "gzip;q=0, identity"}) as r:
            assert "Content-Encoding" not in r.headers
            assert await r.read() == exposition.openmetrics
