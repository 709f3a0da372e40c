"""`terway-exporter demo`: the simulated cloud and cluster, and this exporter serving against them.

The simulators are terway_simulator's (started with its public `start_simulators`); the wiring
that needs the exporter (its options, its Runtime) lives here, on the exporter's side, because the
simulator is the specification the exporter is tested against and imports nothing from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import replace

from terway_simulator.run import start_simulators
from terway_simulator.world import World

from .config import Options, resolve
from .runtime import Runtime
from .sources.kube.events import ALERT_WINDOW_SECONDS

# The demo polls the (simulated) cloud faster than the production defaults.
DEMO_INTERVALS = {"cloud_poll_interval": "15s", "eni_census_interval": "60s"}


async def run_demo(world: World, host: str, port: int, base_options: Options) -> None:
    """`terway-exporter demo`: simulators plus an exporter serving against them. SIGTERM/SIGINT stop
    the exporter as in `serve` (runtime.py's one signal handler), then the simulators (`finally`)."""
    kubeconfig = os.path.join(tempfile.mkdtemp(prefix="terway-demo-"), "kubeconfig")
    sims = await start_simulators(world, kubeconfig)
    os.environ.update(sims.exporter_environment(world))
    flags = {
        "ecs_endpoint": sims.cloud_url, "vpc_endpoint": sims.cloud_url, "quotas_endpoint": sims.cloud_url,
        "kubeconfig": kubeconfig, "region": world.region_id,
        "log_level": base_options.log_level, "log_format": base_options.log_format,
    }
    if base_options.web_config_file:
        flags["web_config_file"] = base_options.web_config_file
    # A demo should show change within seconds; the environment may still choose (tests poll faster).
    for option, value in DEMO_INTERVALS.items():
        if not os.environ.get(f"TERWAY_EXPORTER_{option.upper()}"):
            flags[option] = value
    # The scenario's recent events happened while this exporter was (as the demo pretends) already running:
    # those of the alerts' window count, as they would have (a real restart does not re-count them).
    options = replace(resolve("serve", flags, os.environ), events_since=world.started_at - ALERT_WINDOW_SECONDS)
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    runtime = Runtime(options)
    server = asyncio.create_task(runtime.serve(host, port, started=started))
    try:
        # The server task ends first when it cannot start (its error, such as a port in use, is raised).
        await asyncio.wait([started, server], return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            await server
        bound = started.result()
        shown = bound[0] if bound[0] not in ("0.0.0.0", "::") else "127.0.0.1"
        scheme = runtime.url_scheme
        print(f"terway-exporter demo: scenario {world.name!r} ({len(world.nodes)} nodes)", flush=True)
        print(f"  metrics:    {scheme}://{shown}:{bound[1]}/metrics", flush=True)
        print(f"  status:     {scheme}://{shown}:{bound[1]}/", flush=True)
        print(f"  cloud APIs: {sims.cloud_url}", flush=True)
        print(f"  API server: {sims.kube_url} (kubeconfig {kubeconfig})", flush=True)
        print("  Ctrl-C to stop", flush=True)
        await server
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await server
        await sims.close()
