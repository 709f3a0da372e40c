"""The Kubernetes source when the API server misbehaves: a CRD deleted at runtime, a hung server.

Through the real kubernetes asyncio client against the simulated API server (its `freeze`
control stands for a hung API server: requests are not answered, open watches send nothing).
"""

from __future__ import annotations

from terway_exporter.hub import SnapshotHub

from test_kube_source import cluster, fast_settings, restarts, scenario, wait_for, wait_up, watching  # noqa: F401


async def test_a_crd_deleted_at_runtime_falls_back_to_legacy_and_recovers(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: s.terway_nodes is not None and len(s.terway_nodes) == 2)
        made.simulator.apply({"kubernetes": {"crds": False}})
        # The open watch ends, the resumed one gets 404: relist, which reads the CRD as absent.
        snap = await wait_for(hub, lambda s: s.terway_nodes is None)
        assert snap.pod_networking_vswitches == frozenset()
        assert restarts(hub).get(("terway_nodes", "not_found"), 0) >= 1
        assert hub.sources["kube_terway_nodes"].up, "a CRD that is not installed is an answer, not a failure"
        made.simulator.apply({"kubernetes": {"crds": True}})
        await wait_for(hub, lambda s: s.terway_nodes is not None and len(s.terway_nodes) == 2)


async def test_a_hung_api_server_marks_the_sources_down_and_they_recover(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    settings = fast_settings(made.kubeconfig, watch_timeout=60, silence_timeout=1.0)
    async with watching(hub, settings):
        await wait_for(hub, lambda s: len(s.nodes) == 2)
        await wait_up(hub, "kube_nodes", True)
        await made.control("freeze", {"frozen": True})
        # No event and no bookmark: each watch is declared silent and its source goes down,
        # long before the 60 s watch timeout would have ended it.
        await wait_up(hub, "kube_nodes", False, timeout=15)
        assert "silent" in hub.sources["kube_nodes"].error
        assert restarts(hub).get(("nodes", "silent"), 0) >= 1
        # What was known is still served while the server is hung.
        assert set(hub.kube.nodes) == {"node-a", "node-b"}
        made.simulator.apply({"nodes": {"node-a": {"ready": False, "ready_message": "kubelet stopped posting"}}})
        await made.control("freeze", {"frozen": False})
        await wait_up(hub, "kube_nodes", True, timeout=15)
        # The relist after the silence picks up what changed while nothing was heard.
        await wait_for(hub, lambda s: s.nodes["node-a"].ready is False, timeout=15)
