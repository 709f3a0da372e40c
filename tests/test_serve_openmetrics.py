"""`serve` as Prometheus meets it: the first OpenMetrics request is answered in the text format, and
the exposition rendered next carries OpenMetrics; the render loop keeps following the cluster from
the start (it once paused a minute after its first render, serving that nearly empty exposition)."""

from __future__ import annotations

import gzip
import urllib.request

import pytest

from support.stack import start_demo, start_serve, wait_until

pytestmark = pytest.mark.slow  # a demo process (tests/test_negotiation.py covers negotiation in-process)

# Prometheus 2.42's default scrape headers.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape(port: int) -> tuple[str, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=PROMETHEUS_HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        return response.headers["Content-Type"], gzip.decompress(response.read())


def test_openmetrics_follows_the_first_request_without_formatting_on_the_request(tmp_path):
    proc, port = start_demo("healthy", tmp_path)
    try:
        content_type, body = scrape(port)
        # Before any OpenMetrics render exists the text format answers (Prometheus accepts it).
        assert content_type.startswith(("text/plain; version=0.0.4", "application/openmetrics-text"))
        # The render loop, woken by that request, renders OpenMetrics within its pacing bound (10 s);
        # the bound here is generous so a loaded machine does not fail the test.
        content_type, body = wait_until(
            lambda: (lambda ct_body: ct_body if ct_body[0].startswith("application/openmetrics-text") else None)(
                scrape(port)), 40, "an OpenMetrics answer")
        assert body.endswith(b"# EOF\n")
        assert b"terway_vswitch_available_ip_addresses" in body
    finally:
        proc.stop()
    assert "Traceback" not in proc.log()


def test_readyz_waits_for_an_exposition_of_the_complete_first_sync(tmp_path):
    # A long render interval: the render loop pauses 30 s after each render. /readyz once turned 200 as soon
    # as every source had tried once, while /metrics still served the render made before the last of them
    # (at 5,000 nodes, 8 s without any cloud family). Ready must mean /metrics shows what the first sync read.
    procs: list = []
    try:
        port = start_serve("healthy", tmp_path, procs, ["--render-interval", "30s"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        up = {line.split('"')[1] for line in text.splitlines() if line.startswith("terway_exporter_source_up{")}
        assert {"cloud_vswitches", "cloud_security_groups", "kube_nodes", "kube_terway_nodes"} <= up, up
        assert "terway_vswitch_available_ip_addresses{" in text
    finally:
        for proc in reversed(procs):
            proc.stop()
