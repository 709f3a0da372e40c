"""Every collector, in exposition order. Adding a metric family group is adding its module here."""

from __future__ import annotations

import importlib

from .base import Collector
from .families import Family

# Cloud families first, then the cluster, then the exporter itself.
COLLECTOR_MODULES = ("vswitch", "eni", "node", "pods", "workloads", "config", "capacity", "exporter")


def all_collectors() -> tuple[Collector, ...]:
    collectors: list[Collector] = []
    for name in COLLECTOR_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        collectors.extend(module.COLLECTORS)
    return tuple(collectors)


def per_node_family_names() -> frozenset[str]:
    """Names (as queried) of every family with a `node` label: what --no-node-metrics drops."""
    names = set()
    for name in COLLECTOR_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        for value in vars(module).values():
            candidates = value if isinstance(value, (tuple, list)) else (value,)
            names.update(f.name for f in candidates if isinstance(f, Family) and "node" in f.labels)
    return frozenset(names)
