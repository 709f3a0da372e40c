"""Terway / IP capacity: where pod IPs and ENIs come from, and how long they last."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from .common import (
    Context,
    Query,
    assemble,
    bargauge_panel,
    by,
    links_to_node,
    new_dashboard,
    node_eni_limit,
    node_ip_capacity,
    on,
    per_node,
    sel,
    table_panel,
    timeseries_panel,
    with_zone,
)
from .overview import VSWITCH_FREE_SHARE

TITLE = "Terway / IP capacity"
UID = "terway-ip-capacity"

AVAILABLE = "terway_vswitch_available_ip_addresses"
IN_USE = 'state="in_use"'
IDLE = 'state="idle"'  # only centralised-IPAM nodes have idle IPs (legacy and prefix mode: state="unknown")
# The trend window of the forecasts: long enough to ignore a burst of pod churn.
TREND = "6h"

# Free IPs of the vSwitches configured for each zone (recording rule, the signal of TerwayZoneWithoutIPs).
FREE_BY_ZONE = f"sum {by('zone_id')} ({sel('terway:zone_available_ip_addresses')})"

# Pod IPs one more node of an instance type can hold: every ENI but the primary, each full of IPs.
NODE_IPS_BY_TYPE = (
    f"max {by('instance_type')} ({sel('terway_instance_type_ips_per_eni')})"
    f" * {on('instance_type')} (max {by('instance_type')} ({sel('terway_instance_type_eni_limit')}) - 1)"
)
# The (zone, instance type) pairs the cluster runs, each carrying the per-node IPs of its type.
NODE_IPS_BY_ZONE_AND_TYPE = (
    f"({NODE_IPS_BY_TYPE}) * {on('instance_type')} group_right ()"
    f" group {by('zone_id', 'instance_type')} ({sel('terway_node_info')})"
)
NODE_HEADROOM = f"floor({FREE_BY_ZONE} / {on('zone_id')} group_right () ({NODE_IPS_BY_ZONE_AND_TYPE}))"

NODE_ZONE = f"max {by('node', 'zone_id')} ({sel('terway_node_info')})"


def _vswitches() -> list:
    return [
        timeseries_panel(
            "vSwitch free and total IPs",
            "Free IPs (AvailableIpAddressCount) and usable IPs of every vSwitch the cluster uses.",
            "short",
            Query(with_zone(AVAILABLE), "{{vswitch_id}} free ({{zone_id}})"),
            Query(with_zone("terway_vswitch_ip_addresses"), "{{vswitch_id}} total ({{zone_id}})"),
        ),
        timeseries_panel(
            "vSwitch free IP share",
            "Free IPs of every vSwitch as a share of its usable IPs.",
            "percentunit",
            Query(VSWITCH_FREE_SHARE, "{{vswitch_id}} {{name}} ({{zone_id}})"),
        ),
        table_panel(
            "Time until vSwitch IPs run out",
            "For vSwitches whose free IPs shrank over the last 6 hours: free IPs divided by the rate of "
            "shrinking (recording rule terway:vswitch_available_ip_addresses:exhaustion_seconds). "
            "vSwitches that are not shrinking are not listed.",
            "s",
            Query(with_zone("terway:vswitch_available_ip_addresses:exhaustion_seconds")),
        ),
        timeseries_panel(
            "vSwitch free IPs forecast in 24 hours",
            f"Free IPs each vSwitch will have in 24 hours if the trend of the last {TREND} holds; "
            "below zero means it runs out first.",
            "short",
            Query(
                f"max {by('vswitch_id')} (predict_linear({sel(AVAILABLE)}[{TREND}], 86400))",
                "{{vswitch_id}}",
            ),
        ),
    ]


def _zones() -> list:
    return [
        timeseries_panel(
            "Free IPs by zone",
            "Free IPs of the vSwitches configured for each zone: the IPs new pods and nodes in that zone can get.",
            "short",
            Query(FREE_BY_ZONE, "{{zone_id}}"),
        ),
        timeseries_panel(
            "Pod IPs in use by zone",
            "Pod IPs in use on the nodes of each zone.",
            "short",
            Query(
                f"sum {by('zone_id')} ({per_node('terway_node_ips', IN_USE)}"
                f" * {on('node')} group_left (zone_id) {NODE_ZONE})",
                "{{zone_id}}",
            ),
        ),
        table_panel(
            "Node headroom by zone and instance type",
            "How many more nodes of each instance type the free IPs of their zone can fill: free IPs of the "
            "zone's vSwitches / (IPs per ENI x (ENI limit - 1)).",
            "short",
            Query(NODE_HEADROOM),
            w=24,
        ),
        timeseries_panel(
            "Pods that can still get an IP, by zone",
            "Pods the zone's nodes can still start with an IP: the least of their IP capacity left, their idle "
            "IPs plus the free IPs of the zone's vSwitches, and what the ENI quota still allows "
            "(terway_capacity_zone_pods; `terway-exporter capacity` prints the same).",
            "short",
            Query(f"sum {by('zone_id')} ({sel('terway_capacity_zone_pods')})", "{{zone_id}}"),
        ),
        table_panel(
            "New nodes that fit, by zone and instance type",
            "New nodes of each instance type the zone can take before its vSwitches or the ENI quota run out, "
            "each running the average pods of today's nodes plus min_pool_size (terway_capacity_zone_nodes_addable; "
            "what-ifs: `terway-exporter capacity --add-nodes`).",
            "short",
            Query(f"min {by('zone_id', 'instance_type')} ({sel('terway_capacity_zone_nodes_addable')})"),
        ),
    ]


def _enis() -> list:
    return [
        timeseries_panel(
            "ENI quota and usage",
            "The region's ENI quota for the account and the ENIs counted against it.",
            "short",
            Query(f"max {by()} ({sel('terway_eni_quota')})", "quota"),
            Query(f"max {by()} ({sel('terway_eni_quota_usage')})", "usage"),
        ),
        timeseries_panel(
            "ENIs by status, type and creator",
            "ENIs in the cluster's VPC by ECS status, ENI type and creator.",
            "short",
            Query(f"sum {by('status', 'type', 'creator')} ({sel('terway_enis')})", "{{status}} {{type}} {{creator}}"),
        ),
        timeseries_panel(
            "Leaked ENIs by creator",
            "ENIs created by Terway that sit detached (Available) longer than the grace period.",
            "short",
            Query(f"sum {by('creator')} ({sel('terway_enis_leaked')})", "{{creator}}"),
        ),
    ]


def _nodes() -> list:
    return [
        links_to_node(
            bargauge_panel(
                "Nodes nearest their ENI limit",
                "The ten nodes with the most ENIs attached for what their instance type allows.",
                "percentunit",
                Query(
                    f"topk(10, {per_node('terway_node_enis')} / {on('node')} {node_eni_limit()})",
                    "{{node}}",
                    instant=True,
                ),
                thresholds=((None, "green"), (0.8, "orange"), (1, "red")),
                max_value=1,
            )
        ),
        links_to_node(
            bargauge_panel(
                "Nodes nearest their IP capacity",
                "The ten nodes holding the most pod IPs (in use, idle and unavailable) for their capacity.",
                "percentunit",
                Query(
                    f"topk(10, sum {by('node')} ({sel('terway_node_ips')})"
                    f" / {on('node')} {node_ip_capacity()})",
                    "{{node}}",
                    instant=True,
                ),
                thresholds=((None, "green"), (0.8, "orange"), (1, "red")),
                max_value=1,
            )
        ),
        links_to_node(
            table_panel(
                "Idle IPs against pool bounds",
                "Idle pod IPs of each node next to the min_pool_size and max_pool_size in force on it. Terway "
                "keeps idle IPs between the two.",
                "short",
                Query(per_node("terway_node_ips", IDLE)),
                Query(per_node("terway_node_pool_min_ips")),
                Query(per_node("terway_node_pool_max_ips")),
                columns=("idle", "min_pool_size", "max_pool_size"),
            ),
            table_rows=True,
        ),
        timeseries_panel(
            "Nodes outside their pool bounds",
            "Nodes with fewer idle IPs than min_pool_size (Terway could not fill the pool) and nodes with "
            "more than max_pool_size (Terway is not releasing).",
            "short",
            Query(
                f"sum {by()} ({per_node('terway_node_ips', IDLE)}"
                f" < bool {on('node')} {per_node('terway_node_pool_min_ips')})",
                "below min_pool_size",
            ),
            Query(
                f"sum {by()} ({per_node('terway_node_ips', IDLE)}"
                f" > bool {on('node')} {per_node('terway_node_pool_max_ips')})",
                "above max_pool_size",
            ),
        ),
    ]


def build(ctx: Context) -> dashboard.Dashboard:
    builder = new_dashboard(
        ctx, TITLE, UID, "vSwitch IPs, ENIs and per-node limits: what is left, and how long it lasts."
    )
    rows = [
        ("vSwitches", _vswitches()),
        ("Zones", _zones()),
        ("ENIs and quota", _enis()),
        ("Nodes", _nodes()),
    ]
    return assemble(ctx, builder, TITLE, rows)
