"""The Kubernetes source through the real kubernetes asyncio client against the simulated API server.

Every resource ends up in the snapshot as the scenario describes it; the watch protocol is
exercised for resume, 410 relists (both as HTTP status and as an ERROR event), an API server
restart mid-watch, a missing CRD that appears later, and malformed objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from support.waiting import wait_until_async
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.kube import KubeSnapshot, waits_for_network
from terway_exporter.sources.kube.resources import STATUS_GROUPS
from terway_exporter.sources.kube.source import KubeSettings, KubeSource
from terway_simulator.kube_api import simulator_of, start_kube_simulator, write_kubeconfig
from terway_simulator.kube_state import KubeSimulator
from terway_simulator.world import build_world

VSW_H, VSW_I = "vsw-kubetest0h000000001", "vsw-kubetest0i000000001"
SANDBOX_MESSAGE = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for '
                   'sandbox "4f1c": plugin type="terway" failed (add): unexpected end of stream')
CRASH_LOG = ('time="2026-11-27T14:10:02Z" level=info msg="Starting terway daemon"\n'
             'time="2026-11-27T14:10:03Z" level=fatal msg="error create network service" '
             'error="ErrorCode: Forbidden.RAM Message: User not authorized to operate on the specified resource."\n')


def scenario(**kubernetes_overrides) -> dict:
    kubernetes = {
        "crds": True,
        "eni_config": {"eni_conf": {"version": "1", "ipam_type": "crd", "max_pool_size": 5,
                                    "vswitches": {"cn-hangzhou-h": [VSW_H], "cn-hangzhou-i": [VSW_I]}}},
        "dynamic_configs": {"dyn-small": {"eni_conf": {"max_pool_size": 2}}},
        "controlplane": {"replicas": 2, "available": 1},
        "coredns": {"replicas": 2, "available": 2},
        "service_cluster_ip": "172.16.0.1",
        "unscheduled_pods": 2,
        "pod_networkings": [{"name": "pn-a", "vswitches": [VSW_H]}],
        "events": [
            {"name": "ev-ipnotenough", "reason": "AllocIPFailed", "count": 3, "source": "terway-daemon",
             "message": "alloc ip failed: InvalidVSwitchId.IpNotEnough: The specified VSwitch has not enough IpAddress",
             "involved": {"kind": "Pod", "namespace": "default", "name": "web-1"}},
            {"name": "ev-sandbox", "reason": "FailedCreatePodSandBox", "count": 2, "message": SANDBOX_MESSAGE,
             "involved": {"kind": "Pod", "namespace": "default", "name": "web-2", "node": "node-a"}},
            {"name": "ev-pull", "reason": "Failed", "source": "kubelet", "message": "Failed to pull image nginx:bad",
             "involved": {"kind": "Pod", "namespace": "default", "name": "web-3"}},
            {"name": "ev-series", "reason": "CreateENIFailed", "count": 4, "style": "series",
             "message": "Failed to create ENI type=Secondary vsw=vsw-x: Throttling.User: Request was denied",
             "involved": {"kind": "Node", "name": "node-a", "apiVersion": "network.alibabacloud.com/v1beta1"}},
            {"name": "ev-normal", "type": "Normal", "reason": "AllocIPSucceed",
             "message": "InvalidVSwitchId.IpNotEnough",
             "involved": {"kind": "Pod", "namespace": "default", "name": "web-4"}},
        ],
    }
    kubernetes.update(kubernetes_overrides)
    return {
        "name": "kube-source-test",
        "vswitches": [{"id": VSW_H, "zone": "cn-hangzhou-h", "cidr": "192.168.0.0/20"},
                      {"id": VSW_I, "zone": "cn-hangzhou-i", "cidr": "192.168.16.0/20"}],
        "security_groups": [{"id": "sg-kubetest000000001"}],
        "instance_types": [{"type": "ecs.g7.xlarge", "eni_quantity": 4, "ips_per_eni": 15}],
        "nodes": [
            {"name": "node-a", "zone": "cn-hangzhou-h", "instance_type": "ecs.g7.xlarge", "enis": 1, "pods": 4,
             "idle": 2, "labels": {"terway-config": "dyn-small"},
             "kube": {"daemon": {"waiting_reason": "CrashLoopBackOff", "restarts": 5, "previous_log": CRASH_LOG},
                      "waiting_pods": {"count": 2, "for_seconds": 300}}},
            {"name": "node-b", "zone": "cn-hangzhou-i", "instance_type": "ecs.g7.xlarge", "enis": 2, "pods": 20,
             "idle": 1, "ready": False, "sufficient_ip": False,
             "ready_message": "container runtime network not ready: NetworkReady=false "
                              "reason:NetworkPluginNotReady message:Network plugin returns error: "
                              "cni plugin not initialized"},
        ],
        "kubernetes": kubernetes,
    }


def fast_settings(kubeconfig: str, **overrides) -> KubeSettings:
    values = dict(kubeconfig=str(kubeconfig), watch_timeout=5, resync=0, crd_recheck=0.3, publish_interval=0.05,
                  backoff_initial=0.05, backoff_max=0.2)
    values.update(overrides)
    return KubeSettings(**values)


class Cluster:
    """A running simulated API server, restartable on the same port."""

    def __init__(self, world, tmp_path, sim: KubeSimulator | None = None) -> None:
        self.world, self.tmp_path, self.sim = world, tmp_path, sim
        self.runner = None
        self.port = 0

    async def start(self) -> None:
        self.runner, url = await start_kube_simulator(self.world, port=self.port, sim=self.sim)
        self.port = int(url.rsplit(":", 1)[1])
        self.url = url
        self.kubeconfig = write_kubeconfig(self.tmp_path / "kubeconfig", url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def simulator(self) -> KubeSimulator:
        return simulator_of(self.runner)

    async def control(self, action: str, body: dict | None = None) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/_sim/kube/{action}", json=body or {}) as response:
                return await response.json()


@pytest.fixture
async def cluster(tmp_path):
    clusters: list[Cluster] = []

    async def make(data: dict, sim_args: dict | None = None) -> Cluster:
        world = build_world(data)
        sim = KubeSimulator(world, token="terway-sim-token", **sim_args) if sim_args else None
        made = Cluster(world, tmp_path, sim)
        await made.start()
        clusters.append(made)
        return made

    yield make
    for made in clusters:
        await made.stop()


async def wait_for(hub: SnapshotHub, check: Callable[[KubeSnapshot], bool], timeout: float = 8.0,
                   shown: Callable[[KubeSnapshot], object] = lambda kube: kube) -> KubeSnapshot:
    """Until the hub's snapshot passes `check`; on timeout the message shows `shown(last snapshot)`."""
    await wait_until_async(lambda: check(hub.kube), timeout, lambda: f"the snapshot to match; last: {shown(hub.kube)}")
    return hub.kube


