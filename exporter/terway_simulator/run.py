"""Run the simulated cloud and Kubernetes APIs (`terway-exporter simulate`).

`simulate` also serves the simulated STS (AssumeRoleWithOIDC) and ECS metadata service of
credentials_api.py on a port of its own, issuing temporary credentials the simulated cloud accepts,
and gives its API server a restart hook (POST /_sim/kube/restart, see kube_api.py).

`terway-exporter demo` starts the same simulators with `start_simulators` and runs the exporter
against them; that wiring lives on the exporter's side (its `demo` module): this package is
the specification the exporter is tested against and imports nothing from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from .world import World

log = logging.getLogger(__name__)


@dataclass
class Simulators:
    cloud_url: str
    kube_url: str
    kubeconfig: str
    runners: list[Any]  # None while the API server is down for a restart
    credentials_url: str = ""

    def exporter_environment(self, world: World) -> dict[str, str]:
        """The variables an exporter needs to talk to these simulators."""
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": world.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": world.access_key_secret,
            "ALIBABA_CLOUD_REGION_ID": world.region_id,
            "KUBECONFIG": self.kubeconfig,
        }

    async def close(self) -> None:
        for runner in self.runners:
            if runner is not None:
                await runner.cleanup()


async def start_simulators(world: World, kubeconfig: str, host: str = "127.0.0.1",
                           cloud_port: int = 0, kube_port: int = 0) -> Simulators:
    from .cloud_api import start_cloud_simulator
    from .kube_api import simulator_of, start_kube_simulator, write_kubeconfig

    cloud_runner, cloud_url = await start_cloud_simulator(world, host=host, port=cloud_port)
    sims = Simulators(cloud_url, "", kubeconfig, [cloud_runner, None])
    restarting = False

    async def restart_kube(down_seconds: float) -> None:
        """Stop the API server, wait, serve the same store again on the same port."""
        nonlocal restarting
        old = sims.runners[1]
        if restarting or old is None:
            return
        restarting = True
        try:
            sims.runners[1] = None
            await old.cleanup()
            log.warning("simulated API server stopped for %.1f s", down_seconds)
            await asyncio.sleep(down_seconds)
            sims.runners[1], _ = await start_kube_simulator(world, host=host, port=bound_port, sim=simulator_of(old),
                                                            restart=restart_kube)
            log.warning("simulated API server serving again")
        finally:
            restarting = False

    sims.runners[1], sims.kube_url = await start_kube_simulator(world, host=host, port=kube_port, restart=restart_kube)
    bound_port = int(sims.kube_url.rsplit(":", 1)[1])
    write_kubeconfig(kubeconfig, sims.kube_url)
    return sims


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_simulators(world: World, kubeconfig: str, cloud_port: int = 0, kube_port: int = 0) -> None:
    """`terway-exporter simulate`: print the endpoints and an env file, serve until stopped."""
    from .credentials_api import start_credentials_simulator

    sims = await start_simulators(world, kubeconfig, cloud_port=cloud_port, kube_port=kube_port)
    credentials_runner, sims.credentials_url = await start_credentials_simulator(world)
    sims.runners.append(credentials_runner)
    env_file = os.path.join(os.path.dirname(os.path.abspath(kubeconfig)), "exporter.env")
    with open(env_file, "w", encoding="utf-8") as handle:
        for key, value in sims.exporter_environment(world).items():
            handle.write(f"export {key}={value}\n")
    print(f"scenario:   {world.name} ({len(world.nodes)} nodes)", flush=True)
    print(f"cloud APIs: {sims.cloud_url}  (use for --ecs-endpoint, --vpc-endpoint, --quotas-endpoint)", flush=True)
    print(f"API server: {sims.kube_url}", flush=True)
    print(f"STS + ECS metadata: {sims.credentials_url}  (temporary credentials; see credentials_api.py)",
          flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    print(f"env file:   {env_file}  (source it: simulator credentials, region and KUBECONFIG)", flush=True)
    try:
        await _stop_event().wait()
    finally:
        await sims.close()
