"""The simulated Alibaba Cloud RPC APIs (ECS, VPC, Quota Center) on one HTTP port.

    app = make_cloud_app(world)                       # aiohttp Application
    runner, base_url = await start_cloud_simulator(world)   # serving on 127.0.0.1:<free port>

Point the legacy SDK (or the exporter's --ecs-endpoint / --vpc-endpoint / --quotas-endpoint)
at `base_url`: requests are routed by their `Version` (the product) and `Action`, checked
like the real gateway does (signature, credentials, nonce, timestamp), checked against what the
action's API reference documents (cloud_contract.py), then answered from the World, so every
call sees the world as it is now. The scenario's `cloud.faults`
(see cloud_faults.py) inject throttling, server errors, RAM denials and latency.

Control endpoints for tests and the benchmark:
- `GET /_sim/cloud/calls`: requests per action, by result code and HTTP status;
- `GET /_sim/cloud/requests`: the most recent requests with their time (for rate checks) and
  their action parameters (the common signature parameters left out);
- `POST /_sim/cloud/reset`: zero the counters and restart fault call numbering;
- `GET|POST /_sim/cloud/faults`: read, or replace at runtime, the `cloud.faults` mapping (the body
  is the whole mapping, as in a scenario file; `{}` clears every fault). A bad mapping is a 400
  and changes nothing. Calls already waiting out a `delay_seconds` keep their delay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import cloud_ecs, cloud_quotas, cloud_vpc
from .cloud_auth import NonceLedger, authenticate, parse_params
from .cloud_contract import COMMON, check_documented
from .cloud_faults import FaultInjector, parse_faults
from .cloud_http import ApiError, error_response, json_response, new_request_id, start_app
from .world import ScenarioError, World

log = logging.getLogger(__name__)

Handler = Callable[[World, dict[str, str]], dict[str, Any]]
RECENT_REQUESTS = 20000


@dataclass(frozen=True)
class Product:
    """One RPC product: its name in error links, its RAM service prefix and host, its actions."""

    name: str
    ram_service: str
    regional: bool
    actions: dict[str, Handler]

    def host_id(self, region: str) -> str:
        return f"{self.ram_service}.{region}.aliyuncs.com" if self.regional else f"{self.ram_service}.aliyuncs.com"


PRODUCTS: dict[str, Product] = {
    "2014-05-26": Product("Ecs", "ecs", True, {
        "DescribeNetworkInterfaces": cloud_ecs.describe_network_interfaces,
        "DescribeInstanceTypes": cloud_ecs.describe_instance_types,
        "DescribeSecurityGroups": cloud_ecs.describe_security_groups,
        "DescribeAccountAttributes": cloud_ecs.describe_account_attributes,
        "DescribeInstances": cloud_ecs.describe_instances,
        "DescribeVSwitches": cloud_vpc.describe_vswitches,  # the deprecated ECS twin of the VPC action
    }),
    "2016-04-28": Product("Vpc", "vpc", True, {"DescribeVSwitches": cloud_vpc.describe_vswitches}),
    "2020-05-10": Product("quotas", "quotas", False, {"GetProductQuota": cloud_quotas.get_product_quota}),
}
UNKNOWN_PRODUCT = Product("Ecs", "ecs", True, {})


@dataclass
class CallCounters:
    """Requests seen per action: by result code ("Success" or the error code) and HTTP status."""

    codes: dict[str, dict[str, int]] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))

    def record(self, action: str, code: str, status: int, at: float, params: dict[str, str] | None = None) -> None:
        by_code = self.codes.setdefault(action, {})
        by_code[code] = by_code.get(code, 0) + 1
        by_status = self.statuses.setdefault(action, {})
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        shown = {k: v for k, v in (params or {}).items() if k not in COMMON or k == "RegionId"}
        self.recent.append({"time": at, "action": action, "code": code, "status": status, "params": shown})

    def as_json(self) -> dict[str, Any]:
        actions = {
            action: {"total": sum(codes.values()), "codes": dict(codes), "statuses": dict(self.statuses[action])}
            for action, codes in sorted(self.codes.items())
        }
        return {"total": sum(a["total"] for a in actions.values()), "actions": actions}

    def reset(self) -> None:
        self.codes.clear()
        self.statuses.clear()
        self.recent.clear()


@dataclass
class CloudState:
    """Everything one simulated cloud app keeps between requests."""

    world: World
    faults: FaultInjector
    calls: CallCounters = field(default_factory=CallCounters)
    nonces: NonceLedger = field(default_factory=NonceLedger)
    clock: Callable[[], float] = time.time


CLOUD_STATE = web.AppKey("cloud_state", CloudState)


def make_cloud_app(world: World, clock: Callable[[], float] = time.time) -> web.Application:
    """The ECS + VPC + Quotas RPC app for `world`; raises ScenarioError for bad `cloud.faults`."""
    try:
        faults = FaultInjector(parse_faults(world.cloud), world.cloud.get("faults"))
    except (TypeError, ValueError) as err:
        raise ScenarioError(f"scenario {world.name!r}: {err}") from err
    app = web.Application()
    app[CLOUD_STATE] = CloudState(world=world, faults=faults, clock=clock)
    app.router.add_get("/_sim/cloud/calls", _calls)
    app.router.add_get("/_sim/cloud/requests", _recent)
    app.router.add_post("/_sim/cloud/reset", _reset)
    app.router.add_get("/_sim/cloud/faults", _faults)
    app.router.add_post("/_sim/cloud/faults", _faults)
    app.router.add_route("*", "/", _rpc)
    return app


async def start_cloud_simulator(world: World, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve the cloud app; returns (runner, base_url). Stop it with `await runner.cleanup()`."""
    return await start_app(make_cloud_app(world), host, port)


