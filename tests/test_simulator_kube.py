"""The simulated Kubernetes API server, driven by the real `kubernetes` client (sync and asyncio).

Sync client calls block, so they run in a worker thread while the server runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import jsonschema
import pytest
import yaml
from kubernetes import client as sync_client
from kubernetes import config as sync_config
from kubernetes import watch as sync_watch
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config
from kubernetes.aio import watch as aio_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from support.waiting import wait_until_async
from terway_simulator.kube_api import DEFAULT_TOKEN, simulator_of, start_kube_simulator, write_kubeconfig
from terway_simulator.kube_podenis import pod_enis
from terway_simulator.world import build_world, load_world, read_scenario, scenario_names

CRD_DIR = Path(__file__).resolve().parent / "crds"
NODE = "cn-hangzhou.192.168.0.10"


class Cluster:
    """A running simulator plus clients for it."""

    def __init__(self, runner, url: str, kubeconfig: Path) -> None:
        self.runner, self.url, self.kubeconfig = runner, url, kubeconfig
        self.sim = simulator_of(runner)

    def sync_api(self) -> sync_client.ApiClient:
        return sync_config.new_client_from_config(config_file=str(self.kubeconfig))

    async def control(self, action: str, body: dict | None = None) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/_sim/kube/{action}", json=body or {}) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()


async def start(tmp_path: Path, world) -> Cluster:
    runner, url = await start_kube_simulator(world, "127.0.0.1")
    return Cluster(runner, url, write_kubeconfig(tmp_path / "kubeconfig", url, DEFAULT_TOKEN))


@pytest.fixture
async def cluster(tmp_path):
    c = await start(tmp_path, load_world("healthy"))
    yield c
    await c.runner.cleanup()


async def aio_api(kubeconfig: Path) -> aio_client.ApiClient:
    cfg = aio_client.Configuration()
    await aio_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return aio_client.ApiClient(configuration=cfg)


# --------------------------------------------------------------------------- core objects


async def test_nodes_carry_labels_provider_id_conditions_and_capacity(cluster):
    nodes = await asyncio.to_thread(lambda: sync_client.CoreV1Api(cluster.sync_api()).list_node())
    assert len(nodes.items) == 3
    node = next(n for n in nodes.items if n.metadata.name == NODE)
    world_node = cluster.sim.world.nodes[NODE]
    assert node.spec.provider_id == f"cn-hangzhou.{world_node.instance_id}"
    assert node.metadata.labels["topology.kubernetes.io/zone"] == "cn-hangzhou-h"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "ecs.g7.xlarge"
    assert node.metadata.annotations["k8s.aliyun.com/max-available-ip"] == str((4 - 1) * 15)
    conditions = {c.type: c for c in node.status.conditions}
    assert conditions["Ready"].status == "True"
    assert (conditions["SufficientIP"].status, conditions["SufficientIP"].reason) == ("True", "SufficientIP")


async def test_wrong_token_is_401_with_status_body(cluster, tmp_path):
    bad = write_kubeconfig(tmp_path / "bad", cluster.url, "not-the-token")
    api = sync_config.new_client_from_config(config_file=str(bad))
    with pytest.raises(ApiException) as err:
        await asyncio.to_thread(sync_client.CoreV1Api(api).list_node)
    assert err.value.status == 401
    assert json.loads(err.value.body) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_node_crs_agree_with_the_world(cluster):
    api = cluster.sync_api()
    crs = await asyncio.to_thread(lambda: sync_client.CustomObjectsApi(api).list_cluster_custom_object(
        "network.alibabacloud.com", "v1beta1", "nodes"))
    cr = next(i for i in crs["items"] if i["metadata"]["name"] == NODE)
    world_node = cluster.sim.world.nodes[NODE]
    assert set(cr["status"]["networkInterfaces"]) == {e.eni_id for e in world_node.enis}
    ips = [ip for nic in cr["status"]["networkInterfaces"].values() for ip in nic["ipv4"].values()]
    assert sum(1 for ip in ips if ip.get("podID")) == 18 and sum(1 for ip in ips if not ip.get("podID")) == 3
    assert cr["spec"]["nodeCap"]["adapters"] == 4 and cr["spec"]["nodeCap"]["ipv4PerAdapter"] == 15
    assert cr["spec"]["eni"]["vSwitchOptions"] == ["vsw-bp1h0000000000000001"]
    assert cr["spec"]["eni"]["vSwitchSelectPolicy"] == "most"  # "ordered" in eni_conf, as the daemon maps it
    assert cr["spec"]["pool"] == {"maxPoolSize": 5, "minPoolSize": 0}


def _crd_schema(name: str) -> dict:
    crd = yaml.safe_load((CRD_DIR / f"network.alibabacloud.com_{name}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("scenario", [n for n in scenario_names()])
async def test_every_scenarios_node_crs_validate_against_the_crd(scenario, tmp_path):
    world = load_world(scenario, {"nodes": 30} if "generate" in read_scenario(scenario) else None)
    c = await start(tmp_path, world)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as session:
            async with session.get(f"{c.url}/apis/network.alibabacloud.com/v1beta1/nodes") as resp:
                body = await resp.json()
            async with session.get(f"{c.url}/apis/network.alibabacloud.com/v1beta1/podnetworkings") as pn:
                pn_body = await pn.json()
            async with session.get(f"{c.url}/apis/network.alibabacloud.com/v1beta1/podenis") as pe:
                pe_status, pe_body = pe.status, await pe.json()
    finally:
        await c.runner.cleanup()
    if world.kubernetes.get("crds") is False:
        assert resp.status == 404 and body["reason"] == "NotFound"
        assert pe_status == 404 and pe_body["reason"] == "NotFound"
        return
    assert resp.status == 200 and len(body["items"]) == len(world.nodes)
    validator = jsonschema.Draft7Validator(_crd_schema("nodes"), format_checker=jsonschema.FormatChecker())
    for item in body["items"]:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(item)]
        assert errors == [], item["metadata"]["name"]
    for item in pn_body["items"]:
        jsonschema.validate(item, _crd_schema("podnetworkings"))
    assert pe_status == 200 and len(pe_body["items"]) == len(world.pod_enis)
    podeni = jsonschema.Draft7Validator(_crd_schema("podenis"), format_checker=jsonschema.FormatChecker())
    for item in pe_body["items"]:
        errors = [f"{list(e.path)}: {e.message}" for e in podeni.iter_errors(item)]
        assert errors == [], item["metadata"]["name"]
        assert item["kind"] == "PodENI" and item["metadata"]["namespace"]
    if scenario == "leaked-enis":  # the fixed-IP pod whose detached ENI is not leaked
        assert [i["metadata"]["name"] for i in pe_body["items"]] == ["web-0"]


def test_podeni_schema_check_catches_a_wrong_shape():
    """The validation above can fail: the vendored schema rejects what Terway would not write."""
    world = load_world("leaked-enis")
    item = pod_enis(world)[0]
    jsonschema.validate(item, _crd_schema("podenis"))
    item["spec"]["allocations"][0]["allocationType"]["type"] = "Sticky"
    item["status"]["eniInfos"][world.pod_enis[0].eni_id]["type"] = "Elastic"
    validator = jsonschema.Draft7Validator(_crd_schema("podenis"))
    assert len(list(validator.iter_errors(item))) == 2


async def test_missing_crd_answers_404_like_an_unknown_resource(tmp_path):
    c = await start(tmp_path, load_world("legacy-ipam"))
    try:
        api = c.sync_api()
        for plural in ("nodes", "podnetworkings", "podenis"):
            with pytest.raises(ApiException) as err:
                await asyncio.to_thread(sync_client.CustomObjectsApi(api).list_cluster_custom_object,
                                        "network.alibabacloud.com", "v1beta1", plural)
            assert err.value.status == 404
            assert json.loads(err.value.body) == {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound", "details": {},
                "code": 404}
        groups = await asyncio.to_thread(lambda: sync_client.ApisApi(api).get_api_versions())
        assert "network.alibabacloud.com" not in {g.name for g in groups.groups}
        assert len((await asyncio.to_thread(lambda: sync_client.CoreV1Api(api).list_node())).items) == 2
    finally:
        await c.runner.cleanup()


# --------------------------------------------------------------------------- paging and selectors


async def test_paged_list_returns_every_pod_once(cluster):
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    full = await asyncio.to_thread(v1.list_pod_for_all_namespaces)
    names, token, versions = [], None, set()
    while True:
        page = await asyncio.to_thread(v1.list_pod_for_all_namespaces, limit=7, _continue=token)
        names += [f"{p.metadata.namespace}/{p.metadata.name}" for p in page.items]
        versions.add(page.metadata.resource_version)  # every page reports the first page's list version
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == len(full.items) - len(names)
    pages = len(names) // 7 + (1 if len(names) % 7 else 0)
    assert len(names) == len(set(names)) == len(full.items) == 3 + 1 + 2 + 18 + 9 + 20
    assert len(versions) == 1 and pages == 8


async def test_label_selected_pages_are_the_full_list_filtered(cluster):
    """Application pods a label selector or namespace refuses are skipped unbuilt; the pages, continue tokens and
    watch's initial events must be as if every pod had been built and tested."""
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    every = (await asyncio.to_thread(v1.list_pod_for_all_namespaces)).items
    app = next(p.metadata.labels["app"] for p in every if {"app", "pod-template-hash"} <= p.metadata.labels.keys())

    def key(pod) -> str:
        return f"{pod.metadata.namespace}/{pod.metadata.name}"

    async def paged(call, **kw) -> list[str]:
        names, token = [], None
        while True:
            page = await asyncio.to_thread(call, limit=3, _continue=token, **kw)
            names += [key(p) for p in page.items]
            token = page.metadata._continue
            if not token:
                return names

    for selector, wanted in ((f"app={app}", lambda p: p.metadata.labels.get("app") == app),
                             ("app!=terway-eniip", lambda p: p.metadata.labels.get("app") != "terway-eniip"),
                             ("pod-template-hash", lambda p: "pod-template-hash" in p.metadata.labels)):
        expected = [key(p) for p in every if wanted(p)]
        assert expected and await paged(v1.list_pod_for_all_namespaces, label_selector=selector) == expected
    in_default = [key(p) for p in every if p.metadata.namespace == "default"]
    assert in_default and await paged(v1.list_namespaced_pod, namespace="default") == in_default
    api = await aio_api(cluster.kubeconfig)
    async with api:
        core = aio_client.CoreV1Api(api)
        async with aio_watch.Watch().stream(core.list_namespaced_pod, "default", label_selector=f"app={app}",
                                            timeout_seconds=1) as stream:
            added = [key(event["object"]) async for event in stream if event["type"] == "ADDED"]
    assert added and added == [key(p) for p in every
                               if p.metadata.namespace == "default" and p.metadata.labels.get("app") == app]


