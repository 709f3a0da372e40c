"""Absurd values and broken text from the APIs: rejected or repaired where they enter, and every
collector still renders.

Kubernetes objects go through the real asyncio client against the simulated API server, whose
store the tests fill with what a broken or hostile writer could put there (a real API server stores
any JSON number and any string JSON can carry). The cloud side is checked at its parse functions:
the simulator is the specification of the documented API and never answers a negative count, and
through the real SDK for IDs the cluster names that cannot be IDs.
"""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.cloud import settings_for, simulated_cloud, static_env, targets_for
from terway_exporter.collectors.registry import all_collectors
from terway_exporter.hub import SnapshotHub
from terway_exporter.render import Renderer
from terway_exporter.sources.cloud import parse
from terway_exporter.sources.cloud.ids import well_formed
from terway_exporter.sources.cloud.source import CloudSource
from terway_exporter.sources.kube.source import KubeSource
from terway_simulator.world import build_world
from test_kube_source import fast_settings, scenario

LONE_SURROGATE = json.loads('"ecs.g7\\ud800x"')  # what json.loads makes of an unpaired \ud800 escape


async def test_absurd_counts_are_skipped_and_lone_surrogates_render(cluster, caplog):
    made = await cluster(scenario(), sim_args={"auto_refresh_max_nodes": 0})
    store = made.simulator.store
    daemon = next(p for p in store.items("pods") if p["metadata"].get("labels", {}).get("app") == "terway-eniip"
                  and p["spec"].get("nodeName") == "node-a")
    key = f"{daemon['metadata']['namespace']}/{daemon['metadata']['name']}"
    absurd = json.loads(json.dumps(daemon))
    absurd["status"]["containerStatuses"][0]["restartCount"] = 1e308
    store.replace("pods", [absurd], scope={key})
    node = json.loads(json.dumps(store.get("nodes", "node-b")))
    node["metadata"]["labels"]["node.kubernetes.io/instance-type"] = LONE_SURROGATE
    store.replace("nodes", [node], scope={"node-b"})

    hub = SnapshotHub()
    caplog.set_level(logging.WARNING)
    hub.publish_kube(await KubeSource(hub, fast_settings(made.kubeconfig)).sync_once())
    assert key not in hub.kube.daemon_pods, "a pod with an absurd restart count is malformed"
    assert any("restartCount" in r.getMessage() and "not a count" in r.getMessage() for r in caplog.records)
    assert hub.kube.nodes["node-b"].instance_type == "ecs.g7\ufffdx"

    renderer = Renderer(all_collectors())
    text = renderer.render(hub.state(), 1).text.decode("utf-8")
    assert renderer.failures == {}, "every collector renders"
    assert "1e+308" not in text and "1e308" not in text
    families = {f.name for f in text_string_to_metric_families(text)}
    assert "terway_node_info" in families or "terway_daemon_pods" in families


@pytest.mark.parametrize("item, field", [
    ({"VSwitchId": "vsw-a", "AvailableIpAddressCount": -3}, "available_ips"),
    ({"VSwitchId": "vsw-a", "AvailableIpAddressCount": "1e308"}, "available_ips"),
    ({"VSwitchId": "vsw-a", "AvailableIpAddressCount": "NaN"}, "available_ips"),
])
def test_a_vswitch_with_an_absurd_free_ip_count_keeps_the_vswitch_without_the_count(item, field, caplog):
    caplog.set_level(logging.WARNING)
    vswitch = parse.parse_vswitch(item)
    assert vswitch.vswitch_id == "vsw-a" and vswitch.available_ips is None
    assert "not a count" in caplog.text or "not a number" in caplog.text


@pytest.mark.parametrize("body", [
    {"Quota": {"TotalQuota": -1, "TotalUsage": 3}},
    {"Quota": {"TotalQuota": 1000, "TotalUsage": -5}},
    {"Quota": {"TotalQuota": 1e308}},
])
def test_an_absurd_quota_is_rejected(body):
    with pytest.raises(ValueError, match="not a count"):
        parse.product_quota(body)


def test_an_instance_type_with_a_negative_eni_count_is_malformed():
    with pytest.raises(ValueError, match="EniQuantity"):
        parse.parse_instance_type({"InstanceTypeId": "ecs.g7.large", "EniQuantity": -4})


def test_cloud_text_with_a_lone_surrogate_becomes_valid_utf8():
    eni = parse.parse_eni({"NetworkInterfaceId": "eni-1", "Status": "Available", "ZoneId": LONE_SURROGATE})
    eni.zone_id.encode("utf-8")  # raises if the surrogate survived


async def test_an_id_that_cannot_be_one_is_never_sent_and_reads_as_missing(caplog):
    world = build_world({"name": "ids", "vswitches": [{"id": "vsw-good000000000000001", "zone": "cn-hangzhou-h",
                                                       "cidr": "192.168.0.0/20"}],
                         "security_groups": [{"id": "sg-good000000000000001"}], "nodes": []})
    huge = "vsw-" + "x" * 70_000
    bad_sg = "sg-" + "Y" * 20 + ";DROP"
    targets = targets_for(world)
    targets = type(targets)(region_id=targets.region_id, vswitch_ids=targets.vswitch_ids | {huge},
                            security_group_ids=targets.security_group_ids | {bad_sg},
                            instance_types=frozenset({"ecs.g7.large", "not an instance type"}))
    caplog.set_level(logging.WARNING)
    async with simulated_cloud(world) as sim:
        hub = SnapshotHub()
        source = CloudSource(hub, settings_for(world, sim.url, targets), env=static_env(world))
        try:
            await source.poll_once()
        finally:
            source.close()
        sent = await sim.requests()
    assert hub.sources["cloud_vswitches"].up and hub.sources["cloud_security_groups"].up
    assert set(hub.cloud.vswitches) == {"vsw-good000000000000001"}
    assert huge in hub.cloud.missing_vswitches and bad_sg in hub.cloud.missing_security_groups
    everything_sent = json.dumps(sent)
    assert "x" * 100 not in everything_sent and "DROP" not in everything_sent
    assert "not an instance type" not in everything_sent
    # The targets the checks judge are the ones polled: the malformed instance type is not among them.
    assert hub.targets.instance_types == {"ecs.g7.large"} and huge in hub.targets.vswitch_ids
    warnings = [r.getMessage() for r in caplog.records if "cannot be an ID" in r.getMessage()]
    assert len(warnings) == 3 and all(len(w) < 300 for w in warnings)


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("vswitch", "vsw-bp1s5fnvk4gn2tws03abcd", True),   # the shape of the API reference's example
    ("vswitch", "vsw-bp1S5FNvk4gn2tws03abcd", True),   # case is not documented as a rule: let it through
    ("vswitch", "vsw-bp1 s5fn", False),
    ("vswitch", "vsw-" + "a" * 65, False),
    ("security_group", "sg-bp67acfmxazb4ph", True),
    ("security_group", "sg-bp67acfmx/../x", False),
    ("vpc", "vpc-bp15zckdt37pq72zv", True),
    ("instance_type", "ecs.g7.large", True),
    ("instance_type", "g7.large", False),
])
def test_an_id_is_refused_only_when_it_cannot_be_one(kind, value, expected):
    assert well_formed(kind, value) is expected
