"""The cloud source through the real SDK over HTTP against the simulated cloud."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import shutil
import subprocess
from collections import Counter
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.cloud import render, settings_for, simulated_cloud, static_env, targets_for
from terway_exporter.checks.config import run_checks
from terway_exporter.collectors import eni, vswitch
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.model.cloud import CloudTargets
from terway_exporter.model.kube import KubeSnapshot
from terway_exporter.model.state import ClusterState
from terway_exporter.sources.cloud.source import STATUS_NAMES, CloudSource
from terway_exporter.terway.enis import TERWAY_CREATORS
from terway_simulator.cloud_api import cloud_state
from terway_simulator.cloud_faults import FaultRule
from terway_simulator.world import World, build_world, load_world, read_scenario

CLOUD_COLLECTORS = (*vswitch.COLLECTORS, *eni.COLLECTORS)


def healthy(**changes) -> World:
    data = copy.deepcopy(read_scenario("healthy"))
    data.update(changes)
    return build_world(data)


def source_for(world: World, url: str, targets: CloudTargets | None = None, **settings) -> CloudSource:
    return CloudSource(SnapshotHub(), settings_for(world, url, targets_for(world) if targets is None else targets,
                                                   **settings), env=static_env(world))


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def expected_census(world: World) -> Counter:
    def creator(value: str) -> str:
        return value if value in TERWAY_CREATORS else "other"
    enis = [world.primary_eni(n) for n in world.nodes.values()] + world.all_enis()
    return Counter((e.status, e.type, creator(e.creator)) for e in enis)


def requests_of(calls: dict, action: str, code: str | None = None) -> int:
    entry = calls["actions"].get(action, {"total": 0, "codes": {}})
    return entry["total"] if code is None else entry["codes"].get(code, 0)


# --------------------------------------------------------------------------- values


async def test_every_cloud_family_matches_the_scenario():
    world = healthy(stray_enis=[
        {"count": 2, "status": "Available", "creator": "terway", "age_seconds": 7200},
        {"count": 1, "status": "Available", "creator": "terway", "age_seconds": 60},  # within the grace period
        {"count": 3, "status": "Available", "creator": "terway-controller", "age_seconds": 3600},
        {"count": 4, "status": "Available", "creator": "someone-else", "age_seconds": 86400},
    ])
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            assert await source.census_once()
        finally:
            source.close()
    state = replace(source.sink.state(), kube=KubeSnapshot(pod_enis={}))  # a cluster without PodENIs
    text = render(state, CLOUD_COLLECTORS)
    got = values(text)
    for vsw in world.vswitches.values():
        key = (("vswitch_id", vsw.vswitch_id),)
        assert got[("terway_vswitch_available_ip_addresses", key)] == world.available_ips(vsw)
        assert got[("terway_vswitch_ip_addresses", key)] == 4092  # a /20 less the 4 reserved
        info = (("cidr_block", vsw.cidr_block), ("name", vsw.name), ("vpc_id", world.vpc_id),
                ("vswitch_id", vsw.vswitch_id), ("zone_id", vsw.zone_id))
        assert got[("terway_vswitch_info", info)] == 1
    assert got[("terway_eni_quota", ())] == world.eni_quota
    assert got[("terway_eni_quota_usage", (("source", "quota_center"),))] == world.quota_usage()
    census = {(dict(k)["status"], dict(k)["type"], dict(k)["creator"]): v
              for (name, k), v in got.items() if name == "terway_enis"}
    assert census == expected_census(world)
    assert got[("terway_enis_leaked", (("creator", "terway"),))] == 2
    assert got[("terway_enis_leaked", (("creator", "terway-controller"),))] == 3
    for it in world.instance_types.values():
        assert got[("terway_instance_type_eni_limit", (("instance_type", it.instance_type),))] == it.eni_quantity
        assert got[("terway_instance_type_ips_per_eni", (("instance_type", it.instance_type),))] == it.ips_per_eni
    for sg in world.security_groups:
        assert got[("terway_security_group_exists", (("security_group_id", sg),))] == 1
    assert state.cloud.vpc_id == world.vpc_id  # derived from the vSwitches: no VPC was configured
    assert all(s.up for s in state.sources.values())
    promtool = shutil.which("promtool")
    assert promtool
    run = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert run.returncode == 0, run.stderr.decode()


async def test_missing_vswitches_and_security_groups_are_reported():
    world = healthy()
    targets = CloudTargets(region_id=world.region_id, vswitch_ids=frozenset({*world.vswitches, "vsw-deleted"}),
                           security_group_ids=frozenset({*world.security_groups, "sg-deleted"}))
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, targets)
        try:
            assert await source.poll_once()
        finally:
            source.close()
    assert source.sink.cloud.missing_vswitches == {"vsw-deleted"}
    assert set(source.sink.cloud.vswitches) == set(world.vswitches)
    got = values(render(source.sink.state(), CLOUD_COLLECTORS))
    assert got[("terway_security_group_exists", (("security_group_id", "sg-deleted"),))] == 0


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize("strays", [492, 493, 992, 993])  # the census sees 8 more ENIs: 500, 501, 1000, 1001
async def test_eni_pages_at_every_boundary(strays):
    world = healthy(stray_enis=[{"count": strays, "status": "Available", "creator": "terway", "age_seconds": 7200}])
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            leak_calls = requests_of(await sim.calls(), "DescribeNetworkInterfaces")
            assert await source.census_once()
            census_calls = requests_of(await sim.calls(), "DescribeNetworkInterfaces") - leak_calls
        finally:
            source.close()
    total = strays + 8
    assert leak_calls == math.ceil(strays / 500)
    assert census_calls == math.ceil(total / 500)
    assert sum(source.sink.cloud.census.counts.values()) == total
    assert len(source.sink.cloud.detached_enis) == strays
    assert {e.creator for e in source.sink.cloud.detached_enis} == {"terway"}


def many_vswitches(n: int) -> list[dict]:
    return [{"id": f"vsw-many{i:04d}", "zone": f"cn-hangzhou-{'hij'[i % 3]}", "cidr": f"10.{i // 250}.{i % 250}.0/24"}
            for i in range(n)]


async def poll_calls(world: World, action: str, targets: CloudTargets | None = None,
                     **settings) -> tuple[CloudSource, int]:
    """One successful poll; returns the source and the simulator's count of `action` requests."""
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, targets, **settings)
        try:
            assert await source.poll_once()
            calls = requests_of(await sim.calls(), action)
        finally:
            source.close()
    return source, calls


