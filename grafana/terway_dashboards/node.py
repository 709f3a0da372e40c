"""Terway / Node: everything Terway knows about the one node picked in the `node` variable."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import (
    NODE,
    SYNC_AGE_THRESHOLDS,
    Context,
    Query,
    assemble,
    by,
    increase,
    new_dashboard,
    node_eni_limit,
    node_ip_capacity,
    node_variable,
    on,
    sel,
    stat_panel,
    state_mappings,
    table_panel,
    timeseries_panel,
)

TITLE = "Terway / Node"
UID = "terway-node"


def _node(metric: str, *matchers: str) -> str:
    """The node's value of a per-node gauge, without the scrape's job/instance labels."""
    return f"max {by('node')} ({sel(metric, NODE, *matchers)})"


def _unless_flagged(flag: str) -> str:
    """0 while the node has the per-node flag series `flag` (it exists only while something is wrong), else 1."""
    return f"1 - {_node(flag)} or {_node('terway_node_info')}"


# kube-state-metrics' restart counters of the terway-eniip pod on the node (the exporter does not repeat them).
DAEMON_POD = sel("kube_pod_info", NODE, 'created_by_kind="DaemonSet"', 'created_by_name="terway-eniip"')
DAEMON_RESTARTS = (
    f"sum {by('container')} ("
    f"({increase('kube_pod_container_status_restarts_total')}"
    f" or {increase('kube_pod_init_container_status_restarts_total')})"
    f" * {on('namespace', 'pod')} group_left () max {by('namespace', 'pod')} ({DAEMON_POD}))"
)


def _state() -> list:
    return [
        stat_panel(
            "SufficientIP",
            "The Node condition SufficientIP: False when Terway could not get pod IPs for this node (True also "
            "when the node has no such condition).",
            "none",
            Query(_unless_flagged("terway_node_insufficient_ip"), instant=True),
            mappings=state_mappings("True", "False"),
            w=4,
        ),
        stat_panel(
            "CNI ready",
            "False when the kubelet reports the network plugin or the CNI config not ready.",
            "none",
            Query(_unless_flagged("terway_node_cni_not_ready"), instant=True),
            mappings=state_mappings("ready", "not ready"),
            w=4,
        ),
        stat_panel(
            "Pods waiting for network on the node",
            "Pods scheduled on the node that are still creating their sandbox.",
            "short",
            Query(f"sum({sel('terway_pods_waiting_for_network', NODE)}) or vector(0)", instant=True),
            thresholds=((None, "green"), (1, "orange")),
            w=4,
        ),
        stat_panel(
            "Oldest pod waiting for network on the node",
            "Age of the node's oldest pod still waiting for its sandbox.",
            "s",
            Query(f"max({sel('terway_pods_waiting_for_network_oldest_seconds', NODE)}) or vector(0)", instant=True),
            thresholds=((None, "green"), (120, "orange"), (600, "red")),
            w=4,
        ),
        stat_panel(
            "Time since last cloud sync",
            "Time since the Node CR's status.lastSyncOpenAPITime: when the controlplane last read this node's "
            "ENIs from the cloud. Terway syncs every 12 to 24 hours: orange past 24 hours (overdue), red past "
            "TerwayOpenAPISyncStale's 26 hours. Empty in legacy (non-CRD) IPAM mode and before the first sync.",
            "s",
            Query(f"time() - ({_node('terway_node_last_openapi_sync_timestamp_seconds')} > 0)", instant=True),
            thresholds=SYNC_AGE_THRESHOLDS,
            w=8,
        ),
        table_panel(
            "Node details",
            "Instance, instance type, zone and IPAM mode of the node.",
            "none",
            Query(f"max {by('node', 'instance_id', 'instance_type', 'zone_id', 'ipam_mode')} "
                  f"({sel('terway_node_info', NODE)})"),
            w=24,
            h=4,
        ),
    ]


def _capacity() -> list:
    return [
        timeseries_panel(
            "ENIs attached against the limit",
            "ENIs attached to the node (the primary included) and the most its instance type allows.",
            "short",
            Query(_node("terway_node_enis"), "attached"),
            Query(node_eni_limit(NODE), "limit"),
            w=8,
        ),
        timeseries_panel(
            "Pod IPs by state",
            "Pod IPs held on the node's secondary ENIs, by Terway's state, against the node's IP capacity.",
            "short",
            Query(f"sum {by('state')} ({sel('terway_node_ips', NODE)})", "{{state}}"),
            Query(node_ip_capacity(NODE), "capacity"),
            w=8,
        ),
        timeseries_panel(
            "Idle IPs against pool bounds",
            "Idle pod IPs against min_pool_size and max_pool_size in force on the node.",
            "short",
            Query(_node("terway_node_ips", 'state="idle"'), "idle"),
            Query(_node("terway_node_pool_min_ips"), "min_pool_size"),
            Query(_node("terway_node_pool_max_ips"), "max_pool_size"),
            w=8,
        ),
    ]


def _daemon() -> list:
    return [
        timeseries_panel(
            "Daemon container restarts",
            "Restarts of each container of the node's terway-eniip pod, init containers included, from "
            "kube-state-metrics (kube_pod_container_status_restarts_total, joined to the node by kube_pod_info). "
            "Empty without kube-state-metrics.",
            "short",
            Query(DAEMON_RESTARTS, "{{container}}"),
            w=8,
        ),
        table_panel(
            "Daemon containers waiting",
            "terway-eniip containers on the node that wait, with the reason (CrashLoopBackOff, ...).",
            "none",
            Query(f"max {by('container', 'reason')} ({sel('terway_daemon_container_waiting', NODE)}) == 1"),
            w=8,
        ),
        table_panel(
            "Daemon crash causes",
            "Known error codes named by the previous log of a crashing terway container on the node.",
            "none",
            Query(f"max {by('code')} ({sel('terway_daemon_crash_cause', NODE)}) == 1"),
            w=8,
        ),
    ]


def build(ctx: Context) -> dashboard.Dashboard:
    builder = new_dashboard(ctx, TITLE, UID, "One node: ENIs, IPs, pool, conditions and the Terway daemon.")
    builder = builder.with_variable(node_variable())
    rows = [("State", _state()), ("ENIs and IPs", _capacity()), ("Terway daemon", _daemon())]
    return assemble(ctx, builder, TITLE, rows)
