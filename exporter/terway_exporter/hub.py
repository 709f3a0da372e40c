"""Where sources hand over what they read, and where the renderer picks it up.

Sources own their snapshots and publish each new one here (`publish_cloud`/`publish_kube`,
`report` with their status; the hub satisfies `sources.sink.SnapshotSink`, so no source imports
it); counters about the exporter's own work go through `telemetry.ExporterCounters` (prometheus_client
metrics in a private registry, copied into each state as `ExporterStats`). Every change bumps
`version` and sets `changed`, which wakes the renderer; nothing here renders or formats metrics.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from .model.cloud import CloudSnapshot, CloudTargets
from .model.kube import KubeSnapshot
from .model.state import ClusterState, ExporterSettings
from .model.status import SourceStatus
from .telemetry import ExporterCounters


class SnapshotHub:
    """The latest snapshot of each source and the status of each source.

    Safe to call from the event loop; `notify_threadsafe` is the variant for worker
    threads. `changed` is an asyncio.Event the renderer waits on.
    """

    def __init__(self, settings: ExporterSettings | None = None, kube_enabled: bool = True) -> None:
        self.settings = settings or ExporterSettings()
        self.kube_enabled = kube_enabled
        self.cloud = CloudSnapshot()
        self.kube = KubeSnapshot()
        self.targets = CloudTargets()
        self.sources: dict[str, SourceStatus] = {}
        self._not_gating: set[str] = set()  # sources /readyz does not wait for (see register)
        self.version = 0
        self.changed = asyncio.Event()
        # Set once every source /readyz waits for has had its first try: the render loop then renders at
        # once instead of after its pacing pause, since /readyz waits for that exposition.
        self.first_sync_done = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = ExporterCounters(on_change=self.notify_threadsafe)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_cloud(self, snapshot: CloudSnapshot) -> None:
        self.cloud = snapshot
        self._bump()

    def publish_kube(self, snapshot: KubeSnapshot) -> None:
        self.kube = snapshot
        self._bump()

    def publish_targets(self, targets: CloudTargets) -> None:
        if targets != self.targets:
            self.targets = targets
            self._bump()

    def register(self, name: str, gates_readiness: bool = True) -> None:
        """Declare a source, so /readyz waits for its first attempt (unless `gates_readiness` is False:
        a background listing whose first round may take minutes, whose families stay absent until then)."""
        self.sources.setdefault(name, SourceStatus(name=name))
        if not gates_readiness:
            self._not_gating.add(name)

    def report(self, status: SourceStatus) -> None:
        self.sources[status.name] = replace(status, attempted=True)
        if not self.first_sync_done.is_set() and self.ready():
            self.first_sync_done.set()
        self._bump()

    def ready(self) -> bool:
        gating = [s for name, s in self.sources.items() if name not in self._not_gating]
        return bool(gating) and all(s.attempted for s in gating)

    def state(self, now: float | None = None) -> ClusterState:
        return ClusterState(
            now=time.time() if now is None else now,
            cloud=self.cloud, kube=self.kube, sources=dict(self.sources),
            stats=self.counters.snapshot(), targets=self.targets,
            settings=self.settings, kube_enabled=self.kube_enabled, complete=self.ready(),
        )

    def notify_threadsafe(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                self._bump()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()
