"""PodENIs: the projection, the reflector through the real kubernetes asyncio client against the
simulated API server, and the leak split they feed (fixed-IP pods' ENIs are never leaked)."""

from __future__ import annotations

import asyncio
import copy
import logging
import time

import pytest
from kubernetes.aio import client, config
from prometheus_client.parser import text_string_to_metric_families

from support.cloud import render
from terway_exporter.collectors import eni
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.cloud import CloudSnapshot, Eni
from terway_exporter.model.kube import KubeSnapshot, PodEni
from terway_exporter.model.state import ClusterState
from terway_exporter.sources.cloud.source import detached_terway_enis
from terway_exporter.sources.kube.fields import ProjectionError
from terway_exporter.sources.kube.podenis import project_pod_eni
from terway_exporter.sources.kube.source import KubeSettings, KubeSource
from terway_simulator.kube_api import simulator_of, start_kube_simulator, write_kubeconfig
from terway_simulator.world import WorldPodEni, build_world, read_scenario
from test_kube_source import wait_for as wait_for_snapshot

GROUP = "network.alibabacloud.com/v1beta1"


def raw_pod_eni(name: str = "web-0", namespace: str = "default", **parts) -> dict:
    """A PodENI as Terway v1.17 writes it for a fixed-IP pod whose ENI it detached."""
    obj = {
        "apiVersion": GROUP, "kind": "PodENI",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
        "spec": {"allocations": [{
            "allocationType": {"type": "Fixed", "releaseStrategy": "TTL", "releaseAfter": "72h0m0s"},
            "eni": {"id": "eni-a", "vSwitchID": "vsw-1", "mac": "00:16:3e:00:00:01"},
            "ipv4": "192.168.16.9", "interface": "eth0", "defaultRoute": True}], "zone": "cn-hangzhou-i"},
        "status": {"phase": "Unbind", "podLastSeen": "2026-01-02T03:04:05Z",
                   "eniInfos": {"eni-a": {"id": "eni-a", "type": "Secondary", "status": "Unbind"}}},
    }
    obj.update(parts)
    return obj


# --------------------------------------------------------------------------- projection


@pytest.mark.parametrize(("raw", "expected"), [
    (raw_pod_eni(), PodEni("default", "web-0", ("eni-a",), "Unbind", True, "TTL", "72h0m0s")),
    # Status names an ENI the spec does not (a key and its id): every one is referenced, once each.
    (raw_pod_eni(status={"phase": "Bind", "eniInfos": {"eni-b": {"id": "eni-b"}, "eni-c": {}}}),
     PodEni("default", "web-0", ("eni-a", "eni-b", "eni-c"), "Bind", True, "TTL", "72h0m0s")),
    # An Elastic (not fixed-IP) pod's PodENI, just created: no status yet.
    (raw_pod_eni(spec={"allocations": [{"allocationType": {"type": "Elastic"}, "eni": {"id": "eni-e"}}]}, status=None),
     PodEni("default", "web-0", ("eni-e",), "", False, "", "")),
    # Before the controller allocated anything.
    ({"metadata": {"name": "new", "namespace": "ns"}}, PodEni("ns", "new")),
    # releaseStrategy Never: no releaseAfter.
    (raw_pod_eni(spec={"allocations": [{"allocationType": {"type": "Fixed", "releaseStrategy": "Never"},
                                        "eni": {"id": "eni-n"}}]}, status={}),
     PodEni("default", "web-0", ("eni-n",), "", True, "Never", "")),
])
def test_projection(raw, expected):
    assert project_pod_eni(raw) == expected


@pytest.mark.parametrize("raw", [
    raw_pod_eni(spec={"allocations": {"eni": {"id": "eni-a"}}}),  # allocations is not a list
    raw_pod_eni(spec={"allocations": ["eni-a"]}),  # an allocation that is not an object
    raw_pod_eni(spec={"allocations": [{"eni": {"id": {"value": "eni-a"}}}]}),  # an id that is not a string
    raw_pod_eni(spec={"allocations": [{"eni": "eni-a"}]}),
    raw_pod_eni(status={"eniInfos": ["eni-a"]}),  # eniInfos is a map
    raw_pod_eni(status={"eniInfos": {"eni-a": "Bind"}}),
    raw_pod_eni(status={"phase": {"name": "Bind"}}),
    raw_pod_eni(metadata={"namespace": "default"}),  # no name
    raw_pod_eni(spec="fixed"),
])
def test_malformed_podeni_is_rejected_not_crashing(raw):
    with pytest.raises(ProjectionError):
        project_pod_eni(raw)


