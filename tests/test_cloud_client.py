"""The pieces under the cloud source: rate limiter, endpoints and proxies, and the
long-running loop (against the simulated cloud)."""

from __future__ import annotations

import asyncio
import copy

import pytest

from support.clock import ManualClock
from support.cloud import settings_for, simulated_cloud, static_env, targets_for
from support.waiting import wait_until_async
from terway_exporter.hub import SnapshotHub
from terway_exporter.sources.cloud.client import endpoint_url, proxies_for
from terway_exporter.sources.cloud.ratelimit import RateLimiter
from terway_exporter.sources.cloud.source import CloudSource
from terway_simulator.world import build_world, read_scenario


async def test_limiter_spreads_requests_at_the_rate():
    clock = ManualClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    waits = [await limiter.acquire() for _ in range(9)]
    assert waits[0] == 0  # the burst of one
    assert clock.now == pytest.approx(2.0)  # 8 more at 4/s
    assert all(w == pytest.approx(0.25) for w in waits[1:])


async def test_limiter_halves_after_throttling_and_recovers_by_doubling():
    clock = ManualClock()
    limiter = RateLimiter(8.0, cooldown=60.0, clock=clock, sleep=clock.sleep)
    limiter.penalize()
    limiter.penalize()
    assert limiter.rate == 2.0
    for _ in range(10):
        limiter.penalize()
    assert limiter.rate == 0.5  # the floor: 1/16 of the configured rate
    clock.now += 61
    await limiter.acquire()
    assert limiter.rate == 1.0
    clock.now += 61 * 3
    for _ in range(3):
        await limiter.acquire()
        clock.now += 61
    assert limiter.rate == 8.0


async def test_limiter_serves_concurrent_waiters_without_exceeding_the_rate():
    clock = ManualClock()
    limiter = RateLimiter(16.0, clock=clock, sleep=clock.sleep)
    waits = await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    # All arrive at once and are served in arrival order, one at a time: the first takes the burst, each
    # next one 1/16 s after the one before it.
    assert waits == pytest.approx([n / 16 for n in range(11)])
    assert clock.now == pytest.approx(10 / 16)  # 10 after the first, at 16/s


@pytest.mark.parametrize(("value", "url"), [
    (None, "https://ecs.cn-beijing.aliyuncs.com"),
    ("ecs-vpc.cn-beijing.aliyuncs.com", "https://ecs-vpc.cn-beijing.aliyuncs.com"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
])
def test_endpoint_url(value, url):
    assert endpoint_url(value, "ecs.cn-beijing.aliyuncs.com") == url


@pytest.mark.parametrize(("url", "env", "expected"), [
    ("http://127.0.0.1:9", {"HTTP_PROXY": "http://proxy:3128"}, {"http": None, "https": None}),
    ("http://localhost:9", {"http_proxy": "http://proxy:3128"}, {"http": None, "https": None}),
    ("https://ecs.cn-hangzhou.aliyuncs.com", {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".aliyuncs.com"},
     {"http": None, "https": None}),
    ("https://ecs.cn-hangzhou.aliyuncs.com", {"HTTPS_PROXY": "http://proxy:3128"},
     {"http": None, "https": "http://proxy:3128"}),
    ("https://ecs.cn-hangzhou.aliyuncs.com", {}, {"http": None, "https": None}),
])
def test_proxies_never_capture_loopback(url, env, expected):
    assert proxies_for(url, env) == expected


async def test_run_polls_then_censuses_and_stops_cleanly():
    world = build_world(copy.deepcopy(read_scenario("healthy")))
    async with simulated_cloud(world) as sim:
        hub = SnapshotHub()
        source = CloudSource(hub, settings_for(world, sim.url, targets_for(world), poll_interval=0.2,
                                               census_interval=0.5),
                             env=static_env(world))
        task = asyncio.create_task(source.run())
        try:
            await wait_until_async(lambda: hub.cloud.census is not None, 5, "the first census")

            async def polled_again() -> bool:
                return (await sim.calls())["actions"]["DescribeVSwitches"]["total"] >= 3

            await wait_until_async(polled_again, 10, "DescribeVSwitches to be called three times")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        calls = (await sim.calls())["actions"]
    assert hub.ready() and all(s.up for s in hub.sources.values())
    assert calls["DescribeVSwitches"]["total"] >= 3  # polled again and again
    assert calls["DescribeInstanceTypes"]["total"] == 1  # cached for the TTL
    assert source._executor._shutdown
