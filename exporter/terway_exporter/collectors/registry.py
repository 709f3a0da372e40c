"""Every collector, in exposition order. Adding a metric family group is adding its module here.

The modules are imported by name, not looked up by string, so readers, type checkers and
import-linter see every collector the exporter runs.
"""

from __future__ import annotations

from types import ModuleType

from . import capacity, config, eni, exporter, node, pods, vswitch, workloads
from .base import Collector
from .families import Family

# Cloud families first, then the cluster, then the exporter itself.
COLLECTOR_MODULES: tuple[ModuleType, ...] = (vswitch, eni, node, pods, workloads, config, capacity, exporter)


def all_collectors() -> tuple[Collector, ...]:
    return tuple(collector for module in COLLECTOR_MODULES for collector in module.COLLECTORS)


def per_node_family_names() -> frozenset[str]:
    """Names (as queried) of every family with a `node` label: what --no-node-metrics drops."""
    names: set[str] = set()
    for module in COLLECTOR_MODULES:
        for value in vars(module).values():
            candidates = value if isinstance(value, (tuple, list)) else (value,)
            names.update(f.name for f in candidates if isinstance(f, Family) and "node" in f.labels)
    return frozenset(names)