def vswitch_requests(seen: list[dict]) -> list[dict]:
    return [r["params"] for r in seen if r["action"] == "DescribeVSwitches"]


@pytest.mark.parametrize(("count", "calls"), [(50, 1), (51, 2), (101, 3), (120, 3)])
async def test_target_vswitches_are_listed_by_vpc_fifty_a_page(count, calls):
    world = healthy(vswitches=many_vswitches(count), nodes=[])
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, vpc_id=world.vpc_id)
        try:
            assert await source.poll_once()
            sent = vswitch_requests(await sim.requests())
        finally:
            source.close()
    # One listing of the VPC, page by page; no VSwitchId at all, let alone a comma list.
    assert sent == [{"RegionId": world.region_id, "VpcId": world.vpc_id, "PageSize": "50", "PageNumber": str(n)}
                    for n in range(1, calls + 1)]
    assert set(source.sink.cloud.vswitches) == set(world.vswitches)
    assert source.sink.cloud.missing_vswitches == frozenset()


async def test_unknown_vpc_is_found_through_one_vswitch_then_listed():
    world = healthy(vswitches=many_vswitches(60), nodes=[])
    first_id = min(world.vswitches)
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)  # no --vpc-id: the VPC comes from a vSwitch
        try:
            assert await source.poll_once()
            first = vswitch_requests(await sim.requests())
            await sim.reset()
            assert await source.poll_once()
            second = vswitch_requests(await sim.requests())
        finally:
            source.close()
    assert first[0] == {"RegionId": world.region_id, "VSwitchId": first_id}  # one ID, as Terway asks
    assert [r.get("PageNumber") for r in first[1:]] == ["1", "2"]
    assert all(r["VpcId"] == world.vpc_id for r in first[1:])
    assert [r.get("PageNumber") for r in second] == ["1", "2"]  # the VPC is known now
    assert source.sink.cloud.vpc_id == world.vpc_id and set(source.sink.cloud.vswitches) == set(world.vswitches)


