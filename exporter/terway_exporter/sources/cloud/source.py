"""The Alibaba Cloud source: polls ECS, VPC and Quota Center into `CloudSnapshot`s.

A regular poll (every `poll_interval`) makes a number of calls that depends on the
configuration (vSwitch and security group IDs, instance types, leaked ENIs), never
on the number of nodes:

- DescribeVSwitches for every vSwitch of the VPC (by VpcId, 50 a page), plus one call per
  target vSwitch outside that listing whose cached single-ID answer has expired;
- DescribeNetworkInterfaces(VpcId, Status=Available) for detached Terway ENIs (the collectors
  call those leaked unless a PodENI references them);
- GetProductQuota, else DescribeAccountAttributes, for the ENI quota; without Quota Center's
  usage, the census's count of the VPC's secondary ENIs stands in, labelled as such;
- DescribeInstanceTypes for instance types not in the cache (TTL `instance_type_ttl`);
- DescribeSecurityGroups for the configured groups.

The full ENI census (every ENI of the VPC) grows with the cluster, so it runs on
its own slow interval (`census_interval`). Each step publishes a new snapshot; a
failed step keeps its last good value and reports its status down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from aliyunsdkcore.request import AcsRequest
from aliyunsdkecs.request.v20140526.DescribeAccountAttributesRequest import DescribeAccountAttributesRequest
from aliyunsdkecs.request.v20140526.DescribeInstanceTypesRequest import DescribeInstanceTypesRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import DescribeSecurityGroupsRequest
from aliyunsdkquotas.request.v20200510.GetProductQuotaRequest import GetProductQuotaRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from ...model.cloud import (
    QUOTA_CENTER,
    VPC_CENSUS,
    CloudSnapshot,
    CloudTargets,
    Eni,
    EniCensus,
    InstanceTypeLimits,
    VSwitch,
)
from ...model.kube import KubeSnapshot
from ...model.status import SourceStatus
from ...redact import scrub
from ...terway.targets import derive_targets
from ..sink import SnapshotSink
from . import ids, parse
from .client import CloudApiError, CloudClient
from .credentials import ChainProvider, CredentialOptions, ProviderSigner, default_provider
from .ratelimit import RateLimiter
from .settings import CloudSettings

log = logging.getLogger(__name__)

VSWITCHES = "cloud_vswitches"
ENI_LEAKS = "cloud_eni_leaks"
ENI_QUOTA = "cloud_eni_quota"
INSTANCE_TYPES = "cloud_instance_types"
SECURITY_GROUPS = "cloud_security_groups"
ENI_CENSUS = "cloud_eni_census"
STATUS_NAMES = (VSWITCHES, ENI_LEAKS, ENI_QUOTA, INSTANCE_TYPES, SECURITY_GROUPS, ENI_CENSUS)

# API page and batch sizes, each the maximum its API reference documents (docs/api-contract.md
# lists the calls, their parameters and the reference pages).
# VPC DescribeVSwitches: PageSize "Maximum value: 50"; VSwitchId is one ID
# (https://www.alibabacloud.com/help/en/vpc/developer-reference/api-vpc-2016-04-28-describevswitches).
VSWITCH_PAGE_SIZE = 50
# DescribeNetworkInterfaces: MaxResults 10 to 500 (Terway asks for 500 too: maxSinglePageSize,
# pkg/aliyun/client/types.go at v1.17.5).
ENI_PAGE_SIZE = 500
# DescribeInstanceTypes: InstanceTypes.N, 1 to 10 types; MaxResults at most 100 since November 15, 2023
# (https://www.alibabacloud.com/help/id/ecs/api-describeinstancetypes; Terway asks for 100,
# pkg/aliyun/client/ecs.go at v1.17.5).
INSTANCE_TYPES_PER_CALL = 10
INSTANCE_TYPE_PAGE_SIZE = 100
# DescribeSecurityGroups: SecurityGroupIds, a JSON array of up to 100 IDs; MaxResults at most 100
# (https://www.alibabacloud.com/help/doc-detail/25556.html).
SECURITY_GROUPS_PER_CALL = 100
SECURITY_GROUP_PAGE_SIZE = 100
MAX_PAGES = 1000  # a server that keeps returning tokens must not loop us forever
ENI_QUOTA_CODE = "q_elastic-network-interfaces"


class StepError(Exception):
    """A step that cannot run (nothing to ask, or a missing prerequisite)."""


def chunks(items: Iterable[str], size: int) -> list[list[str]]:
    ordered = sorted(items)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def detached_terway_enis(enis: Iterable[Eni]) -> tuple[Eni, ...]:
    """The Available ENIs that carry a Terway creator tag (the leak candidates)."""
    return tuple(e for e in enis if e.status == "Available" and e.creator in parse.TERWAY_CREATORS)


def build_census(enis: Iterable[Eni], taken_at: float) -> EniCensus:
    counts: Counter[tuple[str, str, str]] = Counter()
    by_instance: dict[str, list[Eni]] = {}
    for eni in enis:
        counts[(eni.status, eni.type, eni.creator)] += 1
        if eni.instance_id:
            by_instance.setdefault(eni.instance_id, []).append(eni)
    return EniCensus(counts=dict(counts), by_instance={k: tuple(v) for k, v in by_instance.items()}, taken_at=taken_at)


def census_quota_usage(census: EniCensus) -> int:
    """ENIs of the cluster's VPC that count against the ENI quota: every ENI but the primary ones,
    which ECS creates with their instance. The quota limits the ENIs one account creates in a region
    (the ECS API reference of CreateNetworkInterface:
    https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-createnetworkinterface),
    so this is only a lower bound of its usage: the account's other VPCs are not in the census."""
    return sum(n for (_, eni_type, _), n in census.counts.items() if eni_type != "Primary")