# --------------------------------------------------------------------------- through the client


def world_data(**kubernetes) -> dict:
    data = copy.deepcopy(read_scenario("leaked-enis"))
    data["stray_enis"].append({"count": 2, "vswitch": "vsw-bp1lea0h0000000000001", "status": "Available",
                               "creator": "terway-controller", "age_seconds": 7200,
                               "pod_eni": {"namespace": "db", "name": "mysql", "phase": "Unbind",
                                           "release_strategy": "Never"}})
    data["kubernetes"].update(kubernetes)
    return data


def settings(kubeconfig) -> KubeSettings:
    return KubeSettings(kubeconfig=str(kubeconfig), watch_timeout=5, resync=0, crd_recheck=0.3, publish_interval=0.05,
                        backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
async def served(tmp_path):
    runners = []

    async def start(data: dict):
        world = build_world(data)
        runner, url = await start_kube_simulator(world, "127.0.0.1")
        runners.append(runner)
        return world, simulator_of(runner), write_kubeconfig(tmp_path / "kubeconfig", url)

    yield start
    for runner in runners:
        await runner.cleanup()


def state_of(world, snap: KubeSnapshot, now: float | None = None) -> ClusterState:
    """The exporter's state for the world's cloud side (as the cloud source reads it) and `snap`."""
    enis = [Eni(e.eni_id, e.status, e.type, e.creator if e.creator in ("terway", "terway-controller") else "other",
                creation_time=e.created_at) for e in world.stray_enis]
    return ClusterState(now=time.time() if now is None else now,
                        cloud=CloudSnapshot(detached_enis=detached_terway_enis(enis)), kube=snap)


def metric(state: ClusterState) -> dict[tuple[str, tuple], float]:
    text = render(state, eni.COLLECTORS)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name.startswith("terway_enis_")}


async def test_podenis_are_listed_cluster_wide_and_keep_their_enis_out_of_the_leaks(served):
    world, _, kubeconfig = await served(world_data())
    hub = SnapshotHub()
    snap = await KubeSource(hub, settings(kubeconfig)).sync_once()
    assert hub.sources["kube_pod_enis"].up
    expected = {f"{p.namespace}/{p.name}": (p.eni_id,) for p in world.pod_enis}
    assert {k: v.eni_ids for k, v in snap.pod_enis.items()} == expected
    assert set(expected) == {"default/web-0", "db/mysql-0", "db/mysql-1"}
    web = snap.pod_enis["default/web-0"]
    assert (web.phase, web.fixed_ip, web.release_strategy, web.release_after) == ("Unbind", True, "TTL", "72h0m0s")
    assert snap.pod_enis["db/mysql-1"].release_strategy == "Never"

    got = metric(state_of(world, snap))
    # The scenario's 3 pool and 2 per-pod leaks; the 3 fixed-IP pods' ENIs are held, not leaked.
    assert got[("terway_enis_leaked", (("creator", "terway"),))] == 3
    assert got[("terway_enis_leaked", (("creator", "terway-controller"),))] == 2
    assert got[("terway_enis_held_by_podeni", (("phase", "Unbind"),))] == 3
    # Without the PodENIs, those 3 would have been called leaked.
    assert metric(state_of(world, KubeSnapshot(pod_enis={})))[
        ("terway_enis_leaked", (("creator", "terway-controller"),))] == 5


async def test_namespaced_paths_serve_one_namespace(served):
    _, _, kubeconfig = await served(world_data())
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        custom = client.CustomObjectsApi(api)
        db = await custom.list_namespaced_custom_object("network.alibabacloud.com", "v1beta1", "db", "podenis")
        one = await custom.get_namespaced_custom_object("network.alibabacloud.com", "v1beta1", "default", "podenis",
                                                        "web-0")
        everywhere = await custom.list_cluster_custom_object("network.alibabacloud.com", "v1beta1", "podenis")
    assert sorted(i["metadata"]["name"] for i in db["items"]) == ["mysql-0", "mysql-1"]
    assert {i["metadata"]["namespace"] for i in db["items"]} == {"db"}
    assert one["kind"] == "PodENI" and one["status"]["phase"] == "Unbind"
    assert len(everywhere["items"]) == 3 and db["kind"] == "PodENIList"