def two_vpc_world() -> World:
    vswitches = [*many_vswitches(3), {"id": "vsw-othervpc0001", "zone": "cn-hangzhou-h", "cidr": "172.20.0.0/24",
                                      "vpc_id": "vpc-another0000000001"}]
    return healthy(vswitches=vswitches, nodes=[])


async def test_vswitch_in_another_vpc_is_asked_by_id_and_cached():
    world = two_vpc_world()
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, vpc_id=world.vpc_id)
        try:
            assert await source.poll_once()
            first = vswitch_requests(await sim.requests())
            await sim.reset()
            assert await source.poll_once()
            second = vswitch_requests(await sim.requests())
        finally:
            source.close()
    assert first == [{"RegionId": world.region_id, "VpcId": world.vpc_id, "PageSize": "50", "PageNumber": "1"},
                     {"RegionId": world.region_id, "VSwitchId": "vsw-othervpc0001"}]
    assert second == first[:1]  # the single-ID answer is cached (vswitch_lookup_ttl)
    cloud = source.sink.cloud
    assert set(cloud.vswitches) == set(world.vswitches) and cloud.missing_vswitches == frozenset()
    assert cloud.vswitches["vsw-othervpc0001"].vpc_id == "vpc-another0000000001"
    assert cloud.vpc_id == world.vpc_id


async def test_single_id_answers_are_asked_again_once_their_ttl_is_over():
    world = two_vpc_world()
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, vpc_id=world.vpc_id, vswitch_lookup_ttl=0.0)
        try:
            for _ in range(3):
                assert await source.poll_once()
            sent = vswitch_requests(await sim.requests())
        finally:
            source.close()
    assert sum(1 for r in sent if "VSwitchId" in r) == 3  # a TTL of 0: every poll asks again
    assert sum(1 for r in sent if "VpcId" in r) == 3


async def test_deleted_vswitch_shows_as_missing():
    world = healthy()
    gone = sorted(world.vswitches)[0]
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, vpc_id=world.vpc_id)
        try:
            assert await source.poll_once()
            del world.vswitches[gone]  # deleted while the exporter runs
            await sim.reset()
            assert await source.poll_once()
            sent = vswitch_requests(await sim.requests())
        finally:
            source.close()
    assert sent[-1] == {"RegionId": world.region_id, "VSwitchId": gone}  # asked by its ID: an empty answer
    cloud = source.sink.cloud
    assert cloud.missing_vswitches == {gone} and set(cloud.vswitches) == set(world.vswitches)
    assert source.sink.sources["cloud_vswitches"].up


def with_eni_config(state: ClusterState, vswitch_ids: list[str]) -> ClusterState:
    """The hub's state plus an eni-config naming `vswitch_ids` (what the config checks read)."""
    conf = {"version": "1", "max_pool_size": 5, "min_pool_size": 0, "service_cidr": "172.16.0.0/16",
            "security_groups": sorted(state.targets.security_group_ids), "vswitches": {"z": vswitch_ids}}
    return ClusterState(now=state.now, cloud=state.cloud, sources=state.sources, targets=state.targets,
                        kube=KubeSnapshot(eni_config={"eni_conf": json.dumps(conf)}))


