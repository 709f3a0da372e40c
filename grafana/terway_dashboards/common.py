"""Building blocks shared by the four Terway dashboards.

Every query goes through `sel()` so that each series selector carries `cluster=~"$cluster"`, and every
panel goes through one of the panel helpers so that it gets the `datasource` variable, a unit and, when
`grafana/alert-panels.yaml` names it, a link to the alert's runbook. The tests check all of this on the
generated JSON; the helpers just make it hard to get wrong.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import bargauge, dashboard, gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableHide,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

TAG = "terway"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RUNBOOK_URL = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/{alert}.md"
CLUSTER = 'cluster=~"$cluster"'
NODE = 'node="$node"'
FAILED_CALL = 'code!="Success"'  # cloud API calls that returned an error code
# Age of a Node CR's last cloud sync: Terway schedules the next 12 to 24 h after the last (wait.Jitter(12h, 1),
# syncWithAPI in pkg/controller/multi-ip/node/pool.go), so up to 24 h is healthy; TerwayOpenAPISyncStale fires
# past 26 h.
SYNC_AGE_THRESHOLDS = ((None, "green"), (24 * 3600, "orange"), (26 * 3600, "red"))

PanelBuilder = cogbuilder.Builder[typing.Any]


@dataclass(frozen=True)
class Context:
    """What a dashboard module needs besides its own knowledge."""

    multi_cluster: bool = False
    # (dashboard title, panel title) -> alerts whose signal that panel shows, from alert-panels.yaml
    alert_panels: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """One PromQL target: `legend` is a Grafana legend template, `instant` asks for the latest value only."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


# --- PromQL -----------------------------------------------------------------------------------------


def sel(metric: str, *matchers: str) -> str:
    """A series selector scoped to the chosen cluster(s); extra matchers are written out, e.g. 'state="idle"'."""
    return f"{metric}{{{', '.join((CLUSTER, *matchers))}}}"


def by(*labels: str) -> str:
    """A `by (...)` clause that keeps the cluster label, so multi-cluster views never mix clusters."""
    return f"by ({', '.join(('cluster', *labels))})"


def on(*labels: str) -> str:
    """An `on (...)` clause that matches within one cluster."""
    return f"on ({', '.join(('cluster', *labels))})"


def rate(metric: str, *matchers: str) -> str:
    """rate() over Grafana's `$__rate_interval`, which always spans at least four scrapes."""
    return f"rate({sel(metric, *matchers)}[$__rate_interval])"


def increase(metric: str, *matchers: str) -> str:
    return f"increase({sel(metric, *matchers)}[$__rate_interval])"


def per_node(metric: str, *matchers: str) -> str:
    """A per-node gauge with the scrape's job/instance labels dropped, ready to join on (cluster, node)."""
    return f"max {by('node')} ({sel(metric, *matchers)})"


def node_eni_limit(*matchers: str) -> str:
    """Each node's ENI limit, by (cluster, node), parenthesised: the node's own where the exporter reports one
    (terway_node_eni_limit_override), else its instance type's through terway_node_info's instance_type."""
    return (
        f"({per_node('terway_node_eni_limit_override', *matchers)}"
        f" or max {by('node')} ({sel('terway_node_info', *matchers)}"
        f" * {on('instance_type')} group_left () max {by('instance_type')} ({sel('terway_instance_type_eni_limit')})))"
    )


def node_ip_capacity(*matchers: str) -> str:
    """Each node's pod IP capacity, by (cluster, node), parenthesised: the node's own where the exporter reports
    one (terway_node_ip_capacity_override), else its instance type's, every secondary ENI full:
    (terway_instance_type_eni_limit - 1) x terway_instance_type_ips_per_eni."""
    by_type = (
        f"(max {by('instance_type')} ({sel('terway_instance_type_eni_limit')}) - 1)"
        f" * {on('instance_type')} max {by('instance_type')} ({sel('terway_instance_type_ips_per_eni')})"
    )
    return (
        f"({per_node('terway_node_ip_capacity_override', *matchers)}"
        f" or max {by('node')} ({sel('terway_node_info', *matchers)}"
        f" * {on('instance_type')} group_left () ({by_type})))"
    )