async def test_label_and_field_selectors(tmp_path):
    c = await start(tmp_path, load_world("stuck-vswitch-exhausted"))
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())

        async def pods(**kw):
            return (await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces(**kw))).items

        daemons = await pods(label_selector="app=terway-eniip")
        assert len(daemons) == 2 and all(p.metadata.namespace == "kube-system" for p in daemons)
        system = await pods(label_selector="k8s-app in (kube-dns,terway-controlplane)")
        assert sorted(p.metadata.labels["k8s-app"] for p in system) == ["kube-dns", "kube-dns", "terway-controlplane"]
        not_daemon = await pods(label_selector="app!=terway-eniip")
        assert len(not_daemon) == len(await pods()) - 2
        pending = await pods(field_selector="status.phase=Pending")
        waiting = [p for p in pending if p.spec.node_name]
        assert len(waiting) == 4 and len(pending) == 6  # two more are unschedulable, with no node
        for pod in waiting:
            assert pod.spec.node_name == NODE
            assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
            assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
        on_node = await pods(field_selector=f"spec.nodeName={NODE},status.phase=Running")
        assert len(on_node) == 30 + 1 + 2  # app pods, its daemon, the controlplane and a CoreDNS pod placed there
        events = (await asyncio.to_thread(lambda: v1.list_event_for_all_namespaces(
            field_selector="type=Warning,involvedObject.kind=Pod"))).items
        assert {e.reason for e in events} == {"AllocIPFailed", "FailedCreatePodSandBox", "FailedScheduling"}
        with pytest.raises(ApiException) as err:
            await pods(field_selector="spec.color=blue")
        assert err.value.status == 400 and "field label not supported: spec.color" in err.value.body
    finally:
        await c.runner.cleanup()