def cluster_naming(vswitch_ids: list[str]) -> KubeSnapshot:
    """A cluster whose eni-config names `vswitch_ids`: the cloud source derives its targets from it."""
    conf = {"version": "1", "vswitches": {"z": vswitch_ids}}
    return KubeSnapshot(eni_config={"eni_conf": json.dumps(conf)})


def not_found(state: ClusterState) -> set[str]:
    return {p.object for p in run_checks(state) if p.check == "vswitch_not_found"}


async def test_every_vswitch_missing_at_once_is_a_source_failure():
    world = healthy()
    configured = sorted(world.vswitches)
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            good = source.sink.cloud
            # The same vSwitches, but the exporter now reaches a region where none of them exists.
            world.region_id = "cn-beijing"
            assert not await source.poll_once()
            state = source.sink.state()
            world.region_id = "cn-hangzhou"
            assert await source.poll_once()  # nothing "not found" was cached: back at once
        finally:
            source.close()
    status = state.sources["cloud_vswitches"]
    assert not status.up
    assert f"none of the {len(configured)} configured vSwitches exists" in status.error
    assert state.cloud.vswitches == good.vswitches and state.cloud.missing_vswitches == frozenset()
    got = values(render(state, (*CLOUD_COLLECTORS, *SELF_COLLECTORS)))
    assert got[("terway_exporter_source_up", (("source", "cloud_vswitches"),))] == 0
    for vsw in world.vswitches.values():  # last good values kept
        key = (("vswitch_id", vsw.vswitch_id),)
        assert got[("terway_vswitch_available_ip_addresses", key)] == world.available_ips(vsw)
    assert not_found(with_eni_config(state, configured)) == set()  # not a config problem per vSwitch
    assert source.sink.sources["cloud_vswitches"].up


async def test_every_vswitch_missing_from_the_first_poll_is_a_source_failure():
    world = healthy()
    targets = CloudTargets(region_id=world.region_id, vswitch_ids=frozenset({"vsw-typo1", "vsw-typo2"}))
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, targets)
        try:
            assert not await source.poll_once()
            sent = vswitch_requests(await sim.requests())
        finally:
            source.close()
    state = source.sink.state()
    assert "none of the 2 configured vSwitches exists" in state.sources["cloud_vswitches"].error
    assert sent == [{"RegionId": world.region_id, "VSwitchId": "vsw-typo1"},
                    {"RegionId": world.region_id, "VSwitchId": "vsw-typo2"}]
    assert state.cloud.vswitches == {} and state.cloud.missing_vswitches == frozenset()
    assert not_found(with_eni_config(state, ["vsw-typo1", "vsw-typo2"])) == set()


async def test_new_targets_all_missing_are_not_judged_while_the_source_is_down():
    world = healthy()
    kept = sorted(world.vswitches)[0]
    async with simulated_cloud(world) as sim:
        cluster = {"vswitches": sorted(world.vswitches)}
        source = CloudSource(SnapshotHub(), settings_for(world, sim.url, CloudTargets(region_id=world.region_id)),
                             cluster=lambda: cluster_naming(cluster["vswitches"]), env=static_env(world))
        try:
            assert await source.poll_once()
            # eni-config is changed to name two vSwitches this region does not have.
            cluster["vswitches"] = ["vsw-new1", "vsw-new2"]
            assert not await source.poll_once()
            down = with_eni_config(source.sink.state(), ["vsw-new1", "vsw-new2"])
            cluster["vswitches"] = ["vsw-new1", kept]
            assert await source.poll_once()
            partly = with_eni_config(source.sink.state(), ["vsw-new1", kept])
        finally:
            source.close()
    assert not down.sources["cloud_vswitches"].up and not_found(down) == set()
    # One missing among found ones is a configuration problem, reported as such.
    assert partly.sources["cloud_vswitches"].up and not_found(partly) == {"vsw-new1"}
    assert partly.cloud.missing_vswitches == {"vsw-new1"}