def parse_items(items: list[Any], parser: Callable[[Any], Any], api: str) -> list[Any]:
    """Parse every item; a malformed one is logged once per response and skipped."""
    parsed, bad = [], 0
    for item in items:
        try:
            parsed.append(parser(item))
        except (ValueError, TypeError, AttributeError):
            bad += 1
    if bad:
        log.warning("%s: skipped %d malformed item(s) of %d", api, bad, len(items))
    return parsed


async def token_pages(client: CloudClient, api: str, build: Callable[[str], AcsRequest],
                      keep: Callable[[dict[str, Any]], Any] = lambda body: body) -> list[Any]:
    """Every page of a NextToken-paged ECS list (`keep(body)` of each); `build(token)` makes the base request.

    Stops at an empty NextToken (the last page), like Terway; a repeated token or
    MAX_PAGES pages also stop it, so a misbehaving server cannot loop us forever.
    """
    bodies: list[Any] = []
    token = ""
    for _ in range(MAX_PAGES):
        def attempt(token: str = token) -> AcsRequest:
            req = build(token)
            if token:
                req.add_query_param("NextToken", token)
            return req
        body = await client.call(api, attempt)
        bodies.append(keep(body))
        next_token = body.get("NextToken") or ""
        if not next_token or next_token == token:
            break
        token = next_token
    return bodies


