"""Every collector, in exposition order. Adding a metric family group is adding its module here."""

from __future__ import annotations

import importlib

from .base import Collector

# Cloud families first, then the cluster, then the exporter itself.
COLLECTOR_MODULES = ("vswitch", "eni", "node", "pods", "workloads", "config", "exporter")


def all_collectors() -> tuple[Collector, ...]:
    collectors: list[Collector] = []
    for name in COLLECTOR_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        collectors.extend(module.COLLECTORS)
    return tuple(collectors)