@pytest.mark.parametrize(("count", "calls"), [(50, 1), (51, 2), (100, 2), (101, 3)])
async def test_vpc_listing_without_targets_pages_by_fifty(count, calls):
    world = healthy(vswitches=many_vswitches(count), nodes=[])
    source, made = await poll_calls(world, "DescribeVSwitches", CloudTargets(), vpc_id=world.vpc_id)
    assert made == calls
    assert set(source.sink.cloud.vswitches) == set(world.vswitches)


@pytest.mark.parametrize(("count", "calls"), [(100, 1), (101, 2)])
async def test_security_groups_are_chunked_by_a_hundred(count, calls):
    world = healthy(security_groups=[{"id": f"sg-many{i:04d}"} for i in range(count)])
    source, made = await poll_calls(world, "DescribeSecurityGroups")
    assert made == calls
    assert set(source.sink.cloud.security_groups) == set(world.security_groups)


@pytest.mark.parametrize(("count", "calls"), [(10, 1), (11, 2)])
async def test_instance_types_are_batched_by_ten_and_cached(count, calls):
    types = [{"type": f"ecs.sim{i}.large", "eni_quantity": 3, "ips_per_eni": 6 + i} for i in range(count)]
    world = healthy(instance_types=types, nodes=[])
    targets = CloudTargets(region_id=world.region_id, instance_types=frozenset(t["type"] for t in types)
                           | {"ecs.unknown.large"})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, targets, vpc_id=world.vpc_id)
        try:
            assert await source.poll_once()
            assert requests_of(await sim.calls(), "DescribeInstanceTypes") == calls + (count % 10 == 0)
            assert await source.poll_once()  # all cached, the unknown one too
            assert requests_of(await sim.calls(), "DescribeInstanceTypes") == calls + (count % 10 == 0)
        finally:
            source.close()
    limits = source.sink.cloud.instance_types
    assert {k: v.ips_per_eni for k, v in limits.items()} == {t["type"]: t["ips_per_eni"] for t in types}


async def test_instance_types_are_asked_again_after_their_ttl():
    world = healthy()
    async with simulated_cloud(world) as sim:
        # A TTL of 0: the next poll is past it without waiting (the default TTL caches: the test above).
        source = source_for(world, sim.url, instance_type_ttl=0.0)
        try:
            assert await source.poll_once()
            assert requests_of(await sim.calls(), "DescribeInstanceTypes") == 1
            assert await source.poll_once()
            assert requests_of(await sim.calls(), "DescribeInstanceTypes") == 2
        finally:
            source.close()


# --------------------------------------------------------------------------- scale


async def calls_of_two_polls(nodes: int) -> tuple[dict[str, int], dict[str, int]]:
    """Requests per action of the first poll and of the next (regular) one, against the scale world."""
    world = load_world("scale", overrides={"nodes": nodes})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            first = await sim.calls()
            await sim.reset()
            assert await source.poll_once()
            regular = await sim.calls()
        finally:
            source.close()
    return tuple({action: entry["total"] for action, entry in calls["actions"].items()} for calls in (first, regular))


@pytest.mark.slow  # the scale world at several sizes
async def test_calls_per_poll_do_not_grow_with_nodes():
    small, large = await calls_of_two_polls(10), await calls_of_two_polls(5000)
    assert small == large
    first, regular = small
    # 60 vSwitches in one VPC and no --vpc-id: the first poll asks one vSwitch by ID to learn the VPC, then
    # lists the VPC, 50 a page (2 pages); the next polls list only. (Until the VSwitchId comma lists were
    # dropped, every poll asked 3 x 20 IDs: 3 calls.)
    assert first["DescribeVSwitches"] == 3 and regular["DescribeVSwitches"] == 2
    # Plus one call each for leaked ENIs, the ENI quota and security groups; instance types only on the
    # first poll (cached for instance_type_ttl).
    assert first == {"DescribeVSwitches": 3, "DescribeNetworkInterfaces": 1, "GetProductQuota": 1,
                     "DescribeInstanceTypes": 1, "DescribeSecurityGroups": 1}
    assert sum(regular.values()) == 5 and "DescribeInstanceTypes" not in regular


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("code", ["Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable",
                                  "InternalError"])
