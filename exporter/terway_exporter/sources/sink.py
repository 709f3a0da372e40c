"""What a source publishes into: the hub satisfies this protocol, so sources never import it."""

from __future__ import annotations

from typing import Protocol

from ..model.cloud import CloudSnapshot, CloudTargets
from ..model.kube import KubeSnapshot
from ..model.status import SourceStatus
from ..telemetry import ExporterCounters


class SnapshotSink(Protocol):
    counters: ExporterCounters

    def register(self, name: str, gates_readiness: bool = True) -> None:
        """Declare a status the source will report, so readiness waits for its first attempt (unless not
        `gates_readiness`)."""

    def report(self, status: SourceStatus) -> None: ...

    def publish_cloud(self, snapshot: CloudSnapshot) -> None: ...

    def publish_kube(self, snapshot: KubeSnapshot) -> None: ...

    def publish_targets(self, targets: CloudTargets) -> None:
        """What the cloud source looks at this poll (the collectors and checks read it)."""