def with_zone(metric: str, *matchers: str) -> str:
    """A per-vSwitch gauge carrying the vSwitch's zone and name from terway_vswitch_info."""
    return (
        f"max {by('vswitch_id')} ({sel(metric, *matchers)})"
        f" * {on('vswitch_id')} group_left (zone_id, name) max {by('vswitch_id', 'zone_id', 'name')}"
        f" ({sel('terway_vswitch_info')})"
    )


# --- variables and links ----------------------------------------------------------------------------


def variables(ctx: Context) -> list[PanelBuilder]:
    """`datasource` and `cluster`; the cluster picker is hidden unless the dashboards are built multi-cluster.

    With no cluster label at all (one Prometheus per cluster), the hidden variable resolves to All = `.*`,
    which also matches series without the label.
    """
    cluster = (
        dashboard.QueryVariable("cluster")
        .label("Cluster")
        .datasource(DATASOURCE)
        .query("label_values(terway_exporter_build_info, cluster)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .hide(VariableHide.DONT_HIDE if ctx.multi_cluster else VariableHide.HIDE_VARIABLE)
    )
    return [dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"), cluster]


def node_variable() -> PanelBuilder:
    return (
        dashboard.QueryVariable("node")
        .label("Node")
        .datasource(DATASOURCE)
        .query(f"label_values({sel('terway_node_info')}, node)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def sibling_links() -> dashboard.DashboardLink:
    """A dropdown of every dashboard tagged `terway`, keeping time range and variables."""
    return (
        dashboard.DashboardLink("Terway dashboards")
        .type(DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


def runbook_links(alerts: Sequence[str]) -> list[dashboard.DashboardLink]:
    return [
        dashboard.DashboardLink(f"Runbook: {alert}")
        .type(DashboardLinkType.LINK)
        .url(RUNBOOK_URL.format(alert=alert))
        .target_blank(True)
        for alert in alerts
    ]


def new_dashboard(ctx: Context, title: str, uid: str, description: str) -> dashboard.Dashboard:
    builder = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(sibling_links())
    )
    for variable in variables(ctx):
        builder = builder.with_variable(variable)
    return builder


# --- panels -----------------------------------------------------------------------------------------


def _targets(panel: PanelBuilder, queries: Sequence[Query]) -> PanelBuilder:
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        if query.legend:
            target = target.legend_format(query.legend)
        if query.instant:
            target = target.instant()
        if query.table:
            target = target.format(PromQueryFormat.TABLE)
        panel = panel.with_target(target)
    return panel


def _finish(
    panel: PanelBuilder, title: str, description: str, unit: str, queries: Sequence[Query], w: int, h: int
) -> PanelBuilder:
    panel = panel.title(title).description(description).datasource(DATASOURCE).unit(unit).span(w).height(h)
    return _targets(panel, queries)


def timeseries_panel(
    title: str, description: str, unit: str, *queries: Query, w: int = 12, h: int = 8, stack: bool = False
) -> PanelBuilder:
    panel = timeseries.Panel().fill_opacity(10 if not stack else 60).show_points(common.VisibilityMode.NEVER)
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    panel = panel.legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .calcs(["lastNotNull", "min", "max"])
    )
    return _finish(panel, title, description, unit, queries, w, h)


def _last_value() -> common_builders.ReduceDataOptions:
    """One number per series: its last non-null value (stat, gauge and bar gauge panels)."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    w: int = 6,
    h: int = 4,
    mappings: Sequence[ValueMap] = (),
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    show_name: bool = False,
) -> PanelBuilder:
    """A big number per series; `show_name` shows the legend instead, for series whose labels are the answer."""
    panel = (
        stat.Panel()
        .text_mode(common.BigValueTextMode.NAME if show_name else common.BigValueTextMode.AUTO)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(_last_value())
        .thresholds(_thresholds(thresholds))
    )
    if mappings:
        panel = panel.mappings(list(mappings))
    return _finish(panel, title, description, unit, queries, w, h)


def gauge_panel(
    title: str, description: str, unit: str, *queries: Query, w: int = 6, h: int = 6, max_value: float = 1
) -> PanelBuilder:
    panel = (
        gauge.Panel()
        .min(0)
        .max(max_value)
        .reduce_options(_last_value())
        .thresholds(_thresholds(((None, "green"), (0.8 * max_value, "orange"), (0.9 * max_value, "red"))))
    )
    return _finish(panel, title, description, unit, queries, w, h)


def bargauge_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    w: int = 12,
    h: int = 8,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    max_value: float | None = None,
) -> PanelBuilder:
    panel = (
        bargauge.Panel()
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .min(0)
        .reduce_options(_last_value())
        .thresholds(_thresholds(thresholds))
    )
    if max_value is not None:
        panel = panel.max(max_value)
    return _finish(panel, title, description, unit, queries, w, h)


def table_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    w: int = 12,
    h: int = 8,
    columns: Sequence[str] = (),
) -> PanelBuilder:
    """A table of instant values, one row per series.

    With `columns`, the queries are merged on their labels and their values become columns named in order.
    """
    panel = table.Panel()
    if columns:
        panel = panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
    rename = {f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(columns)}
    panel = panel.with_transformation(
        DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True},
                     "renameByName": rename or {"Value": "value"}},
        )
    )
    instant = [Query(q.expr, q.legend, instant=True, table=True) for q in queries]
    return _finish(panel, title, description, unit, instant, w, h)


def state_mappings(ok: str, bad: str) -> list[ValueMap]:
    """Show a 1/0 gauge as words, green for 1 and red for 0."""
    return [
        ValueMap(
            options={
                "1": ValueMappingResult(text=ok, color="green", index=0),
                "0": ValueMappingResult(text=bad, color="red", index=1),
            }
        )
    ]


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


# --- assembly ---------------------------------------------------------------------------------------

Row = tuple[str, Sequence[PanelBuilder]]


def assemble(ctx: Context, builder: dashboard.Dashboard, title: str, rows: Sequence[Row]) -> dashboard.Dashboard:
    """Add rows and panels in order with stable ids, attaching runbook links to the panels of alert-panels.yaml."""
    next_id = 1
    for row_title, panels in rows:
        builder = builder.with_row(dashboard.Row(row_title).id(next_id))
        next_id += 1
        for panel in panels:
            panel_title = panel.build().title or ""
            alerts = ctx.alert_panels.get((title, panel_title), ())
            if alerts:
                panel = panel.links(runbook_links(alerts))
            builder = builder.with_panel(panel.id(next_id))
            next_id += 1
    return builder


def alert_list_panel(title: str, description: str, alertname_regex: str, *, w: int = 24, h: int = 8) -> PanelBuilder:
    """Grafana's alert list: the alerts of every rule source Grafana knows (the Prometheus data sources with
    alerts/terway-exporter.rules.yaml loaded among them) whose alert name matches.

    It reads alerts, not series, so it has no query. Its own `datasource` option is not set: Grafana compares
    it literally with a data source name and does not expand `${datasource}` in it.
    """
    options = {
        "viewMode": "list",
        "groupMode": "default",
        "groupBy": [],
        "maxItems": 50,
        "sortOrder": 1,
        "dashboardAlerts": False,
        "alertName": "",
        "alertInstanceLabelFilter": f'{{alertname=~"{alertname_regex}"}}',
        "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False, "error": True},
        "showInstances": True,
    }
    return (
        dashboard.Panel()
        .type("alertlist")
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .options(options)
        .span(w)
        .height(h)
    )


def links_to_node(panel: PanelBuilder, *, table_rows: bool = False) -> PanelBuilder:
    """Make each node's value open Terway / Node for that node: from "which node" straight to "why".

    A series carries its labels in `__field.labels`; a table row (format table) has them as columns.
    """
    field = "__data.fields" if table_rows else "__field.labels"
    url = (
        f"/d/terway-node/terway-node?var-datasource=${{datasource}}&var-cluster=${{{field}.cluster}}"
        f"&var-node=${{{field}.node}}&${{__url_time_range}}"
    )
    return panel.data_links([dashboard.DashboardLink(f"Open Terway / Node for ${{{field}.node}}").url(url)])