async def test_transient_errors_are_retried_and_counted(code):
    world = healthy(cloud={"faults": {"DescribeVSwitches": {"code": code, "first_calls": 2}}})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, vpc_id=world.vpc_id)  # one DescribeVSwitches: the VPC's listing
        try:
            assert await source.poll_once()
            assert requests_of(await sim.calls(), "DescribeVSwitches", code) == 2
        finally:
            source.close()
    requests = source.sink.counters.snapshot().cloud_requests
    assert requests[("DescribeVSwitches", code)] == 2
    assert requests[("DescribeVSwitches", "Success")] == 1
    assert (source._limiter.rate < source.settings.api_rate) == code.startswith("Throttling")


async def test_forbidden_is_not_retried_and_logs_one_line(caplog):
    world = healthy(cloud={"faults": {"DescribeSecurityGroups": {"code": "Forbidden.RAM"}}})
    caplog.set_level(logging.DEBUG)
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert not await source.poll_once()
            assert requests_of(await sim.calls(), "DescribeSecurityGroups") == 1
        finally:
            source.close()
    status = source.sink.sources["cloud_security_groups"]
    assert not status.up and "Forbidden.RAM" in status.error and "RequestId" in status.error
    lines = [r for r in caplog.records if "DescribeSecurityGroups" in r.getMessage()]
    assert len(lines) == 1
    assert "code=Forbidden.RAM" in lines[0].getMessage() and "request_id=" in lines[0].getMessage()
    assert all(source.sink.sources[name].up for name in STATUS_NAMES if name not in
               ("cloud_security_groups", "cloud_eni_census"))


async def test_quota_falls_back_to_account_attributes_and_census_usage():
    world = healthy(cloud={"faults": {"GetProductQuota": {"code": "Forbidden.RAM"}}})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            assert source.sink.cloud.eni_quota == world.eni_quota
            assert source.sink.cloud.eni_quota_usage is None  # no census yet
            assert source.sink.cloud.eni_quota_usage_source is None
            assert await source.census_once()
            assert source.sink.cloud.eni_quota_usage_source == "vpc_census"
            assert await source.poll_once()  # Quota Center still fails: the census keeps standing in, labelled
        finally:
            source.close()
    secondaries = sum(1 for e in world.all_enis() if e.type != "Primary")
    assert source.sink.cloud.eni_quota_usage == secondaries
    assert source.sink.cloud.eni_quota_usage_source == "vpc_census"
    got = values(render(source.sink.state(), CLOUD_COLLECTORS))
    assert got[("terway_eni_quota_usage", (("source", "vpc_census"),))] == secondaries
    assert not [k for k in got if k[0] == "terway_eni_quota_usage" and k[1] != (("source", "vpc_census"),)]
    assert source.sink.counters.snapshot().cloud_requests[("DescribeAccountAttributes", "Success")] == 2


async def test_quota_down_when_both_apis_fail():
    world = healthy(cloud={"faults": {"GetProductQuota": {"code": "Forbidden.RAM"},
                                      "DescribeAccountAttributes": {"code": "Forbidden.RAM"}}})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert not await source.poll_once()
        finally:
            source.close()
    status = source.sink.sources["cloud_eni_quota"]
    assert not status.up and "GetProductQuota" in status.error and "DescribeAccountAttributes" in status.error
    assert source.sink.cloud.eni_quota is None


