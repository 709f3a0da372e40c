"""The Kubernetes source when the API server misbehaves: a CRD deleted at runtime, a hung server.

Through the real kubernetes asyncio client against the simulated API server (its `freeze`
control stands for a hung API server: requests are not answered, open watches send nothing).
"""

from __future__ import annotations

import asyncio
import logging
import re

from support.waiting import wait_until_async
from terway_exporter.hub import SnapshotHub
from test_kube_source import fast_settings, restarts, scenario, wait_for, wait_up, watching


async def test_a_crd_deleted_at_runtime_falls_back_to_legacy_and_recovers(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: s.terway_nodes is not None and len(s.terway_nodes) == 2)
        made.simulator.apply({"kubernetes": {"crds": False}})
        # Each open watch ends, the resumed one gets 404: relist, which reads the CRD as absent.
        # The Node CR and PodNetworking reflectors are independent, so each is waited for: the
        # second may still be mid-relist when the first has published (CI saw exactly that).
        await wait_for(hub, lambda s: s.terway_nodes is None and not s.pod_networking_vswitches)
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


async def test_a_watch_that_held_starts_the_backoff_over(cluster, caplog):
    """Failures in a row double the wait; a watch that then stayed open longer than the last wait
    ends that run, so the next break (a cut stream minutes after an outage) waits the initial delay,
    not the doubled one (found by the chaos soak: a cut 30 s after an API server restart took 24 s)."""
    made = await cluster(scenario(), sim_args={"seed": 1})  # one KubeSimulator: the store survives a restart
    hub = SnapshotHub()
    settings = fast_settings(made.kubeconfig, watch_timeout=60, backoff_initial=0.2, backoff_max=3.2)
    caplog.set_level(logging.WARNING, logger="terway_exporter.sources.kube.reflector")
    async with watching(hub, settings):
        await wait_up(hub, "kube_nodes", True)
        await made.stop()  # refused: consecutive failures, waits of 0.2, 0.4, 0.8 s... (jittered)
        await wait_logged(caplog, lambda waits: len(waits) >= 4, timeout=15)
        await made.start()
        await wait_up(hub, "kube_nodes", True, timeout=15)
        last_wait = retry_waits(caplog)[-1]
        assert last_wait >= 0.8, "the outage made the wait grow"
        await asyncio.sleep(last_wait + 0.5)  # the resumed watch holds longer than the last wait
        caplog.clear()
        await made.control("cut-watches", {"mode": "abort"})
        waits = await wait_logged(caplog, lambda waits: len(waits) >= 1)
        assert waits[0] <= 0.3, f"a new run of failures starts at the initial delay, got {waits[0]} s"
        await wait_up(hub, "kube_nodes", True)


def retry_waits(caplog) -> list[float]:
    """The nodes reflector's waits, in order, from its "retrying in X s" warnings."""
    found = (re.search(r"^kubernetes nodes: .*; retrying in ([0-9.]+) s$", r.getMessage()) for r in caplog.records)
    return [float(m.group(1)) for m in found if m]


async def wait_logged(caplog, check, timeout: float = 5.0) -> list[float]:
    await wait_until_async(lambda: check(retry_waits(caplog)), timeout,
                           lambda: f"the retry waits logged; last: {[r.getMessage() for r in caplog.records][-10:]}")
    return retry_waits(caplog)