async def test_missing_crd_is_known_empty_and_an_unreachable_server_is_unknown(served, tmp_path):
    _, _, kubeconfig = await served(world_data(crds=False))
    hub = SnapshotHub()
    snap = await KubeSource(hub, settings(kubeconfig)).sync_once()
    assert snap.pod_enis == {} and hub.sources["kube_pod_enis"].up, "no CRD: no PodENI holds anything"

    unreachable = write_kubeconfig(tmp_path / "nowhere", "http://127.0.0.1:9")  # nothing listens on port 9
    hub = SnapshotHub()
    snap = await KubeSource(hub, settings(unreachable)).sync_once()
    assert snap.pod_enis is None and not hub.sources["kube_pod_enis"].up
    # Unknown PodENIs: per-pod ENIs are not counted either way, pool ENIs still are.
    world = build_world(world_data())
    got = metric(state_of(world, snap))
    assert ("terway_enis_leaked", (("creator", "terway-controller"),)) not in got
    assert got[("terway_enis_leaked", (("creator", "terway"),))] == 3
    assert not any(name == "terway_enis_held_by_podeni" for name, _ in got)


async def test_malformed_podenis_are_skipped_with_a_warning(served, caplog):
    world, sim, kubeconfig = await served(world_data())
    sim.auto_refresh = False  # keep the objects planted below
    bad = [raw_pod_eni("bad-list", spec={"allocations": "eni-x"}),
           raw_pod_eni("bad-info", status={"eniInfos": ["eni-y"]}),
           raw_pod_eni("bad-id", spec={"allocations": [{"eni": {"id": ["eni-z"]}}]})]
    sim.store.replace("podenis", bad, scope={f"default/{o['metadata']['name']}" for o in bad})
    caplog.set_level(logging.WARNING)
    hub = SnapshotHub()
    snap = await KubeSource(hub, settings(kubeconfig)).sync_once()
    assert set(snap.pod_enis) == {"default/web-0", "db/mysql-0", "db/mysql-1"}
    assert hub.sources["kube_pod_enis"].up
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
               and "skipped malformed object" in r.getMessage() and "pod_enis" in r.getMessage()]
    assert sorted(m.split("object ")[1].split(":")[0] for m in skipped) == [
        "default/bad-id", "default/bad-info", "default/bad-list"]


async def wait_for(hub: SnapshotHub, check, timeout: float = 8.0) -> KubeSnapshot:
    return await wait_for_snapshot(hub, check, timeout, shown=lambda kube: f"PodENIs {kube.pod_enis}")


async def test_watch_follows_podenis_and_the_leak_split_with_them(served):
    world, sim, kubeconfig = await served(world_data())
    hub = SnapshotHub()
    source = KubeSource(hub, settings(kubeconfig))
    task = asyncio.create_task(source.run())
    try:
        await wait_for(hub, lambda s: s.pod_enis is not None and len(s.pod_enis) == 3)
        # Terway released db/mysql-1 (its releaseAfter passed): the PodENI goes, its ENI is leaked until deleted.
        gone = next(p for p in world.pod_enis if p.name == "mysql-1")
        world.pod_enis.remove(gone)
        # A new StatefulSet pod is deleted and its fixed-IP ENI detached: a PodENI turns up for it.
        lost = next(e for e in world.stray_enis
                    if e.creator == "terway-controller" and e.created_at < time.time() - 3600
                    and e.eni_id not in {p.eni_id for p in world.pod_enis})
        world.pod_enis.append(WorldPodEni("shop", "cart-0", lost.eni_id, phase="Unbind"))
        sim.refresh()
        snap = await wait_for(hub, lambda s: set(s.pod_enis) == {"default/web-0", "db/mysql-0", "shop/cart-0"})
        got = metric(state_of(world, snap))
        assert got[("terway_enis_held_by_podeni", (("phase", "Unbind"),))] == 3
        assert got[("terway_enis_leaked", (("creator", "terway-controller"),))] == 2  # one left, one came in
        assert gone.eni_id not in {i for p in snap.pod_enis.values() for i in p.eni_ids}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
