"""A watch stream cut in the middle of an event, seen through the real kubernetes asyncio client.

The simulated API server always ends events cleanly, so this test serves raw bytes from a
tiny aiohttp handler: one list, then a watch that sends one event and half of the next and
closes, then a watch that must resume from the last complete event's resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from support.waiting import wait_until_async
from terway_exporter.hub import SnapshotHub
from terway_exporter.sources.kube.reflector import Reflector, ReflectorSettings
from terway_exporter.sources.kube.resources import resource_specs
from terway_exporter.sources.kube.source import KubeSettings, open_api_client


def _node(name: str, rv: str, zone: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv, "labels": {"topology.kubernetes.io/zone": zone}}}


def _line(kind: str, obj: dict) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


@pytest.fixture
async def raw_server(tmp_path):
    requests: list[dict[str, str]] = []
    second_watch_done, stop = asyncio.Event(), asyncio.Event()

    async def nodes(request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        requests.append(query)
        if query.get("watch") != "true":
            return web.json_response({"kind": "NodeList", "metadata": {"resourceVersion": "10"},
                                      "items": [_node("n1", "5", "z1")]})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        watches = sum(1 for q in requests if q.get("watch") == "true")
        if watches == 1:
            await response.write(_line("ADDED", _node("n2", "11", "z2")))
            cut = _line("MODIFIED", _node("n1", "12", "z9"))
            await response.write(cut[: len(cut) // 2])  # ...and the connection ends mid-event
            return response
        await response.write(_line("MODIFIED", _node("n1", "13", "z3")))
        second_watch_done.set()
        await stop.wait()  # held open like a real watch, until the test ends
        return response

    app = web.Application()
    app.router.add_get("/api/v1/nodes", nodes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "raw",
        "clusters": [{"name": "raw", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "raw", "user": {"token": "raw-token"}}],
        "contexts": [{"name": "raw", "context": {"cluster": "raw", "user": "raw"}}],
    }))
    yield str(kubeconfig), requests, second_watch_done
    stop.set()
    await runner.cleanup()


async def test_stream_cut_mid_line_drops_the_partial_event_and_resumes(raw_server, caplog):
    kubeconfig, requests, second_watch_done = raw_server
    hub = SnapshotHub()
    caplog.set_level(logging.WARNING)
    async with open_api_client(KubeSettings(kubeconfig=kubeconfig)) as api:
        spec = resource_specs(api, "kube-system")["nodes"]
        settings = ReflectorSettings(backoff_initial=0.05, backoff_max=0.1, watch_timeout=30)
        reflector = Reflector(spec, settings, count_restart=hub.counters.count_watch_restart)
        task = asyncio.create_task(reflector.run())
        try:
            await asyncio.wait_for(second_watch_done.wait(), 10)
            # The resumed watch's event applied (n1 moved to z3).
            await wait_until_async(lambda: "n1" in reflector.items and reflector.items["n1"].zone_id == "z3", 10,
                                   lambda: f"the resumed watch's event; items {reflector.items}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert {name: node.zone_id for name, node in reflector.items.items()} == {"n1": "z3", "n2": "z2"}
    lists = [q for q in requests if q.get("watch") != "true"]
    watches = [q for q in requests if q.get("watch") == "true"]
    assert len(lists) == 1, "a cut stream resumes the watch, it does not relist"
    assert [w.get("resourceVersion") for w in watches] == ["10", "11"]
    assert watches[0]["allowWatchBookmarks"] == "true" and watches[0]["timeoutSeconds"] == "30"
    assert hub.counters.snapshot().kube_watch_restarts == {("nodes", "error"): 1}
    assert any("cut mid-event" in r.getMessage() for r in caplog.records)
    assert reflector.status.up
