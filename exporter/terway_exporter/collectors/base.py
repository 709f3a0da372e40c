"""The contract between sources and collectors.

A collector is a pure function from a `ClusterState` to metric families
(`prometheus_client.Metric`). It reads snapshots, never calls an API, keeps no
state, and is table-tested: a state in, exposition text out. The runtime renders
the exposition once per state change, so a scrape only copies bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Metric
from prometheus_client.samples import Sample

from ..model.state import ClusterState

Collect = Callable[[ClusterState], Iterable[Metric]]


@dataclass(frozen=True, slots=True)
class Parts:
    """A collector's output split into independent per-object parts (one per node).

    The renderer keeps each part's text and re-renders a part only when its `inputs` are no
    longer the very same objects (projections are immutable and kept while unchanged), or
    when `shared` (what every part depends on) is no longer equal: one Node CR changing
    re-renders one node, not 5,000 (kube-state-metrics caches per object the same way).
    """

    shared: tuple  # compared by ==
    empty: tuple[Metric, ...]  # the families, without samples, in exposition order
    # (key, inputs compared by identity, build) in exposition order; build() returns, for each family of
    # `empty` in that order, this object's samples of it. The families are gauges or counters, their samples
    # without timestamp or exemplar: the renderer formats these lines itself (render.py: _sample_lines).
    items: Sequence[tuple[str, tuple, Callable[[], Sequence[Sequence[Sample]]]]]


@dataclass(frozen=True, slots=True)
class Collector:
    """A named collector; `reads` names the parts of the state it depends on, so the
    runtime re-runs it only when one of them changed ("cloud", "kube", "sources",
    "stats", "targets")."""

    name: str
    collect: Collect
    reads: frozenset[str]
    parts: Callable[[ClusterState], Parts] | None = None  # optional: per-object rendering of `collect`