async def test_event_shapes_legacy_count_and_series(tmp_path):
    c = await start(tmp_path, load_world("stuck-vswitch-exhausted"))
    try:
        events = (await asyncio.to_thread(lambda: sync_client.CoreV1Api(c.sync_api()).list_namespaced_event(
            "default", field_selector="reason=CreateENIFailed"))).items
        assert len(events) == 1
        ev = events[0]
        assert ev.count == 12 and ev.source.component == "multi-ip-node" and ev.type == "Warning"
        assert ev.involved_object.api_version == "network.alibabacloud.com/v1beta1"
        assert ev.first_timestamp < ev.last_timestamp and "InvalidVSwitchId.IpNotEnough" in ev.message
        series = (await asyncio.to_thread(lambda: sync_client.CoreV1Api(c.sync_api()).list_namespaced_event(
            "default", field_selector="reason=FailedScheduling"))).items[0]
        assert series.count is None and series.series.count == 3 and series.event_time is not None
    finally:
        await c.runner.cleanup()


# --------------------------------------------------------------------------- logs and pod states


async def test_previous_log_of_a_crash_looping_daemon(tmp_path):
    c = await start(tmp_path, load_world("crashloop-bad-credentials"))
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())
        pods = (await asyncio.to_thread(
            lambda: v1.list_namespaced_pod("kube-system", label_selector="app=terway-eniip"))).items
        pod = next(p for p in pods if p.spec.node_name == NODE)
        terway = next(s for s in pod.status.container_statuses if s.name == "terway")
        assert terway.state.waiting.reason == "CrashLoopBackOff" and terway.restart_count == 14
        assert terway.last_state.terminated.exit_code == 1
        text = await asyncio.to_thread(lambda: v1.read_namespaced_pod_log(
            pod.metadata.name, "kube-system", container="terway", previous=True, tail_lines=2))
        assert len(text.splitlines()) == 2 and "InvalidAccessKeyId.NotFound" in text
        healthy = next(p for p in pods if p.spec.node_name != NODE)
        assert "InvalidAccessKeyId.NotFound" in await asyncio.to_thread(lambda: v1.read_namespaced_pod_log(
            healthy.metadata.name, "kube-system", container="terway", previous=True))
        policy = await asyncio.to_thread(lambda: v1.read_namespaced_pod_log(
            pod.metadata.name, "kube-system", container="policy", previous=False))
        assert policy == ""
        with pytest.raises(ApiException) as err:
            await asyncio.to_thread(lambda: v1.read_namespaced_pod_log(
                pod.metadata.name, "kube-system", container="policy", previous=True))
        assert err.value.status == 400
        assert json.loads(err.value.body)["message"] == (
            f'previous terminated container "policy" in pod "{pod.metadata.name}" not found')
        with pytest.raises(ApiException) as err:
            await asyncio.to_thread(lambda: v1.read_namespaced_pod_log(pod.metadata.name, "kube-system"))
        assert "a container name must be specified" in json.loads(err.value.body)["message"]
        with pytest.raises(ApiException) as err:
            await asyncio.to_thread(
                lambda: v1.read_namespaced_pod_log("terway-eniip-nope", "kube-system", container="terway"))
        assert err.value.status == 404
    finally:
        await c.runner.cleanup()