async def test_slow_answers_time_out_and_are_retried():
    world = healthy(cloud={"faults": {"DescribeSecurityGroups": {"delay_seconds": 1.5}}})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, request_timeout=0.3, max_attempts=2)
        try:
            assert not await source.poll_once()
        finally:
            source.close()
    assert source.sink.counters.snapshot().cloud_requests[("DescribeSecurityGroups", "ConnectionError")] == 2
    assert "ConnectionError" in source.sink.sources["cloud_security_groups"].error


async def test_slow_but_in_time_answers_succeed_and_are_timed():
    world = healthy(cloud={"faults": {"DescribeSecurityGroups": {"delay_seconds": 0.3}}})
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
        finally:
            source.close()
    histogram = source.sink.counters.snapshot().cloud_request_durations["DescribeSecurityGroups"]
    assert histogram.sum >= 0.3


async def test_connection_refused_is_a_connection_error():
    world = healthy()
    async with simulated_cloud(world) as sim:
        closed = sim.url
    source = source_for(world, closed, max_attempts=3)
    try:
        assert not await source.poll_once()
    finally:
        source.close()
    assert source.sink.counters.snapshot().cloud_requests[("DescribeVSwitches", "ConnectionError")] == 3


async def test_last_good_values_survive_a_failing_api():
    world = healthy()
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once() and await source.census_once()
            good = source.sink.cloud
            cloud_state(sim.app).faults.rules = {"*": FaultRule(code="Forbidden.RAM")}
            assert not await source.poll_once()
            assert not await source.census_once()
        finally:
            source.close()
    assert source.sink.cloud == good
    state = source.sink.state()
    # Instance types came from the cache, without a call: that step stays up.
    assert {n for n, s in state.sources.items() if s.up} == {"cloud_instance_types"}
    assert all(s.last_success is not None for s in state.sources.values())
    got = values(render(state, (*CLOUD_COLLECTORS, *SELF_COLLECTORS)))
    for name in set(STATUS_NAMES) - {"cloud_instance_types"}:
        assert got[("terway_exporter_source_up", (("source", name),))] == 0
    assert got[("terway_eni_quota", ())] == world.eni_quota  # still the last good value


async def test_a_poll_that_finds_the_same_publishes_the_same_objects():
    # The renderer and the per-node views compare snapshot parts by identity: equal answers must keep the
    # objects (each poll's new but equal instance-type limits once made all 5,000 node views stale).
    world = healthy()
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            assert await source.poll_once()
            first = source.sink.cloud
            assert first.instance_types and first.vswitches
            assert await source.poll_once()
            assert source.sink.cloud is first  # nothing differed: nothing new published
            vswitch = next(iter(world.vswitches.values()))
            vswitch.available_ips = world.available_ips(vswitch) - 1  # a pod took an IP
            assert await source.poll_once()
            second = source.sink.cloud
        finally:
            source.close()
    assert second is not first and second.vswitches != first.vswitches
    assert second.instance_types is first.instance_types


async def test_no_region_reports_every_poll_step_down():
    world = healthy()
    hub = SnapshotHub()
    source = CloudSource(hub, settings_for(world, "http://127.0.0.1:9", region_id=None), env=static_env(world))
    try:
        assert not await source.poll_once()
    finally:
        source.close()
    assert "region unknown" in hub.sources["cloud_vswitches"].error
    assert hub.counters.cloud_requests_total() == 0


async def test_readiness_does_not_wait_for_the_census():
    """/readyz follows the regular poll; the census (every ENI of the VPC) may take minutes at scale."""
    world = healthy()
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url)
        try:
            hub = source.sink
            assert not hub.ready(), "registered up front: not ready before the first poll"
            assert await source.poll_once()
            assert not hub.sources["cloud_eni_census"].attempted and hub.ready()
            assert hub.cloud.census is None  # terway_enis stays absent until the census is done
            assert await source.census_once()
            assert hub.ready() and hub.cloud.census is not None
        finally:
            source.close()


# --------------------------------------------------------------------------- rate


