"""The cloud source against the simulated cloud: settings, credentials and counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from terway_exporter.collectors.base import Collector
from terway_exporter.model.cloud import CloudTargets
from terway_exporter.model.state import ClusterState
from terway_exporter.sources.cloud.settings import CloudSettings
from terway_simulator.cloud_api import start_cloud_simulator
from terway_simulator.world import World


@dataclass
class SimulatedCloud:
    url: str
    app: web.Application

    async def calls(self) -> dict[str, Any]:
        return await _get_json(f"{self.url}/_sim/cloud/calls")

    async def requests(self) -> list[dict[str, Any]]:
        return (await _get_json(f"{self.url}/_sim/cloud/requests"))["requests"]

    async def reset(self) -> None:
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}/_sim/cloud/reset") as resp:
            resp.raise_for_status()


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


@asynccontextmanager
async def simulated_cloud(world: World) -> AsyncIterator[SimulatedCloud]:
    runner, url = await start_cloud_simulator(world)
    try:
        yield SimulatedCloud(url, runner.app)
    finally:
        await runner.cleanup()


def static_env(world: World, secret: str | None = None) -> dict[str, str]:
    """The environment of a pod given the world's static AccessKey (no metadata service)."""
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": world.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret or world.access_key_secret,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
    }


def settings_for(world: World, url: str, targets: CloudTargets | None = None, **overrides: Any) -> CloudSettings:
    """Every endpoint on the simulator; fast retries so fault tests stay quick. `targets` (what the
    cluster would name, see targets_for) are given as the flags would give them."""
    values: dict[str, Any] = dict(region_id=world.region_id, ecs_endpoint=url, vpc_endpoint=url,
                                  quotas_endpoint=url, api_rate=200.0, retry_base_delay=0.01,
                                  retry_max_delay=0.05, request_timeout=5.0)
    if targets is not None:
        values.update(region_id=targets.region_id or world.region_id, vpc_id=targets.vpc_id,
                      vswitch_ids=targets.vswitch_ids, security_group_ids=targets.security_group_ids,
                      instance_types=targets.instance_types)
    values.update(overrides)
    return CloudSettings(**values)


def targets_for(world: World) -> CloudTargets:
    """What the runtime would derive from the world's cluster."""
    return CloudTargets(
        region_id=world.region_id,
        vswitch_ids=frozenset(world.vswitches),
        security_group_ids=frozenset(world.security_groups),
        instance_types=frozenset(n.instance_type for n in world.nodes.values()),
    )


class _Adapter:
    def __init__(self, state: ClusterState, collectors: Iterable[Collector]) -> None:
        self.state, self.collectors = state, tuple(collectors)

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect(self.state)


def render(state: ClusterState, collectors: Iterable[Collector]) -> str:
    """The classic text exposition of `collectors` over `state`, via prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Adapter(state, collectors))
    return generate_latest(registry).decode()
