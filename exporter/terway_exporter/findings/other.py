"""Cluster DNS and the exporter's own sources."""

from __future__ import annotations

from collections.abc import Callable

from ..model.state import synced
from .context import Context
from .controlplane import _duration
from .model import Evidence


def dns_unavailable(ctx: Context) -> list[Evidence]:
    """sum without (state) (terway_cluster_dns_replicas{state="available"}) == 0."""
    coredns = ctx.kube.coredns
    if not ctx.state.kube_enabled or not synced(ctx.state, "kube_workloads") or coredns is None:
        return []
    if coredns.available != 0:
        return []
    return [Evidence("deployment/coredns", f"0 of {coredns.desired} replicas available",
                     values={"available": 0, "desired": coredns.desired})]


def source_failing(ctx: Context) -> list[Evidence]:
    """terway_exporter_source_up == 0, with the time since the last success when there was one."""
    found = []
    for name in ctx.sources_down:
        status = ctx.state.sources[name]
        since = ("never succeeded" if status.last_success is None
                 else f"last success {_duration(ctx.state.now - status.last_success)} ago")
        found.append(Evidence(f"source/{name}", f"{since}: {status.error or 'no error message'}", label=name))
    return found


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayClusterDNSUnavailable": dns_unavailable,
    "TerwayExporterSourceFailing": source_failing,
}