async def poll_forever(source: CloudSource) -> None:
    while True:
        await source.poll_once()


async def test_stays_under_api_rate_while_throttled():
    api_rate = 8.0
    world = load_world("throttled")  # 4 of 5 calls Throttling.User, and at most 5 requests/s
    async with simulated_cloud(world) as sim:
        # --vpc-id given: the poll starts with the VPC's listing (one DescribeVSwitches), not a lookup first.
        source = source_for(world, sim.url, api_rate=api_rate, retry_base_delay=0.05, retry_max_delay=0.2,
                            vpc_id=world.vpc_id)
        try:
            # Throttled, the limiter slows polls down a lot: watch three seconds of them.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poll_forever(source), timeout=3.0)
            seen = await sim.requests()
        finally:
            source.close()
    times = sorted(r["time"] for r in seen)
    assert len(times) >= 8
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= api_rate + 1  # a burst of one on top of the rate
    assert any(r["code"] == "Throttling.User" for r in seen)
    assert source._limiter.rate < api_rate  # backed off after throttling
    assert sum(source.sink.counters.snapshot().cloud_rate_limit_wait.values()) > 0


# --------------------------------------------------------------------------- scenarios


async def poll_scenario(name: str, extra_vswitches: frozenset[str] = frozenset()) -> CloudSource:
    world = load_world(name)
    targets = targets_for(world)
    targets = CloudTargets(region_id=targets.region_id, vswitch_ids=targets.vswitch_ids | extra_vswitches,
                           security_group_ids=targets.security_group_ids, instance_types=targets.instance_types)
    async with simulated_cloud(world) as sim:
        source = source_for(world, sim.url, targets)
        try:
            await source.poll_once()
            await source.census_once()
        finally:
            source.close()
    return source


async def test_scenario_leaked_enis():
    source = await poll_scenario("leaked-enis")
    # Every Available ENI with a Terway creator tag: 3 + 2 young pool ENIs, 2 lost per-pod ENIs and the
    # fixed-IP pod's (which only the PodENIs tell apart: tests/test_kube_podenis.py).
    assert Counter(e.creator for e in source.sink.cloud.detached_enis) == {"terway": 5, "terway-controller": 3}


async def test_scenario_eni_quota_near_limit():
    cloud = (await poll_scenario("eni-quota-near-limit")).sink.cloud
    assert (cloud.eni_quota, cloud.eni_quota_usage, cloud.eni_quota_usage_source) == (100, 97, "quota_center")


async def test_scenario_vswitch_exhausted():
    cloud = (await poll_scenario("vswitch-exhausted")).sink.cloud
    assert cloud.vswitches["vsw-bp1exh0h0000000000001"].available_ips == 0
    assert cloud.vswitches["vsw-bp1exh0i0000000000001"].available_ips == 7


async def test_scenario_missing_vswitch():
    deleted = "vsw-bp1mis0jdeleted00000001"
    cloud = (await poll_scenario("missing-vswitch", frozenset({deleted}))).sink.cloud
    assert cloud.missing_vswitches == {deleted}


async def test_scenario_ram_forbidden():
    source = await poll_scenario("ram-forbidden")
    up = {name for name, status in source.sink.sources.items() if status.up}
    assert up == {"cloud_vswitches", "cloud_eni_quota", "cloud_instance_types", "cloud_security_groups"}
    assert "Forbidden.RAM" in source.sink.sources["cloud_eni_leaks"].error
    assert source.sink.cloud.eni_quota == 1000  # from DescribeAccountAttributes


async def test_scenario_bad_credentials():
    source = await poll_scenario("bad-credentials")
    assert not any(status.up for status in source.sink.sources.values())
    requests = source.sink.counters.snapshot().cloud_requests
    assert requests[("DescribeVSwitches", "InvalidAccessKeyId.NotFound")] == 1  # not retried
    assert "InvalidAccessKeyId.NotFound" in source.sink.sources["cloud_vswitches"].error