def cloud_state(app: web.Application) -> CloudState:
    """The app's counters, fault state and world, for in-process tests."""
    return app[CLOUD_STATE]


async def _rpc(request: web.Request) -> web.Response:
    state = request.app[CLOUD_STATE]
    params = parse_params(request.query_string, await request.read(), request.content_type)
    request_id = new_request_id()
    action = params.get("Action", "")
    product = PRODUCTS.get(params.get("Version", ""), UNKNOWN_PRODUCT)
    try:
        body = await _answer(state, request.method, params, product)
    except ApiError as err:
        state.calls.record(action or "(none)", err.code, err.status, state.clock(), params)
        return error_response(err, request_id, product.host_id(state.world.region_id), product.name)
    state.calls.record(action, "Success", 200, state.clock(), params)
    return json_response({"RequestId": request_id, **body}, 200, request_id)


async def _answer(state: CloudState, method: str, params: dict[str, str], product: Product) -> dict[str, Any]:
    handler = _route(params, product)
    authenticate(state.world, method, params, state.nonces, state.clock())
    action = params["Action"]
    state.faults.follow(state.world.cloud)
    decision = state.faults.decide(action, f"{product.ram_service}:{action}", state.clock())
    if decision.delay_seconds:
        await asyncio.sleep(decision.delay_seconds)
    if decision.error:
        raise decision.error
    check_documented(params)  # only the parameter forms the action's API reference documents
    try:
        return handler(state.world, params)
    except ApiError:
        raise
    except Exception:  # a world the view cannot render: answer like the real API's 500, keep serving
        log.exception("simulated %s failed on this world; answering InternalError", action)
        raise ApiError("InternalError") from None


def _route(params: dict[str, str], product: Product) -> Handler:
    for name in ("Version", "Action"):
        if not params.get(name):
            raise ApiError("MissingParameter", message=(
                f"The input parameter \"{name}\" that is mandatory for processing this request is not supplied."))
    if product is UNKNOWN_PRODUCT:
        raise ApiError("InvalidVersion")
    handler = product.actions.get(params["Action"])
    if handler is None:
        raise ApiError("InvalidAction.NotFound")
    return handler


async def _calls(request: web.Request) -> web.Response:
    return web.json_response(request.app[CLOUD_STATE].calls.as_json())


async def _recent(request: web.Request) -> web.Response:
    return web.json_response({"requests": list(request.app[CLOUD_STATE].calls.recent)})


async def _reset(request: web.Request) -> web.Response:
    state = request.app[CLOUD_STATE]
    state.calls.reset()
    state.faults.reset()
    return web.json_response({"reset": True})


async def _faults(request: web.Request) -> web.Response:
    state = request.app[CLOUD_STATE]
    if request.method == "POST":
        faults = await request.json() if request.can_read_body else {}
        try:
            if not isinstance(faults, dict):
                raise ValueError(f"expected a mapping of actions to rules, got {type(faults).__name__}")
            parse_faults({"faults": faults})
        except (TypeError, ValueError) as err:
            return web.json_response({"error": str(err)}, status=400)
        state.world.cloud = {**state.world.cloud, "faults": faults}
        state.faults.follow(state.world.cloud)
    return web.json_response({"faults": state.world.cloud.get("faults") or {}})
