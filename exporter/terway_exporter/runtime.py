"""Wiring: sources publish into the hub, the render loop turns changes into an Exposition.

One asyncio process. Each source runs as its own task on its own schedule; blocking
SDK calls go to the cloud source's bounded thread pool; the render loop wakes on a
change (at most once per `render_interval`, plus a periodic tick for age-based
gauges) and renders in a worker thread so scrapes keep being answered meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .collectors.registry import all_collectors, per_node_family_names
from .config import ConfigError, Options
from .findings import evaluate, report_context
from .findings.html import status_page
from .hub import SnapshotHub
from .memory import freeze_survivors, pause_cyclic_gc, release_freed_memory, resume_cyclic_gc
from .model.state import ClusterState, ExporterSettings
from .render import Exposition, Renderer
from .selection import FamilySelection
from .server import make_app
from .webconfig import WebConfigError, load_web_security

if TYPE_CHECKING:  # imported when first used: `check --help` need not load the cloud SDKs and kubernetes
    from .sources.cloud.source import CloudSource
    from .sources.kube.source import KubeSource

log = logging.getLogger(__name__)

# Age-based gauges (oldest waiting pod, lease age...) are refreshed at least this often.
AGE_TICK_SECONDS = 15.0
# A render is followed by at least this many times its own duration without one (see _render_loop),
# but never by more than MAX_RENDER_PAUSE: the exposition must follow the cluster within seconds.
# 30: rendering takes at most about 3% of a core under continuous churn (1/31), whatever the cluster's
# size. At 10 it took 9 to 10% at 5,000 nodes (issue 13's bench: the render's CPU, not the watch
# traffic, was the churn figure), for an exposition fresher than any scrape interval needs: a 0.15 s
# render is now followed by 4.5 s of serving the same bytes, and the 10 s cap holds for larger clusters.
RENDER_PACING = 30.0
MAX_RENDER_PAUSE = 10.0
# While a render thread holds the GIL, the event loop answering scrapes waits up to one switch
# interval for it (5 ms by default, several times per response): 1 ms keeps /metrics fast.
GIL_SWITCH_INTERVAL = 0.001
# Longest wait for the cluster's first list before the first cloud poll (see wait_for_kube_first_sync).
KUBE_FIRST_SYNC_WAIT = 60.0
# The cyclic GC is off until the first complete render, and never longer than this (memory.pause_cyclic_gc):
# a cluster that cannot be listed must not leave it off.
CYCLIC_GC_PAUSE_LIMIT = 120.0
# Longest wait for the tasks to end after a stop; SIGTERM must end the process within 10 s.
SHUTDOWN_GRACE = 5.0


class TaskDied(RuntimeError):
    """A source or the renderer ended unexpectedly: the process must not live on without it."""


@dataclass
class ExpositionHolder:
    current: Exposition | None = None
    page: bytes | None = None  # the status page (`/`), rendered with the exposition

    def get(self) -> Exposition | None:
        return self.current

    def get_page(self) -> bytes | None:
        return self.page


@dataclass
class Runtime:
    """Everything one exporter process runs, built from resolved options."""

    options: Options
    hub: SnapshotHub = field(init=False)
    renderer: Renderer = field(init=False)
    holder: ExpositionHolder = field(default_factory=ExpositionHolder)
    kube_source: KubeSource | None = None
    cloud_source: CloudSource = field(init=False)
    url_scheme: str = "http"  # https once serve() runs with TLS (--web.config.file)
    # Whether the render loop switched the cyclic GC's automatic runs off and has not switched them back on.
    _gc_paused: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        settings = ExporterSettings(leak_grace_period=self.options.leak_grace_period)
        self.hub = SnapshotHub(settings, kube_enabled=not self.options.no_kubernetes)
        selection = FamilySelection(allow=self.options.metric_allowlist, deny=self.options.metric_denylist,
                                    per_node=not self.options.no_node_metrics,
                                    per_node_names=per_node_family_names())
        self.renderer = Renderer(all_collectors(), wake=self.hub.notify_threadsafe, selection=selection)
        if self.hub.kube_enabled:
            self.kube_source = _make_kube_source(self.hub, self.options)
        self.cloud_source = _make_cloud_source(self.hub, self.options, self.kube_source)

    # ------------------------------------------------------------ one-shot (collect)

    async def sync_once(self) -> bool:
        """Run every source once (`collect`, `check`, `capacity`); whether all succeeded. The
        result is in the hub: `self.hub.state()`."""
        self.hub.bind_loop(asyncio.get_running_loop())
        if self.kube_source is not None:
            await self.kube_source.sync_once()
        await self.cloud_source.poll_once()
        await self.cloud_source.census_once()
        return all(s.up for s in self.hub.sources.values() if s.attempted)

    async def collect_once(self) -> tuple[bytes, bool]:
        """Run every source once; return the text exposition and whether all succeeded."""
        ok = await self.sync_once()
        exposition = self.renderer.render(self.hub.state(), self.hub.version)
        return exposition.text, ok

    # ------------------------------------------------------------ long-running (serve)

    async def serve(self, host: str, port: int, stop: asyncio.Event | None = None,
                    started: asyncio.Future | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.hub.bind_loop(loop)
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        try:
            security = load_web_security(self.options.web_config_file, self.hub.counters.report_web_config)
        except WebConfigError as err:
            raise ConfigError(f"--web.config.file: {err}") from None
        stop = stop or _stop_on_signals(loop)
        app = make_app(self.hub, self.holder.get, security=security, status_page=self.holder.get_page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=security.ssl_context if security else None)
        try:
            await site.start()
        except OSError as err:  # port in use, an address not on this host, a name that does not resolve
            await runner.cleanup()
            reason = err.strerror or str(err)
            raise ConfigError(f"--listen-address: cannot listen on {_display_host(host)}:{port}: {reason}") from None
        bound = runner.addresses[0] if runner.addresses else (host, port)
        self.url_scheme = security.scheme if security else "http"
        log.info("serving metrics on %s://%s:%s/metrics", self.url_scheme, _display_host(bound[0]), bound[1])
        if security is not None:
            log.info("web configuration %s: %s", security.path, security.describe())
        if started is not None and not started.done():
            started.set_result(bound)
        tasks = [asyncio.create_task(self._render_loop(), name="render")]
        if security is not None:
            tasks.append(asyncio.create_task(security.watch(), name="web-config"))
        tasks.append(asyncio.create_task(self._run_cloud(), name="cloud"))
        if self.kube_source is not None:
            tasks.append(asyncio.create_task(self.kube_source.run(), name="kubernetes"))
        try:
            await _wait_stop_or_crash(stop, tasks)
        finally:
            log.info("shutting down")
            for task in tasks:
                task.cancel()
            # Bounded: a task that swallows its cancellation must not keep the process alive.
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in stuck:
                log.error("task %s did not stop within %.0f s; exiting without it", task.get_name(), SHUTDOWN_GRACE)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_GRACE):
                    await _close(self.cloud_source)
                    await _close(self.kube_source)
                    await runner.cleanup()

    async def _run_cloud(self) -> None:
        if self.kube_source is not None:
            await wait_for_kube_first_sync(self.hub)
        await self.cloud_source.run()

    async def _render_loop(self) -> None:
        self._gc_paused = pause_cyclic_gc()
        try:
            await self._render_forever()
        finally:
            if self._gc_paused:  # stopped before the first sync was complete
                self._gc_paused = False
                gc.enable()
            # A process that goes on without this loop (a test, an embedding program) gets its heap back
            # as it was: nothing stays frozen, so no cycle among what was frozen outlives it.
            gc.unfreeze()

    async def _render_forever(self) -> None:
        interval = self.options.render_interval
        started = last_tick = time.monotonic()
        tick = 0
        trimmed_after: tuple = ()
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that arrives
            # as the event is set, and the render loop then outlived the shutdown forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(AGE_TICK_SECONDS):
                    await self.hub.changed.wait()
            self.hub.changed.clear()
            if time.monotonic() - last_tick >= AGE_TICK_SECONDS:
                tick, last_tick = tick + 1, time.monotonic()
            state, version = self.hub.state(), self.hub.version
            self.holder.current, self.holder.page, took = await asyncio.to_thread(self._timed_render, state,
                                                                                  version, tick)
            resume_gc = self._gc_paused and (state.complete or time.monotonic() - started > CYCLIC_GC_PAUSE_LIMIT)
            if resume_gc or _large_change(state) != trimmed_after:
                trimmed_after = _large_change(state)
                await asyncio.to_thread(_settle_heap, self._gc_paused, resume_gc)
                self._gc_paused = self._gc_paused and not resume_gc
            # Coalesce bursts of changes into one render, and keep rendering to about
            # 1/RENDER_PACING of the time however large the cluster: a render that took
            # 0.2 s is followed by at least 6 s of serving. `took` is the CPU time of the render's own
            # thread: time spent waiting for a free worker (busy at start-up) once made this pause
            # a minute long, with the first, nearly empty exposition served all that time; and wall
            # time on a starved CPU (a pod at its CPU limit, a busy node) kept it at the 10 s cap, so
            # source_up and every metric could be 10 s late although rendering cost 0.15 s.
            pause = min(max(interval, RENDER_PACING * took), MAX_RENDER_PAUSE)
            if state.complete:
                await asyncio.sleep(pause)
            else:
                # /readyz waits for the first exposition of a complete sync: render it as soon as the last
                # source has had its first try, not up to MAX_RENDER_PAUSE later (at 5,000 nodes the
                # exposition served at /readyz's 200 once lacked every cloud family for 8 s).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self.hub.first_sync_done.wait()

    def _timed_render(self, state: ClusterState, version: int, tick: int) -> tuple[Exposition, bytes | None, float]:
        """The render, and the CPU it took in this thread (what it kept from serving scrapes: the GIL)."""
        started = time.thread_time()
        exposition, page = self._render(state, version, tick)
        return exposition, page, time.thread_time() - started

    def _render(self, state: ClusterState, version: int, tick: int) -> tuple[Exposition, bytes | None]:
        """The exposition and the status page's findings, both from one state (in the render thread)."""
        exposition = self.renderer.render(state, version, tick)
        try:
            page = status_page(evaluate(state), report_context(state))
        except Exception:  # the page must never stop the metrics
            log.exception("could not judge the findings for the status page")
            page = None
        return exposition, page