async def test_workloads_lease_configmaps_and_service(tmp_path):
    c = await start(tmp_path, load_world("controlplane-down"))
    try:
        api = c.sync_api()
        apps = sync_client.AppsV1Api(api)
        cp = await asyncio.to_thread(lambda: apps.read_namespaced_deployment("terway-controlplane", "kube-system"))
        assert cp.spec.replicas == 1 and cp.status.available_replicas is None and cp.status.unavailable_replicas == 1
        ds = await asyncio.to_thread(lambda: apps.read_namespaced_daemon_set("terway-eniip", "kube-system"))
        assert ds.status.desired_number_scheduled == 2 and ds.status.number_ready == 2
        lease = await asyncio.to_thread(lambda: sync_client.CoordinationV1Api(api).read_namespaced_lease(
            "terway-controlplane", "kube-system"))
        assert 590 < time.time() - lease.spec.renew_time.timestamp() < 700
        v1 = sync_client.CoreV1Api(api)
        cm = await asyncio.to_thread(lambda: v1.read_namespaced_config_map("eni-config", "kube-system"))
        assert json.loads(cm.data["eni_conf"])["ipam_type"] == "crd" and "10-terway.conf" in cm.data
        svc = await asyncio.to_thread(lambda: v1.read_namespaced_service("kubernetes", "default"))
        assert svc.spec.cluster_ip == "172.16.0.1"
        with pytest.raises(ApiException) as err:
            await asyncio.to_thread(lambda: v1.read_namespaced_config_map("nope", "kube-system"))
        assert json.loads(err.value.body)["message"] == 'configmaps "nope" not found'
    finally:
        await c.runner.cleanup()
    c = await start(tmp_path, load_world("controlplane-degraded"))
    try:
        cm = await asyncio.to_thread(lambda: sync_client.CoreV1Api(c.sync_api()).read_namespaced_config_map(
            "terway-controlplane", "kube-system"))
        assert yaml.safe_load(cm.data["ctrl-config.yaml"])["degradation"] == "l1"
    finally:
        await c.runner.cleanup()


