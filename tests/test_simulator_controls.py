"""The simulators' runtime controls the chaos soak (bench/soak.py) plays its faults with:
cloud faults replaced while serving, raw objects put into the API server's store, an API server
restart on its own port, watches ended cleanly, and the simulated STS steered and inspected."""

from __future__ import annotations

import aiohttp
import pytest

from support.waiting import wait_until_async
from terway_simulator.credentials_api import start_credentials_simulator
from terway_simulator.run import start_simulators
from test_simulator_cloud import Sim, _clean_env, small_world, vswitches  # noqa: F401  (_clean_env: autouse)

TOKEN = {"Authorization": "Bearer terway-sim-token"}


async def post(url: str, body) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_cloud_faults_are_replaced_at_runtime(serve):
    sim: Sim = await serve(small_world())
    assert (await sim.call(vswitches(VpcId="vpc-unit")))["TotalCount"] == 2
    status, body = await post(f"{sim.base_url}/_sim/cloud/faults", {"*": {"code": "ServiceUnavailable"}})
    assert status == 200 and body == {"faults": {"*": {"code": "ServiceUnavailable"}}}
    assert (await sim.fail(vswitches(VpcId="vpc-unit"))).get_error_code() == "ServiceUnavailable"
    status, body = await post(f"{sim.base_url}/_sim/cloud/faults", {"*": {"no_such_key": 1}})
    assert status == 400 and "no_such_key" in body["error"]
    assert (await get(f"{sim.base_url}/_sim/cloud/faults"))[1]["faults"] == {"*": {"code": "ServiceUnavailable"}}
    await post(f"{sim.base_url}/_sim/cloud/faults", {})
    assert (await sim.call(vswitches(VpcId="vpc-unit")))["TotalCount"] == 2


async def test_kube_put_restart_and_a_clean_cut(tmp_path):
    world = small_world()
    sims = await start_simulators(world, str(tmp_path / "kubeconfig"))
    try:
        kube = sims.kube_url
        bad = {"metadata": {"name": "bad-node", "labels": ["not", "a", "map"]}}
        status, _ = await post(f"{kube}/_sim/kube/put", {"resource": "nodes", "object": bad})
        assert status == 200
        assert (await get(f"{kube}/api/v1/nodes/bad-node", TOKEN))[1]["metadata"]["labels"] == ["not", "a", "map"]
        assert (await post(f"{kube}/_sim/kube/put", {"resource": "pods", "object": {"metadata": {"name": "x"}}}))[0] \
            == 400, "a namespaced object needs its namespace"
        rv = (await get(f"{kube}/_sim/kube/stats"))[1]["resourceVersion"]

        status, body = await post(f"{kube}/_sim/kube/restart", {"down_seconds": 0.5})
        assert status == 202 and body["restarting"]
        async with aiohttp.ClientSession() as session:
            refused = False

            async def down_then_up() -> bool:  # down, then up again on the same port, with the same store
                nonlocal refused
                try:
                    async with session.get(f"{kube}/_sim/kube/stats") as resp:
                        if refused:
                            assert (await resp.json())["resourceVersion"] >= rv
                            return True
                except aiohttp.ClientConnectionError:
                    refused = True
                return False

            await wait_until_async(down_then_up, 10, lambda: "the API server to be refused" if not refused
                                   else "the API server to answer again", ignore=())
        assert (await get(f"{kube}/api/v1/nodes/bad-node", TOKEN))[0] == 200

        async with aiohttp.ClientSession(headers=TOKEN) as session:
            async with session.get(f"{kube}/api/v1/nodes?watch=true&resourceVersion={rv}") as watch:
                await wait_until_async(lambda: watches_open(kube), 5, "the watch to be open")
                await post(f"{kube}/_sim/kube/cut-watches", {"mode": "close"})
                body = await watch.read()  # ends, cleanly: no partial line
                assert all(line.startswith(b"{") and line.endswith(b"}") for line in body.splitlines())
    finally:
        await sims.close()


async def test_sts_is_steered_and_shows_what_it_issued():
    world = small_world()
    runner, url = await start_credentials_simulator(world)
    try:
        status, body = await post(f"{url}/_sim/credentials/config",
                                  {"oidc_token": "new-token", "expiration_seconds": 960})
        assert status == 200 and body == {"oidc_token_required": True, "expiration_seconds": 960.0}
        query = "Action=AssumeRoleWithOIDC&RoleArn=acs:ram::1:role/r&OIDCProviderArn=acs:ram::1:oidc-provider/p"
        assert (await get(f"{url}/?{query}&OIDCToken=old-token"))[0] == 400
        status, body = await get(f"{url}/?{query}&OIDCToken=new-token")
        assert status == 200
        issued = (await get(f"{url}/_sim/credentials/issued"))[1]["credentials"]
        assert [c["security_token"] for c in issued] == [body["Credentials"]["SecurityToken"]]
        assert issued[0]["expires_at"] - issued[0]["issued_at"] == pytest.approx(960)
        calls = (await get(f"{url}/_sim/credentials/calls"))[1]
        assert calls == {"AssumeRoleWithOIDC": 2, "refused:AuthenticationFail.OIDCToken.Invalid": 1}
        assert (await post(f"{url}/_sim/credentials/config", {"other": 1}))[0] == 400
    finally:
        await runner.cleanup()


async def watches_open(kube: str) -> int:
    return (await get(f"{kube}/_sim/kube/stats"))[1]["watches"]