@contextlib.asynccontextmanager
async def watching(hub: SnapshotHub, settings: KubeSettings) -> AsyncIterator[KubeSource]:
    """A KubeSource running (watching) for the duration of the block."""
    source = KubeSource(hub, settings)
    task = asyncio.create_task(source.run())
    try:
        yield source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_up(hub: SnapshotHub, source: str, up: bool, timeout: float = 5.0) -> None:
    await wait_until_async(lambda: hub.sources[source].up is up, timeout,
                           lambda: f"{source} up={up}; last: {hub.sources[source]}")


async def all_watching(made: Cluster, count: int | None = None) -> None:
    """Wait until every reflector has its watch open (a watch opened after a cut is not cut)."""
    count = sum(map(len, STATUS_GROUPS.values())) if count is None else count
    await wait_until_async(lambda: made.simulator.store.watcher_count() >= count, 5, f"{count} open watches")
    assert made.simulator.store.watcher_count() == count


def restarts(hub: SnapshotHub) -> dict[tuple[str, str], int]:
    return hub.counters.snapshot().kube_watch_restarts


# --------------------------------------------------------------------------- every resource


async def test_sync_once_reads_every_resource_as_the_scenario_describes(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    snap = await KubeSource(hub, fast_settings(made.kubeconfig)).sync_once()
    world = made.world

    assert set(snap.nodes) == {"node-a", "node-b"}
    a, b = snap.nodes["node-a"], snap.nodes["node-b"]
    assert (a.instance_id, a.instance_type, a.zone_id, a.region_id) == (
        world.nodes["node-a"].instance_id, "ecs.g7.xlarge", "cn-hangzhou-h", "cn-hangzhou")
    assert a.terway_config == "dyn-small" and a.ready is True and a.max_available_ip == 45
    assert b.ready is False and "cni plugin not initialized" in b.ready_message and b.sufficient_ip is False

    assert set(snap.terway_nodes) == {"node-a", "node-b"}
    cr = snap.terway_nodes["node-b"]
    assert (cr.adapters, cr.ipv4_per_adapter, cr.vswitch_ids) == (4, 15, (VSW_I,))
    assert {n.eni_id for n in cr.nics} == {e.eni_id for e in world.nodes["node-b"].enis}
    assert sum(n.ipv4_in_use for n in cr.nics) == 20
    assert snap.terway_nodes["node-a"].max_pool_size == 5

    assert sorted(p.node for p in snap.daemon_pods.values()) == ["node-a", "node-b"]
    crashing = next(p for p in snap.daemon_pods.values() if p.node == "node-a")
    terway = next(c for c in crashing.containers if c.name == "terway")
    assert (terway.waiting_reason, terway.restarts) == ("CrashLoopBackOff", 5)
    assert snap.crash_causes == {"node-a": "Forbidden.RAM"}
    assert all(key.startswith("kube-system/") for key in snap.daemon_pods)

    assert sorted(w.node for w in snap.waiting_pods.values()) == ["node-a", "node-a"]
    assert all(abs(w.since - (world.started_at - 300)) < 5 for w in snap.waiting_pods.values())

    assert snap.daemonset is not None and (snap.daemonset.desired, snap.daemonset.ready) == (2, 1)
    assert (snap.controlplane.desired, snap.controlplane.available) == (2, 1)
    assert (snap.coredns.desired, snap.coredns.available) == (2, 2)
    assert snap.controlplane_lease.holder.startswith("terway-controlplane-")
    assert snap.controlplane_lease.duration_seconds == 15 and snap.controlplane_lease.renew_time > time.time() - 60

    assert json.loads(snap.eni_config["eni_conf"])["vswitches"]["cn-hangzhou-i"] == [VSW_I]
    assert "ctrl-config.yaml" in snap.controlplane_config
    assert {name: json.loads(d["eni_conf"]) for name, d in snap.dynamic_configs.items()} == {
        "dyn-small": {"max_pool_size": 2}}
    assert snap.kubernetes_service_ip == "172.16.0.1"
    assert snap.pod_networking_vswitches == frozenset({VSW_H})

    # One-shot collection counts every event present; the image pull and the Normal event are not network errors.
    assert snap.network_errors == {
        ("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 3,
        ("other", "FailedCreatePodSandBox"): 2,
        ("Throttling", "CreateENIFailed"): 4,
    }
    kube_sources = {name: s for name, s in hub.sources.items() if name.startswith("kube_")}
    assert {"kube_nodes", "kube_terway_nodes", "kube_pods", "kube_pending_pods", "kube_events", "kube_workloads",
            "kube_configmaps"} <= set(kube_sources)
    assert all(s.attempted and s.up and s.last_success for s in kube_sources.values()), kube_sources


async def test_hosted_controlplane_and_missing_configmap_read_as_none(cluster):
    made = await cluster(scenario(controlplane={"hosted": True}, eni_config=None, coredns=None))
    snap = await KubeSource(SnapshotHub(), fast_settings(made.kubeconfig)).sync_once()
    assert snap.controlplane is None and snap.controlplane_lease is None
    assert snap.eni_config is None and snap.controlplane_config is None


# --------------------------------------------------------------------------- watching


async def test_watch_follows_changes_and_counts_event_increments_since_start(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        assert {"kube_nodes", "kube_events"} <= set(hub.sources) and not hub.ready(), "registered up front"
        snap = await wait_for(hub, lambda s: bool(s.nodes) and s.crash_causes == {"node-a": "Forbidden.RAM"})
        # Events that happened before the source started count from their next occurrence on.
        assert snap.network_errors == {("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 0,
                                       ("other", "FailedCreatePodSandBox"): 0, ("Throttling", "CreateENIFailed"): 0}
        assert hub.ready()
        events = [dict(e) for e in made.world.kubernetes["events"]]
        events[0]["count"] = 5  # the same event seen again with count 5: adds 2
        events.append({"name": "ev-new", "reason": "AllocIPFailed", "count": 2, "last_seen_ago": 0,
                       "message": "EniPerInstanceLimitExceeded: Number of ENI per instance exceeds the limit",
                       "involved": {"kind": "Pod", "namespace": "default", "name": "web-9"}})
        made.simulator.apply({
            "kubernetes": {"events": events},
            "nodes": {"node-a": {"labels": {"terway-config": None}, "kube": {"waiting_pods": {"count": 0}}},
                      "node-b": {"ready": True,
                                 "kube": {"daemon": {"waiting_reason": "CrashLoopBackOff", "restarts": 1,
                                                     "previous_log": "fatal: InvalidVSwitchId.NotFound"}}}},
        })
        snap = await wait_for(hub, lambda s: s.network_errors.get(("EniPerInstanceLimitExceeded", "AllocIPFailed")) == 2
                              and s.crash_causes.get("node-b") == "InvalidVSwitchId.NotFound")
        assert snap.network_errors[("InvalidVSwitchId.IpNotEnough", "AllocIPFailed")] == 2
        await wait_for(hub, lambda s: not s.waiting_pods and not s.dynamic_configs and s.nodes["node-b"].ready)
        assert restarts(hub) == {} or set(r for _, r in restarts(hub)) <= {"closed"}


async def test_watch_resumes_after_the_server_timeout_without_relisting(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig, watch_timeout=1)):
        await wait_for(hub, lambda s: bool(s.nodes))
        # The nodes watch has ended once at its timeoutSeconds, and every watch is open again.
        await wait_until_async(lambda: restarts(hub).get(("nodes", "closed"), 0) >= 1, 10,
                               "the nodes watch to end at its timeout")
        await all_watching(made)
        made.simulator.apply({"nodes": {"node-b": {"labels": {"terway-config": "dyn-small"}}}})
        await wait_for(hub, lambda s: s.nodes["node-b"].terway_config == "dyn-small")
        counted = restarts(hub)
        assert counted.get(("nodes", "closed"), 0) >= 1
        assert not any(reason != "closed" for _, reason in counted), counted


@pytest.mark.parametrize("expired_as", ["event", "http"])
async def test_expired_resource_version_relists(cluster, expired_as):
    made = await cluster(scenario(api={"expired_watch": expired_as}))
    hub = SnapshotHub()
    # The first retry comes 1 to 3 s after an error: time to change things while no watch is open.
    async with watching(hub, fast_settings(made.kubeconfig, backoff_initial=2.0, backoff_max=2.0)):
        await wait_for(hub, lambda s: bool(s.nodes))
        await all_watching(made)
        await made.control("cut-watches", {"mode": "abort"})
        # Every stream notices the cut; none is open again before its 2 s backoff.
        await wait_until_async(lambda: made.simulator.store.watcher_count() == 0, 5, "every watch to end")
        # A change the watches never see: the log that holds it is compacted before they resume.
        made.simulator.apply({"nodes": {"node-b": {"labels": {"terway-config": "dyn-small"}}}})
        await made.control("compact")
        await wait_for(hub, lambda s: s.nodes["node-b"].terway_config == "dyn-small")
        counted = restarts(hub)
        assert counted.get(("nodes", "error"), 0) >= 1 and counted.get(("nodes", "expired"), 0) >= 1, counted
        assert hub.sources["kube_nodes"].up


async def test_api_server_restart_mid_watch(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: bool(s.nodes))
        await made.stop()
        await wait_up(hub, "kube_nodes", False)
        assert hub.sources["kube_nodes"].error
        assert hub.kube.nodes, "what was known keeps being served while the API server is down"
        made.world.nodes["node-b"].ready = True
        await made.start()  # same port, a new store: the old resourceVersions are gone (410)
        await wait_for(hub, lambda s: s.nodes["node-b"].ready is True)
        await wait_up(hub, "kube_nodes", True)
        assert not hub.sources["kube_nodes"].error
        counted = restarts(hub)
        assert counted.get(("nodes", "error"), 0) >= 1 and counted.get(("nodes", "expired"), 0) >= 1, counted


async def test_a_stream_cut_mid_line_by_the_server_resumes(cluster):
    made = await cluster(scenario())
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: bool(s.nodes))
        await all_watching(made)
        await made.control("cut-watches", {"mode": "partial"})
        made.simulator.apply({"nodes": {"node-a": {"ready": False, "ready_message": "kubelet stopped posting"}}})
        await wait_for(hub, lambda s: s.nodes["node-a"].ready is False)
        assert restarts(hub).get(("nodes", "error"), 0) >= 1
        assert not restarts(hub).get(("nodes", "expired"))


# --------------------------------------------------------------------------- CRDs and bad data


async def test_missing_crd_means_legacy_until_it_is_installed(cluster):
    made = await cluster(scenario(crds=False))
    hub = SnapshotHub()
    snap = await KubeSource(SnapshotHub(), fast_settings(made.kubeconfig)).sync_once()
    assert snap.terway_nodes is None and snap.pod_networking_vswitches == frozenset()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: bool(s.nodes) and s.terway_nodes is None)
        assert hub.sources["kube_terway_nodes"].up, "a CRD that is not installed is an answer, not a failure"
        made.simulator.apply({"kubernetes": {"crds": True}})
        await wait_for(hub, lambda s: s.terway_nodes is not None and len(s.terway_nodes) == 2
                       and s.pod_networking_vswitches == frozenset({VSW_H}))


async def test_malformed_objects_are_skipped_and_the_rest_is_served(cluster, caplog):
    made = await cluster(scenario(), sim_args={"auto_refresh_max_nodes": 0})
    store = made.simulator.store
    bad_cr = {"apiVersion": "network.alibabacloud.com/v1beta1", "kind": "Node",
              "metadata": {"name": "node-bad", "uid": "u-bad"},
              "spec": {"nodeCap": "four adapters"}, "status": {"networkInterfaces": ["not", "a", "map"]}}
    sparse_cr = {"apiVersion": "network.alibabacloud.com/v1beta1", "kind": "Node", "metadata": {"name": "node-sparse"}}
    store.replace("crnodes", [bad_cr, sparse_cr], scope={"node-bad", "node-sparse"})
    odd_event = {"metadata": {"name": "ev-odd", "namespace": "default", "uid": "u-odd"}, "type": "Warning",
                 "reason": "AllocIPFailed", "message": {"not": "a string"}, "count": 1}
    weird_event = {"metadata": {"name": "ev-weird", "namespace": "default", "uid": "u-weird"}, "type": "Warning",
                   "reason": "AllocIPFailed", "message": "\u2603\x00 \U0001f525 " * 500, "count": "7",
                   "lastTimestamp": "2026-01-01T00:00:00Z"}
    store.replace("events", [odd_event, weird_event], scope={"default/ev-odd", "default/ev-weird"})

    hub = SnapshotHub()
    snap = await KubeSource(hub, fast_settings(made.kubeconfig)).sync_once()
    assert set(snap.terway_nodes) == {"node-a", "node-b", "node-sparse"}
    assert snap.terway_nodes["node-sparse"].adapters is None
    assert snap.network_errors[("other", "AllocIPFailed")] == 7
    assert hub.sources["kube_terway_nodes"].up and hub.sources["kube_events"].up
    skipped = [r.getMessage() for r in caplog.records if "skipped malformed object" in r.getMessage()]
    assert any("node-bad" in m for m in skipped) and any("ev-odd" in m for m in skipped)

    # In a watch: a good Node CR turning malformed keeps its last good projection.
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: s.terway_nodes is not None and "node-a" in s.terway_nodes)
        broken = {**store.get("crnodes", "node-a"), "spec": {"pool": {"maxPoolSize": "five"}}}
        store.replace("crnodes", [broken], scope={"node-a"})
        store.replace("crnodes", [{**sparse_cr, "spec": {"pool": {"maxPoolSize": 9}}}], scope={"node-sparse"})
        await wait_for(hub, lambda s: s.terway_nodes["node-sparse"].max_pool_size == 9)
        assert hub.kube.terway_nodes["node-a"].max_pool_size == 5