# --------------------------------------------------------------------------- watch


async def test_sync_watch_sends_bookmarks_and_ends_at_timeout(cluster):
    cluster.sim.bookmark_seconds = 0.3
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    listed = await asyncio.to_thread(v1.list_node)

    def watch():
        w = sync_watch.Watch()
        return [e for e in w.stream(v1.list_node, resource_version=listed.metadata.resource_version,
                                    allow_watch_bookmarks=True, timeout_seconds=1)], w

    began = time.monotonic()
    events, w = await asyncio.to_thread(watch)
    # It ends by itself, not before its timeoutSeconds (a lower bound: a slow machine cannot break it).
    assert time.monotonic() - began >= 0.9
    assert events and {e["type"] for e in events} == {"BOOKMARK"}
    assert int(w.resource_version) >= int(listed.metadata.resource_version)


async def test_watch_resumes_from_a_resource_version(cluster):
    api = await aio_api(cluster.kubeconfig)
    async with api:
        v1 = aio_client.CoreV1Api(api)
        listed = await v1.list_node()
        rv = listed.metadata.resource_version
        cluster.sim.apply({"nodes": {NODE: {"ready": False, "ready_message": "PLEG is not healthy"}}})
        seen = []
        async with aio_watch.Watch().stream(v1.list_node, resource_version=rv, timeout_seconds=1) as stream:
            async for event in stream:
                seen.append(event)
        assert [(e["type"], e["object"].metadata.name) for e in seen] == [("MODIFIED", NODE)]
        ready = {c.type: c for c in seen[0]["object"].status.conditions}["Ready"]
        assert ready.status == "False" and ready.message == "PLEG is not healthy"
        # Resuming from the event's own version replays nothing.
        again = []
        async with aio_watch.Watch().stream(v1.list_node, resource_version=seen[0]["object"].metadata.resource_version,
                                            timeout_seconds=1) as stream:
            async for event in stream:
                again.append(event)
        assert again == []


async def test_watch_without_version_starts_with_added_then_live_changes(cluster):
    api = await aio_api(cluster.kubeconfig)
    async with api:
        custom = aio_client.CustomObjectsApi(api)
        events = []

        async def later():
            await wait_until_async(lambda: cluster.sim.store.watcher_count() >= 1, 5, "the watch to be open")
            cluster.sim.apply({"nodes": {NODE: {"pods": 19, "idle": 2}}})

        task = asyncio.create_task(later())
        async with aio_watch.Watch().stream(custom.list_cluster_custom_object, "network.alibabacloud.com", "v1beta1",
                                            "nodes", timeout_seconds=1) as stream:
            async for event in stream:
                events.append((event["type"], event["object"]["metadata"]["name"]))
        await task
        assert sorted(events[:3]) == sorted(("ADDED", n) for n in cluster.sim.world.nodes)
        assert events[3:] == [("MODIFIED", NODE)]


async def test_watch_older_than_compaction_gets_410(cluster):
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    listed = await asyncio.to_thread(v1.list_node)
    cluster.sim.apply({"nodes": {NODE: {"sufficient_ip": False}}})
    await cluster.control("compact")
    with pytest.raises(ApiException) as err:
        await asyncio.to_thread(lambda: list(sync_watch.Watch().stream(
            v1.list_node, resource_version=listed.metadata.resource_version, timeout_seconds=1)))
    assert err.value.status == 410 and "too old resource version" in err.value.reason
    cluster.sim.expired_watch = "http"
    with pytest.raises(ApiException) as err:
        await asyncio.to_thread(lambda: v1.list_node(watch=True, resource_version=listed.metadata.resource_version,
                                                     timeout_seconds=1, _preload_content=False))
    assert err.value.status == 410 and json.loads(err.value.body)["reason"] == "Expired"