class CloudSource:
    """Polls the cloud and publishes what it read into its sink (the hub). `run()` loops until
    cancelled; `poll_once()` and `census_once()` run one round (for `collect` and tests) and
    return success.

    What to poll is decided here, at each round: the settings' IDs widened by what the cluster's
    latest snapshot names (`cluster`, the Kubernetes source's `latest`; None without a cluster),
    see terway/targets.py. The source keeps its own snapshot and statuses and never reads them back
    from the sink.
    """

    def __init__(
        self,
        sink: SnapshotSink,
        settings: CloudSettings,
        *,
        cluster: Callable[[], KubeSnapshot | None] | None = None,
        credentials: ChainProvider | Any | None = None,
        credential_options: CredentialOptions | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.sink = sink
        self.settings = settings
        self._cluster = cluster
        self.snapshot = CloudSnapshot()
        self.statuses: dict[str, SourceStatus] = {}
        self.explicit = CloudTargets(region_id=settings.region_id, vpc_id=settings.vpc_id,
                                     vswitch_ids=frozenset(settings.vswitch_ids),
                                     security_group_ids=frozenset(settings.security_group_ids),
                                     instance_types=frozenset(settings.instance_types))
        self._cluster_targets = self.explicit
        self._env = env
        self._provider = credentials or default_provider(env, credential_options)
        self._signer = ProviderSigner(self._provider)
        self._limiter = RateLimiter(settings.api_rate, cooldown=settings.throttle_cooldown)
        self._executor = ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="cloud-api")
        self._client: CloudClient | None = None
        # instance type -> (limits or None when the API does not know it, fetched at)
        self._type_cache: dict[str, tuple[InstanceTypeLimits | None, float]] = {}
        # (region, vSwitch ID) -> (vSwitch or None when DescribeVSwitches does not know it, fetched at):
        # configured vSwitches outside the listed VPC, asked one by one (TTL `vswitch_lookup_ttl`).
        self._vswitch_cache: dict[tuple[str, str], tuple[VSwitch | None, float]] = {}
        self._usage_from_census = False
        self._malformed_seen: set[str] = set()
        self._polled = asyncio.Event()
        sink.publish_targets(self.explicit)
        for name in STATUS_NAMES:
            # The census lists every ENI of the VPC (82 pages at 5,000 nodes, paced by the shared rate limit:
            # most of the time to /readyz in docs/performance.md); /readyz does not wait for it, and
            # terway_enis and the census-based quota usage stay absent until it is done.
            sink.register(name, gates_readiness=name != ENI_CENSUS)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            await asyncio.gather(self._every(self.settings.poll_interval, self._poll_and_signal),
                                 self._census_loop())
        finally:
            self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _poll_and_signal(self) -> None:
        try:
            await self.poll_once()
        finally:
            self._polled.set()

    async def _census_loop(self) -> None:
        await self._polled.wait()  # the census needs the VPC the first poll finds
        # A failed census (VPC not known yet, throttled, denied) is retried at the poll interval,
        # not after a whole census interval: otherwise terway_enis could stay absent for 15 minutes.
        await self._every(self.settings.census_interval, self.census_once,
                          retry_interval=min(self.settings.poll_interval, self.settings.census_interval))

    async def _every(self, interval: float, step: Callable[[], Awaitable[Any]],
                     retry_interval: float | None = None) -> None:
        while True:
            started, ok = time.monotonic(), True
            try:
                ok = await step() is not False
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bug must not stop the loop; the statuses tell
                log.error("cloud source round failed: %s", scrub(repr(err), self._signer.secrets()))
            wait = interval if ok or retry_interval is None else retry_interval
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))

    # ------------------------------------------------------------------ rounds

    async def poll_once(self) -> bool:
        targets = self.targets()
        client = self._client_for(targets.region_id)
        ok = await self._step(VSWITCHES, client, lambda c: self._poll_vswitches(c, targets))
        targets = replace(targets, vpc_id=self.vpc_id(targets))
        results = await asyncio.gather(
            self._step(ENI_LEAKS, client, lambda c: self._poll_leaks(c, targets)),
            self._step(ENI_QUOTA, client, lambda c: self._poll_quota(c, targets)),
            self._step(INSTANCE_TYPES, client, lambda c: self._poll_instance_types(c, targets)),
            self._step(SECURITY_GROUPS, client, lambda c: self._poll_security_groups(c, targets)),
        )
        return ok and all(results)

    async def census_once(self) -> bool:
        targets = self.targets()
        targets = replace(targets, vpc_id=self.vpc_id(targets))
        client = self._client_for(targets.region_id)
        return await self._step(ENI_CENSUS, client, lambda c: self._run_census(c, targets))

    def targets(self) -> CloudTargets:
        """What this round looks at: the settings' IDs widened by what the cluster's latest snapshot
        names (terway/targets.py, where the flags' region and VPC win). A region, VPC or instance type
        from the cluster that is not shaped like one is dropped (vSwitch and security group IDs are
        kept: they are answered as missing, so the configuration checks name them). The result is
        published, so the checks and collectors read the very targets this round polled."""
        kube = self._cluster() if self._cluster is not None else None
        if kube is not None:
            try:
                self._cluster_targets = derive_targets(kube, self.explicit)
            except Exception:  # never let odd cluster data stop the poll: keep the previous targets
                log.exception("could not derive cloud targets from the cluster; keeping the previous ones")
        named, s = self._cluster_targets, self.settings
        polled = CloudTargets(
            region_id=s.region_id or self._well_formed("region", named.region_id),
            vpc_id=s.vpc_id or self._well_formed("vpc", named.vpc_id),
            vswitch_ids=named.vswitch_ids,
            security_group_ids=named.security_group_ids,
            instance_types=frozenset(it for it in named.instance_types if self._well_formed("instance_type", it)),
        )
        self.sink.publish_targets(polled)
        return polled

    def _well_formed(self, kind: str, value: str | None) -> str | None:
        if value is None or ids.well_formed(kind, value):
            return value
        self._warn_malformed(kind.replace("_", " "), value)
        return None

    def _warn_malformed(self, kind: str, value: str) -> None:
        """Once per value: the cluster names it on every poll."""
        if value not in self._malformed_seen:
            self._malformed_seen.add(value)
            log.warning("the cluster names a %s %s that cannot be an ID; not sending it to the cloud API",
                        kind, ids.shown(value))

    def vpc_id(self, targets: CloudTargets) -> str | None:
        """The configured VPC, else the one most target vSwitches belong to."""
        if targets.vpc_id:
            return targets.vpc_id
        found = Counter(v.vpc_id for k, v in self.snapshot.vswitches.items() if v.vpc_id and k in targets.vswitch_ids)
        return found.most_common(1)[0][0] if found else self.snapshot.vpc_id

    def _client_for(self, region_id: str | None) -> CloudClient | None:
        if region_id is None:
            return None
        if self._client is None or self._client.region_id != region_id:
            self._client = CloudClient(self.settings, region_id, self.sink.counters, self._signer,
                                       self._limiter, self._executor, self._env)
        return self._client

    async def _step(self, name: str, client: CloudClient | None,
                    fetch: Callable[[CloudClient], Awaitable[dict[str, Any]]]) -> bool:
        """Run one step with `client` (None: the region is unknown); publish its fields on success,
        keep the old ones on failure."""
        started, wall = time.monotonic(), time.time()
        previous = self.statuses.get(name)
        try:
            if client is None:
                raise StepError("region unknown: set --region or let the cluster name it")
            changes = await fetch(client)
        except (CloudApiError, StepError) as err:
            error = str(err)
        except Exception as err:  # parsing or a bug: one line, never a crash
            error = scrub(f"{type(err).__name__}: {err}", self._signer.secrets())
            log.error("cloud step %s failed: %s", name, error)
        else:
            # A field whose new value equals the old keeps the old object, and nothing new is published when
            # every field is equal: the renderer and the per-node views compare snapshot parts by identity, and
            # each poll's equal but new instance-type limits once made every view stale (docs/performance.md).
            changed = {key: value for key, value in changes.items() if getattr(self.snapshot, key) != value}
            if changed:
                self.snapshot = replace(self.snapshot, **changed)
                self.sink.publish_cloud(self.snapshot)
            self._report(SourceStatus(name=name, up=True, last_success=wall,
                                      last_duration=time.monotonic() - started))
            return True
        self._report(SourceStatus(name=name, up=False, error=error,
                                  last_success=previous.last_success if previous else None,
                                  last_duration=time.monotonic() - started))
        return False

    def _report(self, status: SourceStatus) -> None:
        self.statuses[status.name] = status
        self.sink.report(status)

    # ------------------------------------------------------------------ steps

    async def _poll_vswitches(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        """The VPC's vSwitches, listed by VpcId; a target vSwitch the listing lacks (another VPC, or
        gone) is asked for by its single ID, like Terway's DescribeVSwitchByID
        (pkg/aliyun/client/vpc_service.go at v1.17.5), and the answer is cached.

        Calls: ceil(vSwitches in the VPC / 50) pages, plus one per target outside the listing whose
        cached answer is older than `vswitch_lookup_ttl`; never per node. When no VPC is known yet
        (none configured, none found before), targets are asked for one by one until one names its VPC.
        """
        now = time.time()
        vpc_id = t.vpc_id or self.snapshot.vpc_id
        looked_up: dict[str, VSwitch | None] = {}
        if not vpc_id:
            if not t.vswitch_ids:
                raise StepError("no vSwitch IDs and no VPC ID to list vSwitches for")
            for vsw_id in sorted(t.vswitch_ids):
                vsw = looked_up[vsw_id] = await self._vswitch_by_id(client, vsw_id, now)
                if vsw is not None and vsw.vpc_id:
                    vpc_id = vsw.vpc_id
                    break
        listed = {v.vswitch_id: v for v in await self._list_vswitches(client, vpc_id)} if vpc_id else {}
        for vsw_id in listed:  # the listing is fresher than any single-ID answer
            self._vswitch_cache.pop((client.region_id, vsw_id), None)
        missing: frozenset[str]
        if not t.vswitch_ids:
            found, missing = listed, frozenset()
        else:
            found = {}
            for vsw_id in sorted(t.vswitch_ids):
                vsw = listed.get(vsw_id)
                if vsw is None:
                    vsw = looked_up[vsw_id] if vsw_id in looked_up else await self._vswitch_by_id(client, vsw_id, now)
                if vsw is not None:
                    found[vsw_id] = vsw
            missing = t.vswitch_ids - found.keys()
            if not found:
                # Every target missing at once is not N deleted vSwitches but a source problem (wrong
                # region, endpoint or account): report it as such, keep the last good answer, and ask
                # again next poll rather than trusting these "not found" answers for a whole TTL.
                for vsw_id in t.vswitch_ids:
                    self._vswitch_cache.pop((client.region_id, vsw_id), None)
                raise StepError(
                    f"DescribeVSwitches: none of the {len(t.vswitch_ids)} configured vSwitches exists in region "
                    f"{client.region_id} for these credentials (listed VPC {vpc_id or 'unknown'}: "
                    f"{len(listed)} vSwitches; then asked by ID); check the region, the endpoint and the "
                    f"account before suspecting the vSwitches; keeping the last good values")
        changes: dict[str, Any] = {"vswitches": found, "missing_vswitches": frozenset(missing),
                                   "region_id": client.region_id}
        vpcs = Counter(v.vpc_id for v in found.values() if v.vpc_id)
        changes["vpc_id"] = t.vpc_id or (vpcs.most_common(1)[0][0] if vpcs else vpc_id or self.snapshot.vpc_id)
        return changes

    async def _list_vswitches(self, client: CloudClient, vpc_id: str) -> list[VSwitch]:
        """Every vSwitch of a VPC: DescribeVSwitches(VpcId, PageSize=50, PageNumber=1, 2, ...) until a
        short page or TotalCount (the reference documents PageNumber/PageSize paging, no NextToken)."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            def build(page: int = page) -> DescribeVSwitchesRequest:
                req = DescribeVSwitchesRequest()
                req.set_VpcId(vpc_id)
                req.set_PageSize(VSWITCH_PAGE_SIZE)
                req.set_PageNumber(page)
                return req
            body = await client.call("DescribeVSwitches", build)
            batch = parse.vswitches(body)
            items.extend(batch)
            total = parse._int(body.get("TotalCount"), default=len(items))
            if len(batch) < VSWITCH_PAGE_SIZE or len(items) >= total:
                break
        return parse_items(items, parse.parse_vswitch, "DescribeVSwitches")

    async def _vswitch_by_id(self, client: CloudClient, vswitch_id: str, now: float) -> VSwitch | None:
        """One vSwitch by its ID (DescribeVSwitches with VSwitchId only, as Terway asks), or None when
        the answer is empty; answers are cached for `vswitch_lookup_ttl`."""
        if not ids.well_formed("vswitch", vswitch_id):
            self._warn_malformed("vSwitch", vswitch_id)
            return None  # cannot exist: reported missing, never sent
        key = (client.region_id, vswitch_id)
        cached = self._vswitch_cache.get(key)
        if cached is not None and now - cached[1] <= self.settings.vswitch_lookup_ttl:
            return cached[0]

        def build() -> DescribeVSwitchesRequest:
            req = DescribeVSwitchesRequest()
            req.set_VSwitchId(vswitch_id)
            return req
        body = await client.call("DescribeVSwitches", build)
        parsed = parse_items(parse.vswitches(body), parse.parse_vswitch, "DescribeVSwitches")
        vsw = next((v for v in parsed if v.vswitch_id == vswitch_id), None)
        self._vswitch_cache[key] = (vsw, now)
        return vsw

    async def _list_enis(self, client: CloudClient, vpc_id: str, status: str = "") -> list[Eni]:
        def build(token: str) -> DescribeNetworkInterfacesRequest:
            req = DescribeNetworkInterfacesRequest()
            req.set_VpcId(vpc_id)
            if status:
                req.set_Status(status)
            req.set_MaxResults(ENI_PAGE_SIZE)
            return req
        # Parse each page as it arrives: the census of a 5,000-node VPC is 80 pages, and
        # holding them all raw took 250 MB that the parsed ENIs' strings then kept pinned.
        pages = await token_pages(client, "DescribeNetworkInterfaces", build, lambda body: parse_items(
            parse.network_interfaces(body), parse.parse_eni, "DescribeNetworkInterfaces"))
        return [eni for page in pages for eni in page]

    async def _poll_leaks(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        if not t.vpc_id:
            raise StepError("VPC unknown: set --vpc-id or configure vSwitches")
        enis = await self._list_enis(client, t.vpc_id, status="Available")
        return {"detached_enis": detached_terway_enis(enis)}

    async def _poll_quota(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        try:
            quota, usage = await self._quota_center(client)
        except (CloudApiError, ValueError) as first:
            log.info("Quota Center failed (%s); falling back to DescribeAccountAttributes", first)
            try:
                quota, usage = await self._account_attributes(client), None
            except CloudApiError as second:
                raise StepError(f"{first}; fallback {second}") from None
        self._usage_from_census = usage is None
        census = self.snapshot.census
        source = QUOTA_CENTER if usage is not None else None
        if usage is None and census is not None:
            usage, source = census_quota_usage(census), VPC_CENSUS
        return {"eni_quota": quota, "eni_quota_usage": usage, "eni_quota_usage_source": source}

    async def _quota_center(self, client: CloudClient) -> tuple[int, int | None]:
        def build() -> GetProductQuotaRequest:
            req = GetProductQuotaRequest()
            req.set_ProductCode("ecs")
            req.set_QuotaActionCode(ENI_QUOTA_CODE)
            req.set_Dimensionss([{"Key": "regionId", "Value": client.region_id}])
            return req
        return parse.product_quota(await client.call("GetProductQuota", build))

    async def _account_attributes(self, client: CloudClient) -> int:
        def build() -> DescribeAccountAttributesRequest:
            req = DescribeAccountAttributesRequest()
            req.set_AttributeNames(["max-elastic-network-interfaces"])
            return req
        body = await client.call("DescribeAccountAttributes", build)
        try:
            return parse.account_eni_quota(body)
        except ValueError as err:
            raise StepError(f"DescribeAccountAttributes: {err}") from None

    async def _poll_instance_types(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        now = time.time()
        due = {it for it in t.instance_types
               if it not in self._type_cache or now - self._type_cache[it][1] > self.settings.instance_type_ttl}
        for chunk in chunks(due, INSTANCE_TYPES_PER_CALL):
            found = {lim.instance_type: lim for lim in await self._describe_instance_types(client, chunk)}
            for it in chunk:  # an unknown type is cached too, so it is not asked every poll
                self._type_cache[it] = (found.get(it), now)
        limits = {it: self._type_cache[it][0] for it in sorted(t.instance_types)}
        return {"instance_types": {it: lim for it, lim in limits.items() if lim is not None}}

    async def _describe_instance_types(self, client: CloudClient, types: list[str]) -> list[InstanceTypeLimits]:
        def build(token: str) -> DescribeInstanceTypesRequest:
            req = DescribeInstanceTypesRequest()
            req.set_InstanceTypess(types)
            req.set_MaxResults(INSTANCE_TYPE_PAGE_SIZE)
            return req
        bodies = await token_pages(client, "DescribeInstanceTypes", build)
        items = [item for body in bodies for item in parse.instance_types(body)]
        return parse_items(items, parse.parse_instance_type, "DescribeInstanceTypes")

    async def _poll_security_groups(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        found = {}
        asked = {sg for sg in t.security_group_ids if ids.well_formed("security_group", sg)}
        for sg in t.security_group_ids - asked:
            self._warn_malformed("security group", sg)  # cannot exist: reported missing, never sent
        for chunk in chunks(asked, SECURITY_GROUPS_PER_CALL):
            def build(token: str, chunk: list[str] = chunk) -> DescribeSecurityGroupsRequest:
                req = DescribeSecurityGroupsRequest()
                req.set_SecurityGroupIds(json.dumps(chunk))
                req.set_MaxResults(SECURITY_GROUP_PAGE_SIZE)
                return req
            bodies = await token_pages(client, "DescribeSecurityGroups", build)
            items = [item for body in bodies for item in parse.security_groups(body)]
            for sg in parse_items(items, parse.parse_security_group, "DescribeSecurityGroups"):
                if sg.security_group_id in t.security_group_ids:
                    found[sg.security_group_id] = sg
        return {"security_groups": found, "missing_security_groups": frozenset(t.security_group_ids - found.keys())}

    async def _run_census(self, client: CloudClient, t: CloudTargets) -> dict[str, Any]:
        if not t.vpc_id:
            raise StepError("VPC unknown: set --vpc-id or configure vSwitches")
        census = build_census(await self._list_enis(client, t.vpc_id), time.time())
        changes: dict[str, Any] = {"census": census}
        if self._usage_from_census:
            changes["eni_quota_usage"] = census_quota_usage(census)
            changes["eni_quota_usage_source"] = VPC_CENSUS
        return changes