async def test_unreachable_api_server_reports_every_source_down(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # nothing listens on port 9
    hub = SnapshotHub()
    snap = await KubeSource(hub, fast_settings(kubeconfig)).sync_once()
    assert snap.nodes == {} and snap.terway_nodes == {}
    kube_sources = [s for name, s in hub.sources.items() if name.startswith("kube_")]
    assert kube_sources and all(s.attempted and not s.up and s.error for s in kube_sources)
    assert hub.ready(), "a broken cluster connection still lets /readyz pass, to serve what is broken"

    hub = SnapshotHub()
    await KubeSource(hub, fast_settings(str(tmp_path / "no-such-kubeconfig"))).sync_once()
    assert all(not s.up and "cannot configure" in s.error for s in hub.sources.values())


def test_a_source_of_several_reflectors_waits_for_all_and_names_the_failing_one():
    from terway_exporter.sources.kube.reflector import ReflectorStatus
    from terway_exporter.sources.kube.source import group_status

    ok = ReflectorStatus(attempted=True, synced=True, up=True, last_success=200.0, last_duration=0.5)
    failing = ReflectorStatus(attempted=True, up=False, last_duration=1.5, error="HTTP 403: pods is forbidden")
    assert group_status("kube_pods", {"daemon_pods": ok, "coredns_pods": ReflectorStatus()}) is None
    status = group_status("kube_pods", {"daemon_pods": ok, "coredns_pods": failing})
    assert (status.up, status.last_success, status.last_duration) == (False, None, 1.5)
    assert status.error == "coredns_pods: HTTP 403: pods is forbidden"
    assert group_status("kube_nodes", {"nodes": ok}).last_success == 200.0


# --------------------------------------------------------------------------- pods waiting for their network


def waiting_scenario(condition: bool, web_event: bool = True) -> dict:
    """node-a: 2 pods whose sandbox network fails, 2 pulling a large image, 1 hostNetwork pod, 1 waiting for a
    volume; `condition`: whether the kubelets report PodReadyToStartContainers."""
    data = scenario(pod_ready_to_start_containers=condition)
    data["nodes"][0]["kube"]["waiting_pods"] = [
        {"count": 2, "for_seconds": 600, "cause": "network",
         **({"sandbox_event": {"count": 3, "last_seen_ago": 10}} if web_event else {})},
        # Their sandbox failed once, an hour ago; now they pull (the event is older than the window).
        {"count": 2, "for_seconds": 3700, "name_prefix": "bigimage", "cause": "image_pull",
         "sandbox_event": {"count": 1, "last_seen_ago": 3600}},
        # Even a sandbox failure event does not make a hostNetwork pod wait for the CNI.
        {"count": 1, "for_seconds": 600, "name_prefix": "agent", "cause": "network", "host_network": True,
         "sandbox_event": {"count": 2, "last_seen_ago": 10}},
        {"count": 1, "for_seconds": 600, "name_prefix": "db", "cause": "volume"},
    ]
    return data


def counted(snap: KubeSnapshot) -> list[str]:
    """The name prefixes of the pods that count as waiting for their network."""
    now = time.time()
    return sorted(p.ref.split("/")[1].rsplit("-", 2)[0] for p in snap.waiting_pods.values()
                  if waits_for_network(p, now))


@pytest.mark.parametrize("condition", [True, False], ids=["PodReadyToStartContainers", "no-condition"])
async def test_only_pods_whose_sandbox_network_is_not_set_up_wait_for_it(cluster, condition):
    made = await cluster(waiting_scenario(condition))
    snap = await KubeSource(SnapshotHub(), fast_settings(made.kubeconfig)).sync_once()
    assert counted(snap) == ["web", "web"]
    exposition = render_waiting(snap)
    assert 'terway_pods_waiting_for_network{node="node-a"} 2.0' in exposition
    assert 'node="node-b"' not in exposition
    # The hostNetwork pod never reaches the store; image pulls do only where the condition is missing.
    prefixes = sorted(p.ref.split("/")[1].rsplit("-", 2)[0] for p in snap.waiting_pods.values())
    assert prefixes == (["db", "web", "web"] if condition else ["bigimage", "bigimage", "db", "web", "web"])


def render_waiting(snap: KubeSnapshot) -> str:
    from prometheus_client.exposition import generate_latest

    from terway_exporter.collectors.pods import collect_waiting
    from terway_exporter.model.state import ClusterState

    class Families:
        def collect(self):
            return list(collect_waiting(ClusterState(now=time.time(), kube=snap)))

    return generate_latest(Families()).decode()


async def test_watch_joins_sandbox_failure_events_as_they_arrive(cluster):
    made = await cluster(waiting_scenario(condition=False, web_event=False))
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        # No condition and no failure event yet: ContainerCreating alone reads as an image pull.
        snap = await wait_for(hub, lambda s: len(s.waiting_pods) == 5)
        assert counted(snap) == []
        specs = [dict(spec) for spec in made.world.nodes["node-a"].kube["waiting_pods"]]
        specs[0]["sandbox_event"] = {"count": 1, "last_seen_ago": 0}
        made.simulator.apply({"nodes": {"node-a": {"kube": {"waiting_pods": specs}}}})
        await wait_for(hub, lambda s: counted(s) == ["web", "web"])
        # The cluster is upgraded: the kubelets now report the condition, and the web pods got their network.
        specs[0]["cause"] = "image_pull"
        made.simulator.apply({"kubernetes": {"pod_ready_to_start_containers": True},
                              "nodes": {"node-a": {"kube": {"waiting_pods": specs}}}})
        snap = await wait_for(hub, lambda s: len(s.waiting_pods) == 1)
        assert counted(snap) == [] and next(iter(snap.waiting_pods.values())).volume_wait


async def test_watch_counts_events_k8s_io_series_like_core_events(cluster):
    pod_create = {"name": "ev-podcreate", "reason": "PodCreateFailed", "style": "events.k8s.io", "count": 2,
                  "last_seen_ago": 600, "source": "terway-controlplane/pod",
                  "message": "Pod create error: ErrorCode: Forbidden.RAM, elapsedTime: 1.2s",
                  "involved": {"kind": "Pod", "namespace": "default", "name": "trunk-0"}}
    detach = {"name": "ev-detach", "reason": "DetachENIFailed", "style": "events.k8s.io", "count": 1,
              "last_seen_ago": 600, "source": "terway-controlplane/pod-eni", "message": "ErrorCode: Throttling.User",
              "involved": {"kind": "PodENI", "namespace": "default", "name": "trunk-1",
                           "apiVersion": "network.alibabacloud.com/v1beta1"},
              "related": {"kind": "Pod", "namespace": "default", "name": "trunk-1", "apiVersion": "v1"}}
    made = await cluster(scenario(events=[pod_create, detach]))
    snap = await KubeSource(SnapshotHub(), fast_settings(made.kubeconfig)).sync_once()
    assert snap.network_errors == {("Forbidden.RAM", "PodCreateFailed"): 2, ("Throttling", "DetachENIFailed"): 1}
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        snap = await wait_for(hub, lambda s: bool(s.nodes))
        assert snap.network_errors == {("Forbidden.RAM", "PodCreateFailed"): 0, ("Throttling", "DetachENIFailed"): 0}
        update = {"name": "ev-update", "reason": "UpdatePodENIFailed", "style": "events.k8s.io", "count": 1,
                  "last_seen_ago": 0, "source": "terway-controlplane/pod-eni",
                  "message": "ErrorCode: InvalidAccessKeyId.NotFound",
                  "involved": {"kind": "PodENI", "namespace": "default", "name": "trunk-2",
                               "apiVersion": "network.alibabacloud.com/v1beta1"}}
        made.simulator.apply({"kubernetes": {"events": [
            {**pod_create, "count": 5, "last_seen_ago": 0},  # the recorder flushed its series: +3
            {**detach, "count": 2, "last_seen_ago": 0},  # the second occurrence starts the series: +1
            update,  # a first occurrence, no series: +1
        ]}})
        await wait_for(hub, lambda s: s.network_errors == {
            ("Forbidden.RAM", "PodCreateFailed"): 3, ("Throttling", "DetachENIFailed"): 1,
            ("InvalidAccessKeyId.NotFound", "UpdatePodENIFailed"): 1})


async def test_sandbox_failures_that_go_on_keep_counting_and_keep_the_pods_waiting(cluster):
    made = await cluster(waiting_scenario(condition=False, web_event=False))
    specs = [dict(spec) for spec in made.world.nodes["node-a"].kube["waiting_pods"]]
    specs[0]["sandbox_event"] = {"count": 1, "last_seen_ago": 0, "repeat_seconds": 1}  # the kubelet keeps retrying
    made.simulator.apply({"nodes": {"node-a": {"kube": {"waiting_pods": specs}}}})
    hub = SnapshotHub()
    async with watching(hub, fast_settings(made.kubeconfig)):
        await wait_for(hub, lambda s: counted(s) == ["web", "web"])
        # Each new occurrence is an increment of the events' counts, counted as it comes (the simulator's clock
        # adds one per second to each of the two pods' events).
        await wait_for(hub, lambda s: s.network_errors.get(("other", "FailedCreatePodSandBox"), 0) >= 4)
        assert counted(hub.kube) == ["web", "web"]