async def test_continue_token_older_than_compaction_gets_410(cluster):
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    page = await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces(limit=5))
    cluster.sim.apply({"nodes": {NODE: {"ready": False}}})
    await cluster.control("compact")
    with pytest.raises(ApiException) as err:
        await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces(limit=5, _continue=page.metadata._continue))
    body = json.loads(err.value.body)
    assert err.value.status == 410 and body["reason"] == "Expired" and body["metadata"]["continue"]


async def test_watch_selector_turns_leaving_objects_into_deleted(tmp_path):
    c = await start(tmp_path, load_world("stuck-vswitch-exhausted"))
    try:
        api = await aio_api(c.kubeconfig)
        async with api:
            v1 = aio_client.CoreV1Api(api)
            pending = await v1.list_pod_for_all_namespaces(field_selector="status.phase=Pending")
            c.sim.apply({"nodes": {NODE: {"kube": {"waiting_pods": {"count": 1}}}}})
            seen = []
            async with aio_watch.Watch().stream(v1.list_pod_for_all_namespaces, field_selector="status.phase=Pending",
                                                resource_version=pending.metadata.resource_version,
                                                timeout_seconds=1) as stream:
                async for event in stream:
                    seen.append(event["type"])
            assert seen == ["DELETED"] * 3
    finally:
        await c.runner.cleanup()


async def test_api_server_restart_on_the_same_port(cluster, tmp_path):
    v1 = sync_client.CoreV1Api(cluster.sync_api())
    listed = await asyncio.to_thread(v1.list_node)
    port = int(cluster.url.rsplit(":", 1)[1])
    sim = cluster.sim
    await cluster.runner.cleanup()
    with pytest.raises(MaxRetryError):  # connection refused, after the client's retries
        await asyncio.to_thread(lambda: v1.list_node(_request_timeout=2))
    # Same storage (like etcd surviving an API server restart): the watch resumes.
    cluster.runner, url = await start_kube_simulator(sim.world, "127.0.0.1", port, sim=sim)
    assert url == cluster.url
    sim.apply({"nodes": {NODE: {"ready": False}}})
    events = await asyncio.to_thread(lambda: list(sync_watch.Watch().stream(
        v1.list_node, resource_version=listed.metadata.resource_version, timeout_seconds=1)))
    assert [e["type"] for e in events] == ["MODIFIED"]
    await cluster.runner.cleanup()
    # Fresh storage: old versions are gone, the client must relist.
    cluster.runner, _ = await start_kube_simulator(load_world("healthy"), "127.0.0.1", port)
    with pytest.raises(ApiException) as err:
        await asyncio.to_thread(lambda: list(sync_watch.Watch().stream(
            v1.list_node, resource_version=listed.metadata.resource_version, timeout_seconds=1)))
    assert err.value.status == 410


async def test_open_watches_end_when_the_server_stops(cluster):
    api = await aio_api(cluster.kubeconfig)
    async with api:
        v1 = aio_client.CoreV1Api(api)

        async def watch():
            async with aio_watch.Watch().stream(v1.list_node, timeout_seconds=30) as stream:
                return [e async for e in stream]

        task = asyncio.create_task(watch())
        await wait_until_async(lambda: cluster.sim.store.watcher_count() >= 1, 5, "the watch to be open")
        await cluster.runner.cleanup()
        # Ended by the stop, not by its 30 s timeoutSeconds (the bound only keeps a hang from lasting).
        events = await asyncio.wait_for(task, 15)
        assert len(events) == 3


async def test_cut_watch_ends_mid_line(cluster):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as session:
        async with session.get(f"{cluster.url}/api/v1/nodes?watch=1&resourceVersion={cluster.sim.store.rv}") as resp:
            await wait_until_async(lambda: cluster.sim.store.watcher_count() >= 1, 5, "the watch to be open")
            await cluster.control("cut-watches", {"mode": "partial"})
            body = await asyncio.wait_for(resp.read(), 3)
    assert body.startswith(b'{"type":"MODIFIED"') and not body.endswith(b"\n")


# --------------------------------------------------------------------------- steps, churn, scale


