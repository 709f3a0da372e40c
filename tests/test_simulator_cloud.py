"""The simulated Alibaba Cloud APIs, driven by the real legacy SDK (and alibabacloud-credentials) over HTTP.

Every test starts the simulator for a small world on 127.0.0.1 and calls it with AcsClient and the
product request classes, exactly as the exporter does; SDK calls run in a thread because the SDK
blocks. Paging boundaries, faults, signature and credential errors are asserted as ServerException
code, HTTP status and request id, the way the exporter sees them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkecs.request.v20140526.DescribeAccountAttributesRequest import DescribeAccountAttributesRequest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeInstanceTypesRequest import DescribeInstanceTypesRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkquotas.request.v20200510.GetProductQuotaRequest import GetProductQuotaRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from support.clock import ManualClock
from terway_simulator.cloud_api import make_cloud_app, start_cloud_simulator
from terway_simulator.cloud_http import start_app
from terway_simulator.credentials_api import start_credentials_simulator
from terway_simulator.world import ScenarioError, World, build_world, load_world, scenario_names

REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
NO_PROXY = {"http": None, "https": None}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The legacy SDK lets ALIYUN_ACCESS_KEY_* override any credential, and proxies capture loopback.
    for name in ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "HTTP_PROXY", "HTTPS_PROXY",
                 "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def small_world(**extra: Any) -> World:
    """Two zones, two nodes, one security group; `extra` adds or replaces scenario keys."""
    data: dict[str, Any] = {
        "name": "unit", "region": "cn-hangzhou", "vpc_id": "vpc-unit", "cluster_id": "c-unit",
        "vswitches": [
            {"id": "vsw-a", "zone": "cn-hangzhou-h", "cidr": "192.168.0.0/24", "tags": {"env": "test"}},
            {"id": "vsw-b", "zone": "cn-hangzhou-i", "cidr": "192.168.1.0/24", "available": 3},
        ],
        "security_groups": [{"id": "sg-a", "name": "pods"}, {"id": "sg-b", "name": "other"}],
        "instance_types": [{"type": "ecs.g7.xlarge", "eni_quantity": 4, "ips_per_eni": 15, "ipv6_per_eni": 15}],
        "eni_quota": 200,
        "nodes": [
            {"name": "node-a", "zone": "cn-hangzhou-h", "instance_type": "ecs.g7.xlarge", "enis": 2, "pods": 18},
            {"name": "node-b", "zone": "cn-hangzhou-i", "instance_type": "ecs.g7.xlarge", "enis": 1, "pods": 4},
        ],
        "stray_enis": [
            {"count": 2, "vswitch": "vsw-a", "creator": "terway", "age_seconds": 7200},
            {"count": 1, "vswitch": "vsw-b", "creator": "terway-controller", "age_seconds": 600},
            {"count": 1, "vswitch": "vsw-b", "creator": "", "age_seconds": 600},
        ],
    }
    data.update(extra)
    return build_world(data)


class Sim:
    """A running simulator plus an SDK client for its world."""

    def __init__(self, world: World, base_url: str) -> None:
        self.world = world
        self.base_url = base_url
        self.host = base_url.removeprefix("http://")

    def client(self, **kwargs: Any) -> AcsClient:
        kwargs.setdefault("auto_retry", False)
        if "credential" not in kwargs:
            kwargs.setdefault("ak", self.world.access_key_id)
            kwargs.setdefault("secret", self.world.access_key_secret)
        return AcsClient(region_id=self.world.region_id, proxy=NO_PROXY, **kwargs)

    async def call(self, request: Any, client: AcsClient | None = None) -> dict[str, Any]:
        request.set_endpoint(self.host)
        raw = await asyncio.to_thread((client or self.client()).do_action_with_exception, request)
        body = json.loads(raw)
        assert REQUEST_ID.match(body["RequestId"])
        return body

    async def fail(self, request: Any, client: AcsClient | None = None) -> ServerException:
        with pytest.raises(ServerException) as caught:
            await self.call(request, client)
        assert REQUEST_ID.match(caught.value.get_request_id() or "")
        return caught.value

    async def calls(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.base_url}/_sim/cloud/calls") as resp:
            return await resp.json()


@pytest.fixture
async def serve():
    runners: list[Any] = []

    async def start(world: World, clock: ManualClock | None = None) -> Sim:
        """The cloud simulator for `world`; with `clock`, it reads that instead of the wall clock."""
        runner, url = await (start_app(make_cloud_app(world, clock=clock)) if clock else start_cloud_simulator(world))
        runners.append(runner)
        return Sim(world, url)

    yield start
    for runner in runners:
        await runner.cleanup()


def vswitches(**params: Any) -> DescribeVSwitchesRequest:
    req = DescribeVSwitchesRequest()
    for name, value in params.items():
        getattr(req, f"set_{name}")(value)
    return req


def enis(**params: Any) -> DescribeNetworkInterfacesRequest:
    req = DescribeNetworkInterfacesRequest()
    for name, value in params.items():
        getattr(req, f"set_{name}")(value)
    return req


def eni_ids(body: dict[str, Any]) -> list[str]:
    return [e["NetworkInterfaceId"] for e in body["NetworkInterfaceSets"]["NetworkInterfaceSet"]]


def vswitch_world(count: int) -> World:
    return build_world({"name": f"vsw{count}", "vpc_id": "vpc-many", "vswitches": [
        {"id": f"vsw-{i:04d}", "zone": "cn-hangzhou-h", "cidr": f"10.{i // 256}.{i % 256}.0/24"}
        for i in range(count)]})


def stray_world(count: int) -> World:
    return build_world({"name": f"eni{count}", "vswitches": [{"id": "vsw-a", "zone": "z", "cidr": "10.0.0.0/16"}],
                        "stray_enis": [{"count": count, "vswitch": "vsw-a", "status": "Available"}]})


# --------------------------------------------------------------------------- DescribeVSwitches


async def test_describe_vswitches_shape_and_filters(serve) -> None:
    sim = await serve(small_world())
    body = await sim.call(vswitches(PageSize=50))
    assert body["TotalCount"] == 2 and body["PageNumber"] == 1 and body["PageSize"] == 50
    first, second = body["VSwitches"]["VSwitch"]
    # 252 usable addresses minus node-a's primary IP and 18 pod IPs, minus 2 stray ENIs' addresses.
    assert first["AvailableIpAddressCount"] == 252 - 1 - 18 - 2
    assert second["AvailableIpAddressCount"] == 3  # the scenario's own figure
    assert first["Tags"] == {"Tag": [{"Key": "env", "Value": "test"}]}
    assert (first["VpcId"], first["ZoneId"], first["CidrBlock"], first["Status"]) == (
        "vpc-unit", "cn-hangzhou-h", "192.168.0.0/24", "Available")
    only = await sim.call(vswitches(VSwitchId="vsw-b"))
    assert [v["VSwitchId"] for v in only["VSwitches"]["VSwitch"]] == ["vsw-b"]
    assert (await sim.call(vswitches(VSwitchId="vsw-gone")))["VSwitches"]["VSwitch"] == []
    assert (await sim.call(vswitches(ZoneId="cn-hangzhou-i")))["TotalCount"] == 1
    assert (await sim.call(vswitches(VpcId="vpc-other")))["TotalCount"] == 0
    assert (await sim.call(vswitches(VSwitchName="vsw-a")))["TotalCount"] == 1


async def test_describe_vswitches_takes_one_id_not_a_list(serve) -> None:
    # VSwitchId is "The ID of the vSwitch that you want to query": a comma list is one ID that does not exist.
    sim = await serve(small_world())
    for listed in ("vsw-a,vsw-b", "vsw-b,vsw-gone", "vsw-a, vsw-b", "vsw-a,"):
        body = await sim.call(vswitches(VSwitchId=listed))
        assert (body["TotalCount"], body["VSwitches"]["VSwitch"]) == (0, []), listed
    # Other list spellings are not documented parameters at all.
    for name in ("VSwitchIds", "VSwitchId.1"):
        req = vswitches()
        req.add_query_param(name, "vsw-a")
        err = await sim.fail(req)
        assert (err.get_error_code(), err.get_http_status()) == ("InvalidParameter", 400), name
        assert name in err.get_error_msg()


@pytest.mark.parametrize("params, code", [
    ({"PageSize": 51}, "InvalidParameter"),  # "Maximum value: 50"
    ({"PageSize": 100}, "InvalidParameter"),
    ({"PageSize": 0}, "InvalidParameter"),
    ({"PageNumber": 0}, "InvalidParameter"),
    ({"PageSize": "ten"}, "InvalidParameter"),
    ({"MaxResults": 50}, "InvalidParameter"),  # VPC DescribeVSwitches pages by number, not by token
    ({"NextToken": "abc"}, "InvalidParameter"),
    ({"IsDefault": "true"}, "Simulator.UnsupportedParameter"),  # documented, not modelled
    ({"Tag.1.Key": "env"}, "Simulator.UnsupportedParameter"),
    ({"Tag.21.Key": "env"}, "InvalidParameter"),  # "up to 20 tag keys"
])
async def test_describe_vswitches_refuses_undocumented_forms(serve, params: dict, code: str) -> None:
    sim = await serve(small_world())
    req = vswitches()
    for name, value in params.items():
        req.add_query_param(name, value)
    err = await sim.fail(req)
    assert (err.get_error_code(), err.get_http_status()) == (code, 400)
    counted = (await sim.calls())["actions"]["DescribeVSwitches"]
    assert counted["codes"] == {code: 1} and counted["statuses"] == {"400": 1}


async def test_describe_vswitches_needs_a_region_or_a_vpc(serve) -> None:
    sim = await serve(small_world())
    req = CommonRequest(domain=sim.host, version="2016-04-28", action_name="DescribeVSwitches")
    req.set_method("POST")
    req.add_query_param("RegionId", "")  # the SDK adds the client's region unless the request has one
    err = await sim.fail(req)
    assert (err.get_error_code(), err.get_http_status()) == ("MissingParameter", 400)
    req = CommonRequest(domain=sim.host, version="2016-04-28", action_name="DescribeVSwitches")
    req.set_method("POST")
    req.add_query_param("RegionId", "")
    req.add_query_param("VpcId", "vpc-unit")
    assert (await sim.call(req))["TotalCount"] == 2
    other_region = vswitches()
    other_region.add_query_param("RegionId", "cn-beijing")
    assert (await sim.call(other_region))["TotalCount"] == 0  # the world is in cn-hangzhou


async def test_deprecated_ecs_describe_vswitches_documents_fewer_filters(serve) -> None:
    sim = await serve(small_world())
    req = CommonRequest(domain=sim.host, version="2014-05-26", action_name="DescribeVSwitches")
    req.set_method("POST")
    req.add_query_param("VSwitchId", "vsw-a")
    assert (await sim.call(req))["TotalCount"] == 1
    req = CommonRequest(domain=sim.host, version="2014-05-26", action_name="DescribeVSwitches")
    req.set_method("POST")
    req.add_query_param("VSwitchName", "vsw-a")  # a VPC filter the ECS twin does not document
    assert (await sim.fail(req)).get_error_code() == "InvalidParameter"


@pytest.mark.parametrize("count, pages", [(50, [50]), (51, [50, 1]), (100, [50, 50]), (101, [50, 50, 1])])
async def test_describe_vswitches_page_boundaries(serve, count: int, pages: list[int]) -> None:
    sim = await serve(vswitch_world(count))
    seen: list[str] = []
    for number, size in enumerate(pages, start=1):
        body = await sim.call(vswitches(PageSize=50, PageNumber=number))
        assert body["TotalCount"] == count and len(body["VSwitches"]["VSwitch"]) == size
        seen += [v["VSwitchId"] for v in body["VSwitches"]["VSwitch"]]
    after = await sim.call(vswitches(PageSize=50, PageNumber=len(pages) + 1))
    assert after["VSwitches"]["VSwitch"] == []
    assert seen == sorted(sim.world.vswitches)
    by_vpc = await sim.call(vswitches(VpcId="vpc-many", PageSize=50, PageNumber=len(pages)))
    assert by_vpc["TotalCount"] == count and len(by_vpc["VSwitches"]["VSwitch"]) == pages[-1]


# --------------------------------------------------------------------------- DescribeNetworkInterfaces


async def test_describe_network_interfaces_shape(serve) -> None:
    sim = await serve(small_world())
    body = await sim.call(enis(MaxResults=500))
    # 2 primary + 3 secondary ENIs on nodes, 4 strays.
    assert body["TotalCount"] == 9 and body["NextToken"] == ""
    items = {e["NetworkInterfaceId"]: e for e in body["NetworkInterfaceSets"]["NetworkInterfaceSet"]}
    node_a = sim.world.nodes["node-a"]
    primary = items[sim.world.primary_eni(node_a).eni_id]
    assert (primary["Type"], primary["Status"], primary["InstanceId"]) == ("Primary", "InUse", node_a.instance_id)
    assert primary["PrivateIpAddress"] == node_a.primary_ip and primary["Attachment"]["DeviceIndex"] == 0
    secondary = items[node_a.enis[0].eni_id]
    assert secondary["Tags"] == {"Tag": [{"TagKey": "creator", "TagValue": "terway"}]}
    assert len(secondary["PrivateIpSets"]["PrivateIpSet"]) == 15
    assert secondary["PrivateIpSets"]["PrivateIpSet"][0]["Primary"] is True
    assert secondary["SecurityGroupIds"] == {"SecurityGroupId": ["sg-a"]}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", secondary["CreationTime"])
    controller = [e for e in items.values()
                  if {"TagKey": "creator", "TagValue": "terway-controller"} in e["Tags"]["Tag"]]
    assert controller[0]["Tags"]["Tag"][0] == {"TagKey": "ack.aliyun.com", "TagValue": "c-unit"}
    assert controller[0]["InstanceId"] == "" and "Attachment" not in controller[0]


async def test_describe_network_interfaces_filters(serve) -> None:
    sim = await serve(small_world())
    world = sim.world
    assert len(eni_ids(await sim.call(enis(Status="Available", MaxResults=100)))) == 4
    assert len(eni_ids(await sim.call(enis(Type="Primary", MaxResults=100)))) == 2
    assert len(eni_ids(await sim.call(enis(InstanceId=world.nodes["node-a"].instance_id, MaxResults=100)))) == 3
    assert len(eni_ids(await sim.call(enis(VSwitchId="vsw-b", MaxResults=100)))) == 4
    assert len(eni_ids(await sim.call(enis(VpcId="vpc-unit", MaxResults=100)))) == 9
    assert eni_ids(await sim.call(enis(VpcId="vpc-other", MaxResults=100))) == []
    wanted = [world.stray_enis[0].eni_id, "eni-gone"]
    assert eni_ids(await sim.call(enis(NetworkInterfaceIds=wanted))) == wanted[:1]
    tagged = await sim.call(enis(Tags=[{"Key": "creator", "Value": "terway"}], Status="Available", MaxResults=100))
    assert eni_ids(tagged) == [e.eni_id for e in world.stray_enis[:2]]
    by_key = await sim.call(enis(Tags=[{"Key": "ack.aliyun.com"}], MaxResults=100))
    assert eni_ids(by_key) == [world.stray_enis[2].eni_id]
    assert len(eni_ids(await sim.call(enis(SecurityGroupId="sg-a", MaxResults=100)))) == 9
    err = await sim.fail(enis(SecurityGroupId="sg-gone"))
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidSecurityGroupId.NotFound", 404)
    err = await sim.fail(enis(NextToken="not-a-token"))
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidParameter", 400)


@pytest.mark.parametrize("count, pages", [(500, [500]), (501, [500, 1]), (1000, [500, 500]), (1001, [500, 500, 1])])
async def test_describe_network_interfaces_token_pages(serve, count: int, pages: list[int]) -> None:
    sim = await serve(stray_world(count))
    seen: list[str] = []
    token = None
    for size in pages:
        params = {"MaxResults": 500, **({"NextToken": token} if token else {})}
        body = await sim.call(enis(**params))
        assert len(eni_ids(body)) == size
        seen += eni_ids(body)
        token = body["NextToken"]
    assert token == ""  # the last page says so, exactly as Terway's loop expects
    assert seen == [e.eni_id for e in sim.world.stray_enis]


async def test_describe_network_interfaces_max_results_limits_and_legacy_pages(serve) -> None:
    sim = await serve(stray_world(1200))
    assert len(eni_ids(await sim.call(enis(MaxResults=5)))) == 10  # below 10 means 10
    assert len(eni_ids(await sim.call(enis(MaxResults=900)))) == 500  # above 500 means 500
    legacy = await sim.call(enis(PageSize=1000, PageNumber=2))
    assert (legacy["TotalCount"], legacy["PageNumber"], legacy["PageSize"]) == (1200, 2, 1000)
    assert eni_ids(legacy) == [e.eni_id for e in sim.world.stray_enis[1000:]]
    assert len(eni_ids(await sim.call(enis()))) == 10  # the default page


# --------------------------------------------------------------------------- other ECS actions and quotas


async def test_describe_instance_types(serve) -> None:
    # ecs.g7.xlarge for the nodes, then ecs.g7.2xlarge .. ecs.g7.13xlarge: 13 types in all.
    world = small_world(instance_types=[
        {"type": f"ecs.g7.{n if n > 1 else ''}xlarge", "eni_quantity": 8, "ips_per_eni": 20, "eni_total_quantity": 16,
         "trunk_supported": True} for n in range(1, 14)])
    sim = await serve(world)
    req = DescribeInstanceTypesRequest()
    req.set_InstanceTypess(["ecs.g7.2xlarge", "ecs.g7.missing"])
    items = (await sim.call(req))["InstanceTypes"]["InstanceType"]
    assert [i["InstanceTypeId"] for i in items] == ["ecs.g7.2xlarge"]
    item = items[0]
    assert (item["EniQuantity"], item["EniPrivateIpAddressQuantity"], item["EniTotalQuantity"],
            item["EniTrunkSupported"], item["CpuCoreCount"], item["InstanceTypeFamily"]) == (
        8, 20, 16, True, 8, "ecs.g7")
    paged = DescribeInstanceTypesRequest()
    paged.set_MaxResults(5)
    first = await sim.call(paged)
    assert len(first["InstanceTypes"]["InstanceType"]) == 5 and first["NextToken"]
    too_many = DescribeInstanceTypesRequest()
    too_many.set_InstanceTypess([f"ecs.g7.{n}xlarge" for n in range(2, 13)])
    assert (await sim.fail(too_many)).get_error_code() == "InvalidParameter"


async def test_describe_security_groups(serve) -> None:
    sim = await serve(small_world())
    req = DescribeSecurityGroupsRequest()
    req.set_SecurityGroupIds(json.dumps(["sg-b", "sg-gone"]))
    body = await sim.call(req)
    assert [g["SecurityGroupId"] for g in body["SecurityGroups"]["SecurityGroup"]] == ["sg-b"]
    assert body["SecurityGroups"]["SecurityGroup"][0]["VpcId"] == "vpc-unit"
    by_vpc = DescribeSecurityGroupsRequest()
    by_vpc.set_VpcId("vpc-unit")
    by_vpc.set_MaxResults(1)
    first = await sim.call(by_vpc)
    assert len(first["SecurityGroups"]["SecurityGroup"]) == 1 and first["NextToken"]
    by_vpc.set_NextToken(first["NextToken"])
    second = await sim.call(by_vpc)
    assert second["SecurityGroups"]["SecurityGroup"][0]["SecurityGroupId"] == "sg-b" and second["NextToken"] == ""
    bad = DescribeSecurityGroupsRequest()
    bad.set_SecurityGroupIds("sg-a")  # not a JSON array
    assert (await sim.fail(bad)).get_error_code() == "InvalidParameter"


async def test_describe_account_attributes_values_are_strings(serve) -> None:
    sim = await serve(small_world())
    req = DescribeAccountAttributesRequest()
    req.set_AttributeNames(["max-elastic-network-interfaces", "instance-network-type"])
    items = (await sim.call(req))["AccountAttributeItems"]["AccountAttributeItem"]
    values = {i["AttributeName"]: i["AttributeValues"]["ValueItem"][0]["Value"] for i in items}
    assert values == {"max-elastic-network-interfaces": "200", "instance-network-type": "vpc"}


def quota_request(region: str = "cn-hangzhou", code: str = "q_elastic-network-interfaces") -> GetProductQuotaRequest:
    req = GetProductQuotaRequest()
    req.set_ProductCode("ecs")
    req.set_QuotaActionCode(code)
    if region:
        req.set_Dimensionss([{"Key": "regionId", "Value": region}])
    return req


async def test_get_product_quota_form_body(serve) -> None:
    sim = await serve(small_world())
    quota = (await sim.call(quota_request()))["Quota"]
    # 2 primaries + 3 secondaries + 4 strays; TotalQuota/TotalUsage are numbers, not strings.
    assert (quota["TotalQuota"], quota["TotalUsage"]) == (200.0, 9.0)
    assert (quota["QuotaActionCode"] == "q_elastic-network-interfaces"
            and quota["Dimensions"] == {"regionId": "cn-hangzhou"})
    err = await sim.fail(quota_request(code="q_something-else"))
    assert (err.get_error_code(), err.get_http_status()) == ("QUOTA.NOT.FOUND", 400)
    assert (await sim.fail(quota_request(region=""))).get_error_code() == "QUOTA.DIMENSION.MISS"


def rpc(version: str, action: str, **params: Any) -> CommonRequest:
    """A request with exactly these parameters (and RegionId, which the SDK adds unless given)."""
    req = CommonRequest(version=version, action_name=action)
    req.set_method("POST")
    for name, value in params.items():
        req.add_query_param(name, value)
    return req


ECS, QUOTAS = "2014-05-26", "2020-05-10"
MANY_SGS = json.dumps([f"sg-{i}" for i in range(101)])


@pytest.mark.parametrize("action, params, code", [
    # DescribeNetworkInterfaces
    ("DescribeNetworkInterfaces", {"RegionId": ""}, "MissingParameter"),  # RegionId is required
    ("DescribeNetworkInterfaces", {"NetworkInterfaceIds": "eni-a"}, "InvalidParameter"),  # the name is .N
    ("DescribeNetworkInterfaces", {"NetworkInterfaceId": "eni-a"}, "InvalidParameter"),  # not a bare name
    ("DescribeNetworkInterfaces", {"NetworkInterfaceId.101": "eni-a"}, "InvalidParameter"),  # N: 1 to 100
    ("DescribeNetworkInterfaces", {"VpcIds": "vpc-unit"}, "InvalidParameter"),
    ("DescribeNetworkInterfaces", {"Status": "Available,InUse"}, "InvalidParameter"),  # one status
    ("DescribeNetworkInterfaces", {"PageSize": 1001}, "InvalidParameter"),  # valid values 1 to 1000
    ("DescribeNetworkInterfaces", {"Tag.21.Key": "creator"}, "InvalidParameter"),  # N: 1 to 20
    ("DescribeNetworkInterfaces", {"Ipv6Address.1": "2408::1"}, "Simulator.UnsupportedParameter"),
    # DescribeInstanceTypes
    ("DescribeInstanceTypes", {"InstanceTypes.11": "ecs.g7.xlarge"}, "InvalidParameter"),  # 1 to 10 types
    ("DescribeInstanceTypes", {"InstanceType": "ecs.g7.xlarge"}, "InvalidParameter"),
    ("DescribeInstanceTypes", {"InstanceTypeIds.1": "ecs.g7.xlarge"}, "InvalidParameter"),
    ("DescribeInstanceTypes", {"MaxResults": 101}, "InvalidParameter"),  # 100 since November 15, 2023
    ("DescribeInstanceTypes", {"MaxResults": 1600}, "InvalidParameter"),
    ("DescribeInstanceTypes", {"MaxResults": 0}, "InvalidParameter"),
    ("DescribeInstanceTypes", {"MinimumEniQuantity": 2}, "Simulator.UnsupportedParameter"),
    # DescribeSecurityGroups
    ("DescribeSecurityGroups", {"RegionId": ""}, "MissingParameter"),
    ("DescribeSecurityGroups", {"SecurityGroupIds": "sg-a,sg-b"}, "InvalidParameter"),  # a JSON array
    ("DescribeSecurityGroups", {"SecurityGroupIds": MANY_SGS}, "InvalidParameter"),  # up to 100 IDs
    ("DescribeSecurityGroups", {"SecurityGroupIds.1": "sg-a"}, "InvalidParameter"),
    ("DescribeSecurityGroups", {"MaxResults": 101}, "InvalidParameter"),  # maximum 100
    ("DescribeSecurityGroups", {"PageSize": 51}, "InvalidParameter"),  # maximum 50
    ("DescribeSecurityGroups", {"SecurityGroupType": "normal"}, "Simulator.UnsupportedParameter"),
    # DescribeAccountAttributes
    ("DescribeAccountAttributes", {"RegionId": ""}, "MissingParameter"),
    ("DescribeAccountAttributes", {"AttributeName.9": "max-security-groups"}, "InvalidParameter"),  # N: 1 to 8
    ("DescribeAccountAttributes", {"AttributeNames": "max-elastic-network-interfaces"}, "InvalidParameter"),
    ("DescribeAccountAttributes", {"AttributeName": "max-elastic-network-interfaces"}, "InvalidParameter"),
])
async def test_ecs_actions_refuse_undocumented_forms(serve, action: str, params: dict, code: str) -> None:
    sim = await serve(small_world())
    err = await sim.fail(rpc(ECS, action, **params))
    assert (err.get_error_code(), err.get_http_status()) == (code, 400)
    counted = (await sim.calls())["actions"][action]
    assert counted == {"total": 1, "codes": {code: 1}, "statuses": {"400": 1}}


@pytest.mark.parametrize("params, code", [
    ({"ProductCode": "ecs", "QuotaActionCode": "q_elastic-network-interfaces", "Dimensions.1.Key": "regionId"},
     "QUOTA.DIMENSION.MISS"),  # Key and Value must be set together
    ({"ProductCode": "ecs", "QuotaActionCode": "q_elastic-network-interfaces", "Dimensions.1.Name": "regionId",
      "Dimensions.1.Value": "cn-hangzhou"}, "InvalidParameter"),
    ({"ProductCode": "ecs", "QuotaActionCode": "q_elastic-network-interfaces", "Dimension.1.Key": "regionId",
      "Dimension.1.Value": "cn-hangzhou"}, "InvalidParameter"),
    ({"ProductCode": "ecs", "QuotaActionCode": "q_elastic-network-interfaces",
      "Dimensions": '[{"Key": "regionId", "Value": "cn-hangzhou"}]'}, "InvalidParameter"),  # flat .N only
])
async def test_get_product_quota_refuses_undocumented_forms(serve, params: dict, code: str) -> None:
    sim = await serve(small_world())
    err = await sim.fail(rpc(QUOTAS, "GetProductQuota", **params))
    assert (err.get_error_code(), err.get_http_status()) == (code, 400)


async def test_documented_page_size_rules(serve) -> None:
    types = [{"type": f"ecs.sim{i}.large", "eni_quantity": 3, "ips_per_eni": 6} for i in range(130)]
    sim = await serve(small_world(instance_types=types, nodes=[]))
    # DescribeInstanceTypes: without NextToken only the first 100 come back.
    first = await sim.call(rpc(ECS, "DescribeInstanceTypes"))
    assert len(first["InstanceTypes"]["InstanceType"]) == 100 and first["NextToken"]
    rest = await sim.call(rpc(ECS, "DescribeInstanceTypes", MaxResults=100, NextToken=first["NextToken"]))
    assert len(rest["InstanceTypes"]["InstanceType"]) == 30 and rest["NextToken"] == ""
    # A comma list in one InstanceTypes.N is one (unknown) type.
    listed = await sim.call(rpc(ECS, "DescribeInstanceTypes", **{"InstanceTypes.1": "ecs.sim1.large,ecs.sim2.large"}))
    assert listed["InstanceTypes"]["InstanceType"] == []
    # DescribeSecurityGroups: MaxResults defaults to 10.
    groups = await sim.call(rpc(ECS, "DescribeSecurityGroups", MaxResults=1))
    assert len(groups["SecurityGroups"]["SecurityGroup"]) == 1 and groups["NextToken"]
    # Documented account-identity parameters change nothing.
    assert (await sim.call(rpc(ECS, "DescribeSecurityGroups", OwnerId="1", ResourceOwnerAccount="x")))[
        "TotalCount"] == 2


async def test_describe_instances(serve) -> None:
    sim = await serve(small_world())
    node = sim.world.nodes["node-b"]
    req = DescribeInstancesRequest()
    req.set_InstanceIds(json.dumps([node.instance_id]))
    instance = (await sim.call(req))["Instances"]["Instance"][0]
    assert (instance["InstanceId"], instance["InstanceType"], instance["ZoneId"]) == (
        node.instance_id, "ecs.g7.xlarge", "cn-hangzhou-i")
    assert [n["Type"] for n in instance["NetworkInterfaces"]["NetworkInterface"]] == ["Primary", "Secondary"]


async def test_unknown_action_and_get_method(serve) -> None:
    sim = await serve(small_world())
    req = CommonRequest(domain=sim.host, version="2014-05-26", action_name="DescribeRegions")
    req.set_method("POST")
    err = await sim.fail(req)
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidAction.NotFound", 404)
    get = vswitches(PageSize=10)
    get.set_method("GET")  # the signature covers the method actually used
    assert (await sim.call(get))["TotalCount"] == 2


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("code, status", [
    ("Throttling", 400), ("Throttling.User", 400), ("Throttling.Api", 400),
    ("ServiceUnavailable", 503), ("InternalError", 500), ("Forbidden.RAM", 403),
])
async def test_fault_codes_have_real_status(serve, code: str, status: int) -> None:
    sim = await serve(small_world(cloud={"faults": {"DescribeNetworkInterfaces": {"code": code}}}))
    err = await sim.fail(enis(MaxResults=10))
    assert (err.get_error_code(), err.get_http_status()) == (code, status)
    assert (await sim.call(vswitches()))["TotalCount"] == 2  # other actions are untouched
    counted = (await sim.calls())["actions"]["DescribeNetworkInterfaces"]
    assert counted == {"total": 1, "codes": {code: 1}, "statuses": {str(status): 1}}


async def test_forbidden_ram_names_the_action(serve) -> None:
    world = small_world(cloud={"faults": {"GetProductQuota": {"code": "Forbidden.RAM"}}})
    runner, url = await start_app(make_cloud_app(world))
    try:
        sim = Sim(world, url)
        request = quota_request()
        signed = request.get_url(world.region_id, world.access_key_id, world.access_key_secret)
        form = request.get_body_params()
        async with aiohttp.ClientSession() as session, session.post(url + signed, data=form) as resp:
            body = await resp.json()
        assert resp.status == 403 and body["Code"] == "Forbidden.RAM"
        assert body["AccessDeniedDetail"]["AuthAction"] == "quotas:GetProductQuota"
        assert body["HostId"] == "quotas.aliyuncs.com" and REQUEST_ID.match(body["RequestId"])
        assert resp.headers["x-acs-request-id"] == body["RequestId"]
        assert (await sim.fail(quota_request())).get_error_msg().startswith("User not authorized")
    finally:
        await runner.cleanup()


async def test_fault_patterns_are_deterministic(serve) -> None:
    sim = await serve(small_world(cloud={"faults": {
        "DescribeVSwitches": {"code": "Throttling.User", "every": 3},
        "DescribeNetworkInterfaces": {"code": "ServiceUnavailable", "ratio": 0.5},
        "DescribeSecurityGroups": {"code": "InternalError", "first_calls": 2},
        "DescribeInstanceTypes": {"code": "Throttling.Api", "after_calls": 2},
    }}))

    async def outcomes(make, n: int) -> str:
        result = ""
        for _ in range(n):
            try:
                await sim.call(make())
                result += "."
            except ServerException:
                result += "x"
        return result

    assert await outcomes(vswitches, 6) == "..x..x"
    assert await outcomes(enis, 6) == ".x.x.x"
    assert await outcomes(DescribeSecurityGroupsRequest, 4) == "xx.."
    assert await outcomes(DescribeInstanceTypesRequest, 4) == "..xx"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.base_url}/_sim/cloud/reset") as resp:
            assert resp.status == 200
    assert (await sim.calls()) == {"total": 0, "actions": {}}
    assert await outcomes(vswitches, 3) == "..x"  # numbering restarts after a reset


async def test_delay_and_sdk_retry_on_throttling(serve) -> None:
    sim = await serve(small_world(cloud={"faults": {
        "DescribeVSwitches": {"delay_seconds": 0.5},
        "DescribeNetworkInterfaces": {"code": "Throttling", "first_calls": 2},
    }}))
    started = time.monotonic()
    assert (await sim.call(vswitches()))["TotalCount"] == 2
    assert time.monotonic() - started >= 0.5
    # ECS `Throttling` is the one code the SDK retries by itself (aliyunsdkcore/data/retry_config.json,
    # RetryableThrottlingErrors).
    body = await sim.call(enis(MaxResults=10), client=sim.client(auto_retry=True, max_retry_time=3))
    assert body["TotalCount"] == 9
    codes = (await sim.calls())["actions"]["DescribeNetworkInterfaces"]["codes"]
    assert codes == {"Throttling": 2, "Success": 1}


async def test_max_rate_throttles_beyond_the_budget(serve) -> None:
    clock = ManualClock(time.time())  # requests are signed with the wall clock: start from it
    sim = await serve(small_world(cloud={"faults": {"*": {"max_rate": 3}}}), clock)
    client = sim.client()
    results = []
    for make in (vswitches, enis, DescribeSecurityGroupsRequest, vswitches, enis):
        try:
            await sim.call(make(), client)
            results.append("ok")
        except ServerException as err:
            results.append((err.get_error_code(), err.get_http_status()))
    assert results[:3] == ["ok"] * 3  # the budget is shared by all actions under "*"
    assert results[3:] == [("Throttling.User", 400)] * 2
    clock.advance(0.75)  # still within the second of the first three
    assert (await sim.fail(vswitches(), client)).get_error_code() == "Throttling.User"
    clock.advance(0.5)  # a second after them: the budget is back
    assert (await sim.call(vswitches(), client))["TotalCount"] == 2


async def test_faults_follow_the_world_live(serve) -> None:
    sim = await serve(small_world())
    assert (await sim.call(vswitches()))["TotalCount"] == 2
    sim.world.cloud["faults"] = {"DescribeVSwitches": {"code": "ServiceUnavailable"}}  # as a scenario step does
    assert (await sim.fail(vswitches())).get_http_status() == 503
    sim.world.cloud["faults"] = {"DescribeVSwitches": {"nonsense": 1}}  # invalid: the previous rules stay
    assert (await sim.fail(vswitches())).get_http_status() == 503
    sim.world.cloud["faults"] = {}
    assert (await sim.call(vswitches()))["TotalCount"] == 2


def test_bad_fault_config_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="unknown keys"):
        make_cloud_app(small_world(cloud={"faults": {"DescribeVSwitches": {"cod": "Throttling"}}}))


# --------------------------------------------------------------------------- signature and credentials


async def test_bad_signature_answer_carries_the_string_to_sign(serve) -> None:
    sim = await serve(small_world())
    # The SDK recognises our string-to-sign as its own and rewrites the error (aliyunsdkcore/client.py).
    err = await sim.fail(vswitches(), sim.client(secret="wrong-secret"))
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidAccessKeySecret", 400)
    request = vswitches(VpcId="vpc unit*~")
    signed = request.get_url(sim.world.region_id, sim.world.access_key_id, "wrong-secret")
    async with aiohttp.ClientSession() as session, session.post(sim.base_url + signed) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["Code"] == "SignatureDoesNotMatch"
    prefix = "Specified signature is not matched with our calculation. server string to sign is:"
    assert body["Message"] == prefix + request.string_to_sign
    assert sim.world.access_key_secret not in json.dumps(body)


async def test_replayed_nonce_is_refused(serve) -> None:
    sim = await serve(small_world())
    signed = vswitches().get_url(sim.world.region_id, sim.world.access_key_id, sim.world.access_key_secret)
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.base_url + signed) as first:
            assert first.status == 200
        async with session.post(sim.base_url + signed) as again:
            assert again.status == 400 and (await again.json())["Code"] == "SignatureNonceUsed"


async def test_unknown_and_rejected_access_keys(serve) -> None:
    sim = await serve(small_world())
    err = await sim.fail(vswitches(), sim.client(ak="LTAI5tNoSuchKey", secret="x"))
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)
    assert err.get_error_msg() == "Specified access key is not found."
    rejected = await serve(small_world(cloud={"valid_credentials": False}))
    err = await rejected.fail(vswitches())
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)
    rotated = await serve(small_world(cloud={"server_access_key_secret": "rotated-in-the-console"}))
    err = await rotated.fail(vswitches())
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidAccessKeySecret", 400)


async def test_sts_token_credentials(serve) -> None:
    sim = await serve(small_world())
    cred = sim.world.issue_temporary_credential(3600)
    sts = sim.client(credential=StsTokenCredential(cred.access_key_id, cred.access_key_secret, cred.security_token))
    assert (await sim.call(vswitches(), sts))["TotalCount"] == 2
    assert (await sim.call(quota_request(), sts))["Quota"]["TotalQuota"] == 200.0  # form body + token signed
    wrong = sim.client(credential=StsTokenCredential(cred.access_key_id, cred.access_key_secret, "CAISother"))
    assert (await sim.fail(vswitches(), wrong)).get_error_code() == "InvalidSecurityToken.MismatchWithAccessKey"
    bare = sim.client(ak=cred.access_key_id, secret=cred.access_key_secret)
    assert (await sim.fail(vswitches(), bare)).get_error_code() == "MissingSecurityToken"
    old = sim.world.issue_temporary_credential(-1)
    expired = sim.client(credential=StsTokenCredential(old.access_key_id, old.access_key_secret, old.security_token))
    err = await sim.fail(vswitches(), expired)
    assert (err.get_error_code(), err.get_http_status()) == ("InvalidSecurityToken.Expired", 400)


@pytest.fixture
async def issuers():
    runners: list[Any] = []

    async def start(world: World, **options: Any) -> str:
        runner, url = await start_credentials_simulator(world, **options)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_assume_role_with_oidc_round_trip(serve, issuers, tmp_path: Path) -> None:
    from alibabacloud_credentials.exceptions import CredentialException
    from alibabacloud_credentials.provider.oidc import OIDCRoleArnCredentialsProvider

    sim = await serve(small_world())
    sts_url = await issuers(sim.world, oidc_token="eyJhbGciOiJSUzI1NiJ9.sim.sig")
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.sim.sig")
    provider = OIDCRoleArnCredentialsProvider(
        role_arn="acs:ram::1234567890123456:role/terway-exporter",
        oidc_provider_arn="acs:ram::1234567890123456:oidc-provider/ack-rrsa-c-unit",
        oidc_token_file_path=str(token_file), sts_endpoint=sts_url)  # a scheme in the endpoint beats https
    cred = await provider.get_credentials_async()
    assert cred.get_access_key_id().startswith("STS.") and cred.get_security_token()
    client = sim.client(credential=StsTokenCredential(
        cred.get_access_key_id(), cred.get_access_key_secret(), cred.get_security_token()))
    assert (await sim.call(enis(MaxResults=10), client))["TotalCount"] == 9
    token_file.write_text("a-token-the-provider-does-not-trust")
    stranger = OIDCRoleArnCredentialsProvider(
        role_arn="acs:ram::1:role/x", oidc_provider_arn="acs:ram::1:oidc-provider/y",
        oidc_token_file_path=str(token_file), sts_endpoint=sts_url)
    with pytest.raises(CredentialException, match="AuthenticationFail.OIDCToken.Invalid"):
        await stranger.get_credentials_async()


async def test_ecs_metadata_credentials_rotate(serve, issuers) -> None:
    from alibabacloud_credentials.http import HttpOptions
    from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider

    clock = ManualClock(time.time())  # one clock for STS and the cloud, which judges the credential's expiry
    sim = await serve(small_world(), clock)
    metadata_url = await issuers(sim.world, role_name="terway-role", expiration_seconds=2, clock=clock)

    def fetch() -> Any:
        # The metadata host is fixed (100.100.100.200); the simulator answers as its HTTP proxy.
        provider = EcsRamRoleCredentialsProvider(http_options=HttpOptions(proxy=metadata_url),
                                                 async_update_enabled=False)
        return provider.get_credentials()

    first = await asyncio.to_thread(fetch)
    same = await asyncio.to_thread(fetch)
    assert same.get_access_key_id() == first.get_access_key_id()  # reused while fresh
    client = sim.client(credential=StsTokenCredential(
        first.get_access_key_id(), first.get_access_key_secret(), first.get_security_token()))
    assert (await sim.call(vswitches(), client))["TotalCount"] == 2
    clock.advance(2.25)  # past the credential's 2 s
    rotated = await asyncio.to_thread(fetch)
    assert rotated.get_access_key_id() != first.get_access_key_id()
    assert (await sim.fail(vswitches(), client)).get_error_code() == "InvalidSecurityToken.Expired"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{metadata_url}/latest/meta-data/ram/security-credentials/",
                               headers={"X-aliyun-ecs-metadata-token": "forged"}) as resp:
            assert resp.status == 401
        async with session.get(f"{metadata_url}/_sim/credentials/calls") as resp:
            assert (await resp.json())["metadata_credentials"] == 3


# --------------------------------------------------------------------------- shipped scenarios


def test_every_shipped_scenario_loads() -> None:
    names = set(scenario_names())
    assert {"demo", "healthy", "vswitch-exhausted", "eni-quota-near-limit", "leaked-enis", "throttled",
            "bad-credentials", "ram-forbidden", "missing-vswitch", "scale"} <= names
    for name in names - {"scale"}:
        world = load_world(name)
        make_cloud_app(world)  # faults parse
        assert world.kubernetes.get("crds") is not None or "eni_config" in world.kubernetes, name


async def test_problem_scenarios_show_their_problem(serve) -> None:
    exhausted = await serve(load_world("vswitch-exhausted"))
    free = [v["AvailableIpAddressCount"] / 252 for v in
            (await exhausted.call(vswitches(PageSize=50)))["VSwitches"]["VSwitch"][:2]]
    assert free[0] == 0 and 0 < free[1] < 0.05

    quota = (await (await serve(load_world("eni-quota-near-limit"))).call(quota_request()))["Quota"]
    assert quota["TotalUsage"] / quota["TotalQuota"] >= 0.95

    leaked = await serve(load_world("leaked-enis"))
    available = (await leaked.call(enis(Status="Available", MaxResults=100)))["NetworkInterfaceSets"]
    old = [e for e in available["NetworkInterfaceSet"] if time.time() - time.mktime(
        time.strptime(e["CreationTime"], "%Y-%m-%dT%H:%M:%SZ")) + time.timezone > 900
        and {t["TagValue"] for t in e["Tags"]["Tag"] if t["TagKey"] == "creator"} & {"terway", "terway-controller"}]
    # 5 leaked plus the fixed-IP pod's ENI its PodENI holds (the cloud alone cannot tell them apart), of 10.
    assert len(old) == 6 and len(available["NetworkInterfaceSet"]) == 10

    forbidden = await serve(load_world("ram-forbidden"))
    assert (await forbidden.fail(enis())).get_http_status() == 403
    assert (await forbidden.fail(quota_request())).get_error_code() == "Forbidden.RAM"
    assert (await forbidden.call(vswitches()))["TotalCount"] == 2

    bad = await serve(load_world("bad-credentials"))
    assert (await bad.fail(vswitches())).get_error_code() == "InvalidAccessKeyId.NotFound"

    missing = load_world("missing-vswitch")
    configured = {v for ids in missing.kubernetes["eni_config"]["eni_conf"]["vswitches"].values() for v in ids}
    absent = configured - set(missing.vswitches)
    sim = await serve(missing)
    assert len(absent) == 1
    for vsw_id in sorted(configured):
        assert (await sim.call(vswitches(VSwitchId=vsw_id)))["TotalCount"] == (vsw_id not in absent)

    throttled = await serve(load_world("throttled"))
    codes = []
    for _ in range(5):
        try:
            await throttled.call(vswitches())
            codes.append("ok")
        except ServerException as err:
            codes.append(err.get_error_code())
    assert codes.count("Throttling.User") == 4


@pytest.mark.slow  # the 5,000-node world built
def test_scale_world_builds_and_scales_down() -> None:
    world = load_world("scale")  # how fast: bench/run.py times the scale scenario's simulator to /readyz
    assert len(world.nodes) == 5000 and len(world.vswitches) == 60
    assert len(world.all_enis()) == 35000
    assert sum(1 for e in world.all_enis() for ip in e.ips if ip.pod_id) == 150000
    assert all(e.ips for e in world.all_enis())  # IPs dealt round-robin: no ENI without an address
    small = load_world("scale", {"nodes": 50})
    assert len(small.nodes) == 50 and len(small.all_enis()) == 350
