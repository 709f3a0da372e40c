"""The Kubernetes source: reflectors for every resource in resources.py, one KubeSnapshot.

`run()` keeps a list-then-watch reflector per resource, and publishes a new snapshot
through its sink (the hub) whenever a store changes (bursts coalesced: at most one publish per
`publish_interval`). The first snapshot waits until every reflector has tried its first
list, so collectors never see a half-listed cluster (e.g. nodes without their Node CRs,
which would read as legacy IPAM). `sync_once()` lists everything once for `collect`.

Each `kube_*` source in resources.STATUS_GROUPS is registered up front and reported once
all its reflectors tried a first list; it is up while all of them are.

`terway_nodes` is None only when the Node CRD is not served (legacy IPAM). When listing
the CRs fails (RBAC, API errors) it stays as last listed ({} if never): the failure shows
as `kube_terway_nodes` down, not as a switch to legacy mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes.aio import client, config

from ...backoff import backoff_delay
from ...model.kube import KubeSnapshot
from ...model.status import SourceStatus
from ..sink import SnapshotSink
from .crash import CrashCauses
from .events import EventTally
from .objects import CONTROLPLANE, COREDNS, DAEMONSET, ENI_CONFIG, KUBERNETES_SERVICE
from .pods import join_pod_waits
from .reflector import Reflector, ReflectorSettings, ReflectorStatus, one_line
from .resources import STATUS_GROUPS, read_previous_terway_log, resource_specs

log = logging.getLogger(__name__)

STATUS_REFRESH_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class KubeSettings:
    kubeconfig: str | None = None  # None: the in-cluster service account
    namespace: str = "kube-system"  # where Terway runs
    context: str | None = None  # kubeconfig context; None: the current one
    watch_timeout: int = 300  # seconds a watch stays open before the server ends it
    resync: float = 1800.0  # seconds between full relists of a healthy watch (heals missed events); 0 = never
    crd_recheck: float = 300.0  # seconds between checks for a Terway CRD that is not installed
    page_size: int = 500  # objects per list page
    publish_interval: float = 0.5  # at most one snapshot per this many seconds
    backoff_initial: float = 1.0  # seconds; doubled per consecutive failure, jittered
    backoff_max: float = 60.0
    silence_timeout: float = 150.0  # a watch with no event and no bookmark for this long is stale
    # Warning events whose latest occurrence is older than this (unix seconds) count from their
    # next occurrence on; None: the moment run() starts, and for sync_once() every event present
    # (see events.py).
    events_since: float | None = None

    def reflector_settings(self) -> ReflectorSettings:
        return ReflectorSettings(
            page_size=self.page_size, watch_timeout=self.watch_timeout, resync=self.resync,
            absent_recheck=self.crd_recheck, backoff_initial=self.backoff_initial, backoff_max=self.backoff_max,
            silence_timeout=self.silence_timeout,
        )


class KubeSource:
    def __init__(self, sink: SnapshotSink, settings: KubeSettings | None = None) -> None:
        self.sink = sink
        self.settings = settings or KubeSettings()
        # The source's own state: its latest snapshot (the cloud source derives its targets from it)
        # and the statuses it last reported; nothing is read back from the sink.
        self.latest: KubeSnapshot | None = None
        self.statuses: dict[str, SourceStatus] = {}
        for name in STATUS_GROUPS:
            sink.register(name)
        self._reflectors: dict[str, Reflector[Any]] = {}
        self._tally = EventTally(since=0.0)
        self._crash = CrashCauses()
        self._dirty = asyncio.Event()
        self._crash_wakeup = asyncio.Event()
        self._published: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ entry points

    async def run(self) -> None:
        """Mirror the cluster until cancelled; retries when the client cannot even be configured."""
        since = time.time() if self.settings.events_since is None else self.settings.events_since
        failures = 0
        while True:
            try:
                async with open_api_client(self.settings) as api:
                    await self._watch_all(api, since)
            except (OSError, ValueError, TypeError, config.ConfigException) as err:
                failures += 1
                delay = backoff_delay(failures, self.settings.backoff_initial, self.settings.backoff_max)
                self._report_unconfigured(err)
                log.error("kubernetes: cannot configure the API client: %s; retrying in %.0f s", one_line(err), delay)
                await asyncio.sleep(delay)

    async def sync_once(self) -> KubeSnapshot:
        """List every resource once, publish the snapshot and return it (the `collect` command)."""
        try:
            async with open_api_client(self.settings) as api:
                # One-shot: every event present counts, unless the caller bounds them (`check`).
                self._build(api, since=self.settings.events_since or 0.0)
                results = await asyncio.gather(*(r.sync() for r in self._reflectors.values()),
                                               return_exceptions=True)
                for reflector, result in zip(self._reflectors.values(), results, strict=True):
                    if isinstance(result, BaseException):
                        log.warning("kubernetes %s: list failed: %s", reflector.name, reflector.status.error
                                    or one_line(result))
                daemon_pods = dict(self._reflectors["daemon_pods"].items)
                await self._crash.refresh(daemon_pods, partial(read_previous_terway_log, api))
        except (OSError, ValueError, TypeError, config.ConfigException) as err:
            log.error("kubernetes: cannot configure the API client: %s", one_line(err))
            self._report_unconfigured(err)
            snapshot = KubeSnapshot()
        else:
            self._report_statuses()
            snapshot = self._snapshot()
        self._publish(snapshot)
        return snapshot

    # ------------------------------------------------------------------ internals

    def _build(self, api: client.ApiClient, since: float) -> None:
        self._tally = EventTally(since=since)
        settings = self.settings.reflector_settings()
        self._reflectors = {
            name: Reflector(
                spec, settings, count_restart=self.sink.counters.count_watch_restart, on_change=self._changed,
                observe=self._tally.observe if name == "events" else None,
            )
            for name, spec in resource_specs(api, self.settings.namespace).items()
        }

    async def _watch_all(self, api: client.ApiClient, since: float) -> None:
        self._build(api, since)
        tasks = [asyncio.create_task(r.run(), name=f"kube-{r.name}") for r in self._reflectors.values()]
        tasks.append(asyncio.create_task(self._publish_loop(), name="kube-publish"))
        tasks.append(asyncio.create_task(self._crash_loop(api), name="kube-crash-causes"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _changed(self, reflector: Reflector[Any]) -> None:
        self._dirty.set()
        if reflector.name == "daemon_pods":
            self._crash_wakeup.set()

    async def _publish_loop(self) -> None:
        while True:
            # Also wake now and then: a quiet, healthy watch still moves its sources' last success.
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can drop a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_REFRESH_SECONDS):
                    await self._dirty.wait()
            self._dirty.clear()
            self._report_statuses()
            if all(r.status.attempted for r in self._reflectors.values()):
                generations = tuple(r.generation for r in self._reflectors.values()) + (self._crash.generation,)
                if generations != self._published:  # status-only changes need no new snapshot
                    self._published = generations
                    self._publish(self._snapshot())
            await asyncio.sleep(self.settings.publish_interval)

    async def _crash_loop(self, api: client.ApiClient) -> None:
        read_log = partial(read_previous_terway_log, api)
        while True:
            await self._crash_wakeup.wait()
            self._crash_wakeup.clear()
            if await self._crash.refresh(dict(self._reflectors["daemon_pods"].items), read_log):
                self._dirty.set()

    def _publish(self, snapshot: KubeSnapshot) -> None:
        self.latest = snapshot
        self.sink.publish_kube(snapshot)

    def _report(self, status: SourceStatus) -> None:
        self.statuses[status.name] = status
        self.sink.report(status)

    def _snapshot(self) -> KubeSnapshot:
        stores = {name: r.items for name, r in self._reflectors.items()}
        absent = frozenset(name for name, r in self._reflectors.items() if r.absent)
        unlisted = frozenset(name for name, r in self._reflectors.items() if not r.status.synced)
        daemon_pods = stores["daemon_pods"]
        return build_snapshot(stores, absent, self._tally.totals(), self._crash.causes(daemon_pods), unlisted)

    def _report_statuses(self) -> None:
        for group, members in STATUS_GROUPS.items():
            status = group_status(group, {m: self._reflectors[m].status for m in members if m in self._reflectors})
            if status is not None and status != self.statuses.get(group):
                self._report(status)

    def _report_unconfigured(self, err: BaseException) -> None:
        for group in STATUS_GROUPS:
            self._report(SourceStatus(name=group, attempted=True, up=False,
                                         error=f"cannot configure the Kubernetes client: {one_line(err)}"))


@contextlib.asynccontextmanager
async def open_api_client(settings: KubeSettings) -> AsyncIterator[client.ApiClient]:
    """An asyncio API client from the kubeconfig file, or from the pod's service account."""
    configuration = client.Configuration()
    if settings.kubeconfig:
        await config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                      client_configuration=configuration, persist_config=False)
    else:
        config.load_incluster_config(client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        yield api


def group_status(name: str, members: Mapping[str, ReflectorStatus]) -> SourceStatus | None:
    """One source's status from its reflectors' (None until all of them tried a first list)."""
    if not members or not all(m.attempted for m in members.values()):
        return None
    successes = [m.last_success for m in members.values() if m.last_success is not None]
    durations = [m.last_duration for m in members.values() if m.last_duration is not None]
    errors = [f"{reflector}: {m.error}" if len(members) > 1 else m.error
              for reflector, m in members.items() if m.error]
    return SourceStatus(
        name=name, attempted=True, up=all(m.up for m in members.values()),
        last_success=min(successes) if len(successes) == len(members) else None,  # None: one never succeeded
        last_duration=max(durations) if durations else None,
        error=errors[0] if errors else "",
    )


def build_snapshot(
    stores: Mapping[str, Mapping[str, Any]],
    absent: frozenset[str],
    network_errors: dict[tuple[str, str], int],
    crash_causes: dict[str, str],
    unlisted: frozenset[str] = frozenset(),
) -> KubeSnapshot:
    """The snapshot from the reflectors' stores (pure: copies, never shares, the stores).

    `unlisted` names reflectors whose list never succeeded; only PodENIs read that as unknown.
    """
    nodes = dict(stores["nodes"])
    pod_enis = stores.get("pod_enis")
    configmaps, deployments = stores["configmaps"], stores["deployments"]
    return KubeSnapshot(
        nodes=nodes,
        terway_nodes=None if "terway_nodes" in absent else dict(stores["terway_nodes"]),
        daemon_pods=dict(stores["daemon_pods"]),
        waiting_pods=join_pod_waits(stores["pending_pods"], stores["events"]),
        daemonset=stores["daemonsets"].get(DAEMONSET),
        controlplane=deployments.get(CONTROLPLANE),
        controlplane_lease=stores["leases"].get(CONTROLPLANE),
        coredns=deployments.get(COREDNS),
        network_errors=dict(network_errors),
        crash_causes=dict(crash_causes),
        eni_config=_copy(configmaps.get(ENI_CONFIG)),
        controlplane_config=_copy(configmaps.get(CONTROLPLANE)),
        dynamic_configs={
            n.terway_config: dict(configmaps[n.terway_config])
            for n in nodes.values() if n.terway_config and n.terway_config in configmaps
        },
        kubernetes_service_ip=stores["services"].get(KUBERNETES_SERVICE, ""),
        pod_networking_vswitches=frozenset(v for pn in stores["pod_networkings"].values() for v in pn.vswitch_ids),
        pod_networkings=dict(stores["pod_networkings"]),
        pod_enis=None if pod_enis is None or "pod_enis" in unlisted else dict(pod_enis),
    )


def _copy(data: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if data is None else dict(data)