def _settle_heap(gc_paused: bool, resume_gc: bool) -> None:
    """After a large change: freeze what survived it for the cyclic collector, then return the freed pages to the
    OS. While the collector is paused for the first sync nothing is collected until it resumes (`resume_gc`),
    which collects and freezes once: a full collection per source's first success was the walk the pause saves."""
    if resume_gc:
        resume_cyclic_gc()
    elif not gc_paused:
        freeze_survivors()
    release_freed_memory()


def _large_change(state: ClusterState) -> tuple:
    """Changes after which much parsing memory was just freed: a source's first success (the
    cluster's full lists) and a new ENI census. Trimming then keeps RSS near what is live.
    A source that succeeded once stays counted: one that flaps is not a large change each time."""
    return id(state.cloud.census), frozenset(n for n, s in state.sources.items() if s.last_success is not None)


async def wait_for_kube_first_sync(hub: SnapshotHub, timeout: float = KUBE_FIRST_SYNC_WAIT) -> None:
    """Wait until every Kubernetes source tried its first list (or `timeout` passed).

    The cloud source takes its vSwitch and security-group IDs from the cluster: polling before
    the first list fails for want of targets, and the next try is a whole poll interval away.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kube = [s for name, s in hub.sources.items() if name.startswith("kube_")]
        if kube and all(s.attempted for s in kube):
            return
        await asyncio.sleep(0.1)
    log.warning("the cluster's first list takes over %.0f s; polling the cloud with the targets known so far", timeout)


def _make_cloud_source(hub: SnapshotHub, options: Options, kube_source: KubeSource | None) -> CloudSource:
    from .sources.cloud.settings import CloudSettings
    from .sources.cloud.source import CloudSource

    settings = CloudSettings(
        region_id=options.region, vpc_id=options.vpc_id,
        vswitch_ids=frozenset(options.vswitch_ids), security_group_ids=frozenset(options.security_group_ids),
        # Not a flag: `capacity` puts in the instance types of its what-ifs.
        instance_types=options.instance_types,
        ecs_endpoint=options.ecs_endpoint, vpc_endpoint=options.vpc_endpoint,
        quotas_endpoint=options.quotas_endpoint, poll_interval=options.cloud_poll_interval,
        census_interval=options.eni_census_interval, api_rate=options.cloud_api_rate,
        instance_type_ttl=options.instance_type_cache_ttl,
    )
    cluster = None if kube_source is None else (lambda: kube_source.latest)
    return CloudSource(hub, settings, cluster=cluster)


def _make_kube_source(hub: SnapshotHub, options: Options) -> KubeSource:
    from .sources.kube.source import KubeSettings, KubeSource

    return KubeSource(hub, KubeSettings(kubeconfig=options.kubeconfig, namespace=options.terway_namespace,
                                        events_since=options.events_since))


async def _close(source: Any) -> None:
    close = getattr(source, "close", None)
    if close is None:
        return
    result = close()
    if asyncio.iscoroutine(result):
        await result


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop_on_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """SIGTERM/SIGINT stop the exporter (a second one exits at once); SIGHUP is ignored.

    The configuration is read once at start (flags, environment, file), so there is nothing to
    reload: SIGHUP, which would otherwise kill the process, is logged and ignored.
    """
    stop = asyncio.Event()

    def on_stop_signal(name: str) -> None:
        if stop.is_set():
            log.error("%s again during shutdown: exiting now", name)
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_stop_signal, sig.name)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, log.warning,
                                "SIGHUP ignored: the configuration is read at start only; restart to change it")
    return stop


async def _wait_stop_or_crash(stop: asyncio.Event, tasks: list[asyncio.Task]) -> None:
    """Return when asked to stop; raise TaskDied if a source or the renderer ended on its own."""
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in done:
        if task is stopper or task.cancelled():
            continue
        error = task.exception()
        # A source's run() never returns while the process is meant to live: ending is dying.
        log.error("task %s ended unexpectedly: %s", task.get_name(),
                  f"{type(error).__name__}: {error}" if error is not None else "returned")
        raise TaskDied(task.get_name()) from error
