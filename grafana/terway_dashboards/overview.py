"""Terway / Overview: one look answers "is Terway healthy, and if not, what and where"."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import ValueMap, ValueMappingResult

from .common import (
    FAILED_CALL,
    SYNC_AGE_THRESHOLDS,
    Context,
    Query,
    alert_list_panel,
    assemble,
    bargauge_panel,
    by,
    gauge_panel,
    links_to_node,
    new_dashboard,
    rate,
    sel,
    stat_panel,
    state_mappings,
    table_panel,
    timeseries_panel,
    with_zone,
)
from .exporter import SOURCE_AGE, SOURCE_UP

TITLE = "Terway / Overview"
UID = "terway-overview"

# The free share of each vSwitch (the recording rule TerwayVSwitchIPsLow reads) with its zone and name.
VSWITCH_FREE_SHARE = with_zone("terway:vswitch_available_ip_ratio")

HOSTING = [
    ValueMap(
        options={
            "1": ValueMappingResult(text="in cluster", color="blue", index=0),
            "0": ValueMappingResult(text="hosted (ACK managed)", color="blue", index=1),
        }
    )
]


def _alerts() -> list:
    return [
        alert_list_panel(
            "Firing Terway alerts",
            "Pending and firing alerts whose name starts with Terway, from the selected Prometheus.",
            "Terway.*",
        )
    ]


def _controlplane() -> list:
    return [
        stat_panel(
            "Controlplane replicas",
            "terway-controlplane Deployment replicas, desired against available. Empty when the controlplane "
            "is hosted by ACK.",
            "short",
            Query(f"sum {by('state')} ({sel('terway_controlplane_replicas')})", "{{state}}", instant=True),
        ),
        stat_panel(
            "Controlplane hosting",
            "Whether terway-controlplane runs in this cluster or is hosted by ACK (invisible from here).",
            "none",
            Query(f"max {by()} ({sel('terway_controlplane_in_cluster')})", instant=True),
            mappings=HOSTING,
        ),
        stat_panel(
            "Controlplane lease age",
            "Time since the controlplane leader last renewed its Lease; it renews every few seconds.",
            "s",
            Query(f"time() - max {by()} ({sel('terway_controlplane_lease_renew_timestamp_seconds')})", instant=True),
            thresholds=((None, "green"), (60, "orange"), (120, "red")),
        ),
        stat_panel(
            "Controlplane degradation",
            "The degradation level set in the terway-controlplane config (none, l0, l1).",
            "none",
            Query(f"max {by('level')} ({sel('terway_controlplane_degradation')}) == 1", "{{level}}", instant=True),
            show_name=True,
        ),
        stat_panel(
            "Cluster DNS replicas",
            "CoreDNS replicas, desired against available: pods need DNS as much as an IP.",
            "short",
            Query(f"sum {by('state')} ({sel('terway_cluster_dns_replicas')})", "{{state}}", instant=True),
        ),
    ]


def _daemon_and_nodes() -> list:
    return [
        stat_panel(
            "Terway daemon pods",
            "terway-eniip DaemonSet pods: desired, ready, not ready (crash-looping included) and crash-looping.",
            "short",
            Query(f"sum {by('state')} ({sel('terway_daemon_pods')})", "{{state}}", instant=True),
        ),
        stat_panel(
            "Nodes without SufficientIP",
            "Nodes whose SufficientIP condition is False: Terway could not get pod IPs for them.",
            "short",
            Query(f"sum({sel('terway_node_insufficient_ip')}) or vector(0)", instant=True),
            thresholds=((None, "green"), (1, "red")),
        ),
        stat_panel(
            "Nodes with CNI not ready",
            "Nodes whose kubelet reports the network plugin or CNI config not ready.",
            "short",
            Query(f"sum({sel('terway_node_cni_not_ready')}) or vector(0)", instant=True),
            thresholds=((None, "green"), (1, "red")),
        ),
        stat_panel(
            "Pods waiting for network",
            "Scheduled pods still creating their sandbox, across all nodes.",
            "short",
            Query(f"sum({sel('terway_pods_waiting_for_network')}) or vector(0)", instant=True),
            thresholds=((None, "green"), (1, "orange")),
        ),
        stat_panel(
            "Oldest pod waiting for network",
            "Age of the oldest pod still waiting for its sandbox.",
            "s",
            Query(f"max({sel('terway_pods_waiting_for_network_oldest_seconds')}) or vector(0)", instant=True),
            thresholds=((None, "green"), (120, "orange"), (300, "red")),
        ),
        links_to_node(
            timeseries_panel(
                "Pods waiting for network by node",
                "Scheduled pods still creating their sandbox, per node.",
                "short",
                Query(f"sum {by('node')} ({sel('terway_pods_waiting_for_network')})", "{{node}}"),
            )
        ),
        links_to_node(
            bargauge_panel(
                "Nodes with the oldest cloud sync",
                "The ten nodes whose Node CR was synced with the cloud (status.lastSyncOpenAPITime) longest ago. "
                "Only CRD-mode nodes that synced once have it. Terway syncs every 12 to 24 hours: orange past 24 "
                "hours (overdue), red past TerwayOpenAPISyncStale's 26 hours.",
                "s",
                Query(
                    f"topk(10, time() - (max {by('node')} ({sel('terway_node_last_openapi_sync_timestamp_seconds')})"
                    " > 0))",
                    "{{node}}",
                    instant=True,
                ),
                thresholds=SYNC_AGE_THRESHOLDS,
            )
        ),
        links_to_node(
            table_panel(
                "Daemon crash causes by node",
                "Known error codes named by the previous log of a crashing terway container, per node.",
                "none",
                Query(f"max {by('node', 'code')} ({sel('terway_daemon_crash_cause')}) == 1"),
            ),
            table_rows=True,
        ),
        timeseries_panel(
            "Error codes over time",
            "Known Terway and Alibaba Cloud error codes per second: from Warning events in the cluster "
            "(Terway's own calls) and from the exporter's own cloud API calls. Credential, RAM and "
            "throttling alerts fire on either.",
            "cps",
            Query(f"sum {by('code')} ({rate('terway_network_errors_total')})", "{{code}} (Terway events)"),
            Query(
                f"sum {by('code')} ({rate('terway_exporter_cloud_api_requests_total', FAILED_CALL)})",
                "{{code}} (exporter API calls)",
            ),
            w=24,
        ),
    ]


def _capacity() -> list:
    return [
        bargauge_panel(
            "Least free vSwitches",
            "The ten vSwitches with the smallest share of free IPs. Details: Terway / IP capacity.",
            "percentunit",
            Query(f"bottomk(10, {VSWITCH_FREE_SHARE})", "{{vswitch_id}} {{name}} ({{zone_id}})", instant=True),
            thresholds=((None, "red"), (0.1, "orange"), (0.2, "green")),
            max_value=1,
        ),
        gauge_panel(
            "ENI quota use",
            "ENIs counted against the region's ENI quota, as a share of the quota.",
            "percentunit",
            Query(f"max {by()} ({sel('terway:eni_quota_usage_ratio')})", instant=True),
        ),
        stat_panel(
            "Leaked ENIs",
            "ENIs created by Terway that sit detached longer than the grace period.",
            "short",
            Query(f"sum {by('creator')} ({sel('terway_enis_leaked')})", "{{creator}}", instant=True),
            thresholds=((None, "green"), (1, "orange")),
        ),
        bargauge_panel(
            "Configuration problems",
            "Objects failing each configuration check; every check should be 0.",
            "short",
            Query(f"max {by('check')} ({sel('terway_config_problems')})", "{{check}}", instant=True),
            thresholds=((None, "green"), (1, "red")),
        ),
        stat_panel(
            "Missing security groups",
            "Security groups the configuration names that do not exist.",
            "short",
            Query(f"count({sel('terway_security_group_exists')} == 0) or vector(0)", instant=True),
            thresholds=((None, "green"), (1, "red")),
        ),
    ]


def _exporter() -> list:
    return [
        stat_panel(
            "Exporter source health",
            "Whether the last poll or watch of each source succeeded. Details: Terway / Exporter.",
            "none",
            Query(SOURCE_UP, "{{source}}", instant=True),
            mappings=state_mappings("up", "down"),
            w=12,
        ),
        stat_panel(
            "Exporter source data age",
            "Time since each source last succeeded: how old the numbers on these dashboards are.",
            "s",
            Query(SOURCE_AGE, "{{source}}", instant=True),
            thresholds=((None, "green"), (300, "orange"), (900, "red")),
            w=12,
        ),
    ]


def build(ctx: Context) -> dashboard.Dashboard:
    builder = new_dashboard(ctx, TITLE, UID, "Is Terway healthy, and if not, what and where.")
    rows = [
        ("Alerts", _alerts()),
        ("Controlplane", _controlplane()),
        ("Daemon, nodes and pods", _daemon_and_nodes()),
        ("IPs, ENIs and configuration", _capacity()),
        ("Exporter", _exporter()),
    ]
    return assemble(ctx, builder, TITLE, rows)