async def test_scenario_steps_apply_over_time_and_on_demand(tmp_path):
    data = read_scenario("healthy")
    data["steps"] = [
        {"after_seconds": 0, "set": {"kubernetes": {"controlplane": {"available": 0, "lease_renew_ago": 120}},
                                     "vswitches": {"vsw-bp1h0000000000000001": {"available": 0}}}},
        {"after_seconds": 3600, "set": {"nodes": {NODE: {"kube": {"daemon": {"waiting_reason": "CrashLoopBackOff",
                                                                             "restarts": 2, "previous_log": "x"}}}},
                                        "add_events": [{"reason": "AllocIPFailed", "message": "m", "count": 2,
                                                        "involved": {"kind": "Node", "name": NODE}}]}},
    ]
    c = await start(tmp_path, build_world(data))
    try:
        # The simulator's clock (a tick a second) applies step 0, not the one of an hour later.
        await wait_until_async(lambda: c.sim.next_step >= 1, 10, "step 0 to be applied")
        assert c.sim.next_step == 1 and c.sim.world.vswitches["vsw-bp1h0000000000000001"].available_ips == 0
        apps = sync_client.AppsV1Api(c.sync_api())
        cp = await asyncio.to_thread(lambda: apps.read_namespaced_deployment("terway-controlplane", "kube-system"))
        assert cp.status.available_replicas is None
        lease = c.sim.store.get("leases", "kube-system/terway-controlplane")
        assert lease["spec"]["renewTime"] < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 100))
        result = await c.control("step")
        assert result["next_step"] == 2 and result["changes"] >= 3  # daemon pod, DaemonSet, event
        ds = await asyncio.to_thread(lambda: apps.read_namespaced_daemon_set("terway-eniip", "kube-system"))
        assert ds.status.number_ready == 2 and ds.status.number_unavailable == 1
    finally:
        await c.runner.cleanup()


async def test_a_node_added_by_a_step_is_created_then(tmp_path):
    # The API server stamps metadata.creationTimestamp when an object is created: a node that joins during a
    # scenario is new (the exporter's terway_nodes_newest_creation_timestamp_seconds reads it), the others old.
    data = read_scenario("healthy")
    data["steps"] = [{"after_seconds": 3600, "set": {"add_nodes": [
        {"name": "cn-hangzhou.192.168.0.99", "zone": "cn-hangzhou-h", "instance_type": "ecs.g7.xlarge"}]}}]
    c = await start(tmp_path, build_world(data))
    try:
        stepped_at = time.time()
        await c.control("step")
        joined = c.sim.store.get("nodes", "cn-hangzhou.192.168.0.99")["metadata"]["creationTimestamp"]
        old = c.sim.store.get("nodes", NODE)["metadata"]["creationTimestamp"]
    finally:
        await c.runner.cleanup()
    assert joined >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stepped_at - 1))
    assert old < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stepped_at - 86400))


async def test_churn_emits_modified_events(cluster):
    api = await aio_api(cluster.kubeconfig)
    async with api:
        v1 = aio_client.CoreV1Api(api)
        listed = await v1.list_pod_for_all_namespaces(limit=1)
        await cluster.control("churn", {"count": 20})
        types = []
        async with aio_watch.Watch().stream(v1.list_pod_for_all_namespaces,
                                            resource_version=listed.metadata.resource_version,
                                            timeout_seconds=1) as stream:
            async for event in stream:
                types.append(event["type"])
        crs = sum(1 for _ in cluster.sim.store.events_since("crnodes", int(listed.metadata.resource_version)))
    assert set(types) == {"MODIFIED"} and len(types) + crs == 20


@pytest.mark.slow  # the 5,000-node world served
async def test_scale_scenario_serves_pages(tmp_path):
    # How fast: bench/run.py times the exporter on the scale scenario to /readyz (its first pages included).
    world = load_world("scale")
    c = await start(tmp_path, world)
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())
        page = await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces(limit=500, _preload_content=False))
        body = json.loads(page.data)
        assert len(body["items"]) == 500 and body["metadata"]["remainingItemCount"] == 5000 + 150_000 + 3 - 500
        nodes = await asyncio.to_thread(lambda: v1.list_node(limit=500, _preload_content=False))
        assert len(json.loads(nodes.data)["items"]) == 500
        assert c.sim.churn_per_minute == 0.01
    finally:
        await c.runner.cleanup()


# --------------------------------------------------------------------------- Terway v1.16 / v1.17 shapes


async def test_events_k8s_io_events_read_through_core_v1_as_the_api_server_converts_them(tmp_path):
    c = await start(tmp_path, load_world("terway-v1.17-stuck"))
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())
        events = (await asyncio.to_thread(lambda: v1.list_namespaced_event(
            "default", field_selector="reason=DetachENIFailed"))).items
        assert len(events) == 1
        ev = events[0]
        # Convert_v1_Event_To_core_Event: the deprecated fields the new recorder leaves empty.
        assert ev.source.component is None and ev.source.host is None
        assert ev.count is None and ev.first_timestamp is None and ev.last_timestamp is None
        assert ev.reporting_component == "terway-controlplane/pod-eni"
        assert ev.reporting_instance.startswith("terway-controlplane/pod-eni-terway-controlplane-")
        assert ev.action == "DetachENI" and ev.event_time is not None and ev.series.count == 3
        assert ((ev.involved_object.kind, ev.involved_object.api_version)
                == ("PodENI", "network.alibabacloud.com/v1beta1"))
        assert (ev.related.kind, ev.related.name) == ("Pod", ev.involved_object.name)
        single = (await asyncio.to_thread(lambda: v1.list_namespaced_event(
            "default", field_selector="reason=CreateENIFailed"))).items[0]
        assert single.series is None and single.count is None and single.event_time is not None
        # The daemon's events stay core/v1.
        daemon = (await asyncio.to_thread(lambda: v1.list_namespaced_event(
            "default", field_selector="source=terway-daemon"))).items
        assert [e.reason for e in daemon] == ["AllocIPFailed"] and daemon[0].count == 6
        # A field selector on the empty source finds none of the controlplane's.
        by_source = (await asyncio.to_thread(lambda: v1.list_event_for_all_namespaces(
            field_selector="source=terway-controlplane/pod"))).items
        assert by_source == []
    finally:
        await c.runner.cleanup()


async def test_waiting_pods_by_cause_and_their_kubelet_events(tmp_path):
    c = await start(tmp_path, load_world("terway-v1.17-stuck"))
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())
        pending = (await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces(
            field_selector="status.phase=Pending,spec.nodeName!="))).items
        by_prefix: dict[str, list] = {}
        for pod in pending:
            by_prefix.setdefault(pod.metadata.name.rsplit("-", 2)[0], []).append(pod)
        assert {k: len(v) for k, v in by_prefix.items()} == {"web": 3, "ml-trainer": 2, "node-agent": 1, "postgres": 1}
        sandbox = {name: {c.type: c.status for c in pods[0].status.conditions}["PodReadyToStartContainers"]
                   for name, pods in by_prefix.items()}
        assert sandbox == {"web": "False", "ml-trainer": "True", "node-agent": "False", "postgres": "False"}
        assert all(p.status.container_statuses[0].state.waiting.reason == "ContainerCreating" for p in pending)
        assert by_prefix["node-agent"][0].spec.host_network is True and not by_prefix["web"][0].spec.host_network
        events = (await asyncio.to_thread(lambda: v1.list_namespaced_event(
            "default", field_selector="involvedObject.kind=Pod,source=kubelet"))).items
        by_uid = {(e.involved_object.uid, e.reason) for e in events}
        assert {(p.metadata.uid, "FailedCreatePodSandBox") for p in by_prefix["web"]} <= by_uid
        assert (by_prefix["postgres"][0].metadata.uid, "FailedMount") in by_uid
        assert not any(p.metadata.uid == uid for p in by_prefix["ml-trainer"] for uid, _ in by_uid)
    finally:
        await c.runner.cleanup()

    c = await start(tmp_path, load_world("terway-v1.16-stuck"))
    try:
        v1 = sync_client.CoreV1Api(c.sync_api())
        pods = (await asyncio.to_thread(lambda: v1.list_pod_for_all_namespaces())).items
        assert pods and not any(cond.type == "PodReadyToStartContainers" for p in pods
                                for cond in p.status.conditions or [])
        events = (await asyncio.to_thread(lambda: v1.list_namespaced_event(
            "default", field_selector="source=TerwayPodENIController"))).items
        assert sorted(e.reason for e in events) == ["CniCreateENIError", "DetachENIFailed", "UpdatePodENIFailed"]
        assert all(e.count and e.last_timestamp and e.reporting_component == "TerwayPodENIController" for e in events)
    finally:
        await c.runner.cleanup()
