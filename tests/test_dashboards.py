"""The Grafana dashboards: generated, well-formed, tied to the alerts and runbooks, and live on real data.

The static tests read the committed JSON under grafana/dashboards/. The end-to-end test runs the
simulator's `demo` scenario (`terway-exporter simulate` + `terway-exporter serve`), a real Prometheus
scraping the exporter, and every panel query through Prometheus' HTTP API.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from promql_parser import Call, MatrixSelector, VectorSelector, parse, walk

from support.stack import free_port, http_get, shorten_for, start_process, start_serve, wait_until

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
ALERT_PANELS = GRAFANA / "alert-panels.yaml"
RULES = REPO / "alerts" / "terway-exporter.rules.yaml"
RUNBOOKS = REPO / "docs" / "runbooks"
METRICS_MD = REPO / "docs" / "metrics.md"
RUNBOOK_URL = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/{}.md"

sys.path.insert(0, str(GRAFANA))  # the generator's modules sit next to grafana/generate.py
import terway_dashboards  # noqa: E402

UIDS = {
    "terway-overview": "Terway / Overview",
    "terway-ip-capacity": "Terway / IP capacity",
    "terway-node": "Terway / Node",
    "terway-exporter": "Terway / Exporter",
}
# Stand-ins for Grafana's variables in the static checks; distinctive so a check can tell them apart.
RATE_INTERVAL = datetime.timedelta(seconds=123)
STATIC_VARS = {"$__rate_interval": f"{RATE_INTERVAL.seconds}s", "$cluster": "cluster-var", "$node": "node-var"}
RANGE_FUNCTIONS = {"rate", "irate", "increase"}
# Series Prometheus itself writes for every target; a panel may read them next to the exporter's.
PROMETHEUS_SERIES = {"up"}
# kube-state-metrics' series a panel may read where the exporter does not repeat them (restart counts, issue 13),
# with kube_pod_info to join a pod to its node.
KUBE_STATE_METRICS = {"kube_pod_container_status_restarts_total", "kube_pod_init_container_status_restarts_total",
                      "kube_pod_info"}


@dataclass(frozen=True)
class Target:
    uid: str
    panel: str
    ref: str
    expr: str

    def substituted(self, values: dict[str, str]) -> str:
        expr = self.expr
        for name, value in values.items():
            expr = expr.replace(name, value)
        return expr

    def __str__(self) -> str:
        return f"{self.uid} / {self.panel} / {self.ref}"


def load_dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dash: dict) -> Iterator[dict]:
    return (p for p in dash["panels"] if p["type"] != "row")


def all_targets() -> list[Target]:
    return [
        Target(uid, panel["title"], target["refId"], target["expr"])
        for uid, dash in load_dashboards().items()
        for panel in panels(dash)
        for target in panel.get("targets", [])
    ]


def selectors(expr: str) -> list[VectorSelector]:
    found: list[VectorSelector] = []
    walk(parse(expr), pre_visit=lambda node: found.append(node) if isinstance(node, VectorSelector) else None)
    return found


def contract_metrics() -> set[str]:
    """Every series name the metric contract promises, histogram series included."""
    names: set[str] = set()
    for name, kind in re.findall(r"^\| `([a-z_:]+)` \| (\w+) \|", METRICS_MD.read_text(), re.M):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def rule_groups() -> list[dict]:
    data = yaml.safe_load(RULES.read_text())
    return data.get("groups") or data.get("spec", {}).get("groups", [])


def alert_names() -> set[str]:
    return {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def alert_panels() -> dict[str, terway_dashboards.AlertPanel]:
    return {entry.alert: entry for entry in terway_dashboards.load_alert_panels(ALERT_PANELS)}


# --- generated, stable, well-formed --------------------------------------------------------------


def test_committed_json_is_what_the_generator_writes():
    ctx = terway_dashboards.context(terway_dashboards.load_alert_panels(ALERT_PANELS))
    expected = terway_dashboards.render(ctx)
    committed = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert sorted(committed) == sorted(expected)
    stale = [name for name in expected if committed[name] != expected[name]]
    assert not stale, f"run `python grafana/generate.py`: {stale} differ from the generator's output"


def test_generator_check_mode_agrees(tmp_path):
    sys.path.insert(0, str(GRAFANA))
    import generate

    assert generate.main(["--check"]) == 0
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1
    assert generate.main(["--multi-cluster", "--out", str(tmp_path)]) == 0
    shown = json.loads((tmp_path / "terway-overview.json").read_text())
    assert {v["name"]: v.get("hide", 0) for v in shown["templating"]["list"]}["cluster"] == 0


def test_four_dashboards_with_stable_uids_titles_and_tag():
    dashboards = load_dashboards()
    assert {uid: dash["title"] for uid, dash in dashboards.items()} == UIDS
    for uid, dash in dashboards.items():
        assert dash["uid"] == uid
        assert "terway" in dash["tags"]
        assert dash["schemaVersion"] == 41  # the Grafana 11.6 flavour of the SDK


def test_each_dashboard_links_to_the_others_by_tag():
    for dash in load_dashboards().values():
        assert {"type": "dashboards", "tags": ["terway"]}.items() <= dash["links"][0].items()
        assert dash["links"][0]["includeVars"] and dash["links"][0]["keepTime"]


def test_datasource_and_hidden_cluster_variables():
    for uid, dash in load_dashboards().items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        cluster = variables["cluster"]
        assert cluster["query"] == "label_values(terway_exporter_build_info, cluster)"
        assert cluster["hide"] == 2, f"{uid}: the cluster variable is shown only in multi-cluster builds"
        # With no cluster label at all, All must still match every series.
        assert cluster["includeAll"] and cluster["allValue"] == ".*"
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == "${datasource}"
    node = {v["name"]: v for v in load_dashboards()["terway-node"]["templating"]["list"]}["node"]
    assert node["query"] == 'label_values(terway_node_info{cluster=~"$cluster"}, node)'


def test_every_panel_uses_the_datasource_variable_and_has_a_unit():
    for uid, dash in load_dashboards().items():
        for panel in panels(dash):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (uid, panel["title"])
            assert panel["fieldConfig"]["defaults"].get("unit"), (uid, panel["title"])
            assert panel.get("description"), (uid, panel["title"])


def test_data_links_open_an_existing_dashboard_for_the_node():
    linked = 0
    for uid, dash in load_dashboards().items():
        for panel in panels(dash):
            for link in panel["fieldConfig"]["defaults"].get("links", []):
                target = re.match(r"/d/([^/?]+)/", link["url"])
                assert target and target.group(1) in UIDS, (uid, panel["title"], link["url"])
                assert "var-node=${__" in link["url"] and "var-cluster=${__" in link["url"]
                linked += 1
    assert linked >= 4  # the per-node panels of Overview and IP capacity


def test_panel_titles_are_unique_within_a_dashboard():
    for uid, dash in load_dashboards().items():
        titles = [panel["title"] for panel in panels(dash)]
        assert len(titles) == len(set(titles)), uid


def test_alert_list_shows_the_terway_alerts_of_the_chosen_prometheus():
    lists = [p for p in panels(load_dashboards()["terway-overview"]) if p["type"] == "alertlist"]
    assert len(lists) == 1
    options = lists[0]["options"]
    assert options["alertInstanceLabelFilter"] == '{alertname=~"Terway.*"}'
    assert "datasource" not in options  # compared literally with data source names: "${datasource}" matches none
    assert options["stateFilter"]["firing"]
    for alert in alert_names():
        assert re.fullmatch("Terway.*", alert), f"{alert} would not show in the alert list"


# --- queries -------------------------------------------------------------------------------------


def test_every_panel_but_the_alert_list_has_queries():
    for uid, dash in load_dashboards().items():
        for panel in panels(dash):
            if panel["type"] != "alertlist":
                assert panel.get("targets"), (uid, panel["title"])
                assert all(t["expr"] and t["refId"] for t in panel["targets"]), (uid, panel["title"])


@pytest.mark.parametrize("target", all_targets(), ids=str)
def test_query_parses_and_reads_only_exported_or_recorded_metrics(target: Target):
    expr = target.substituted(STATIC_VARS)
    assert "$" not in expr, f"{target}: an unknown variable is left in {expr}"
    known = contract_metrics() | recorded_names() | PROMETHEUS_SERIES | KUBE_STATE_METRICS
    names = {s.name for s in selectors(expr)}
    assert names and names <= known, f"{target}: reads {sorted(names - known)}, which nothing exposes"


# Families without a `node` label that the Node dashboard joins to the node through a selector that has one
# (terway_node_info's instance_type, kube_pod_info's pod): they cannot be scoped to $node themselves.
JOINED_TO_THE_NODE = {"terway_instance_type_eni_limit", "terway_instance_type_ips_per_eni",
                      "kube_pod_container_status_restarts_total", "kube_pod_init_container_status_restarts_total"}


@pytest.mark.parametrize("target", all_targets(), ids=str)
def test_every_selector_is_scoped_to_the_cluster_variable(target: Target):
    node_scoped = []
    for selector in selectors(target.substituted(STATIC_VARS)):
        matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
        assert ("cluster", "MatchOp.Re", "cluster-var") in matchers, f"{target}: {selector.name} lacks $cluster"
        node_scoped.append(("node", "MatchOp.Equal", "node-var") in matchers)
        if target.uid == "terway-node" and selector.name not in JOINED_TO_THE_NODE:
            assert node_scoped[-1], f"{target}: {selector.name} lacks $node"
    if target.uid == "terway-node":
        assert any(node_scoped), f"{target}: no selector is scoped to $node"


@pytest.mark.parametrize("target", all_targets(), ids=str)
def test_rate_and_increase_use_rate_interval(target: Target):
    calls: list[Call] = []
    walk(parse(target.substituted(STATIC_VARS)),
         pre_visit=lambda node: calls.append(node) if isinstance(node, Call) else None)
    for call in calls:
        if call.func.name in RANGE_FUNCTIONS:
            (window,) = [arg for arg in call.args if isinstance(arg, MatrixSelector)]
            assert window.range == RATE_INTERVAL, \
                f"{target}: {call.func.name} without $__rate_interval"


# --- alerts lead to panels, panels to runbooks -----------------------------------------------------


def test_every_alert_has_a_panel():
    mapped = alert_panels()
    assert alert_names() <= set(mapped), f"alerts without a panel: {sorted(alert_names() - set(mapped))}"
    unknown = sorted(set(mapped) - alert_names())
    assert not unknown, f"alert-panels.yaml names alerts that do not exist: {unknown}"


def test_the_panel_of_each_alert_links_to_its_runbook():
    by_title = {dash["title"]: {p["title"]: p for p in panels(dash)} for dash in load_dashboards().values()}
    for alert, entry in alert_panels().items():
        panel = by_title[entry.dashboard][entry.panel]
        urls = [link["url"] for link in panel.get("links", [])]
        assert RUNBOOK_URL.format(alert) in urls, f"{alert}: {entry.dashboard} / {entry.panel} has no runbook link"
    linked = {
        link["url"]
        for dash in load_dashboards().values()
        for panel in panels(dash)
        for link in panel.get("links", [])
    }
    assert linked == {RUNBOOK_URL.format(alert) for alert in alert_panels()}


def _diagnosis(runbook: Path) -> str:
    text = runbook.read_text()
    match = re.search(r"^##+\s*Diagnosis\s*$(.*?)(?=^##+\s|\Z)", text, re.M | re.S)
    assert match, f"{runbook.name} has no Diagnosis section"
    return match.group(1)


def test_each_runbook_diagnosis_names_the_dashboard_and_panel():
    for alert, entry in alert_panels().items():
        diagnosis = _diagnosis(RUNBOOKS / f"{alert}.md")
        assert entry.dashboard in diagnosis, f"{alert}.md Diagnosis does not name dashboard {entry.dashboard!r}"
        assert entry.panel in diagnosis, f"{alert}.md Diagnosis does not name panel {entry.panel!r}"


def _cell(text: str) -> str:
    """A markdown table cell as plain text: links, code spans and emphasis removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[`*_]", "", text).strip()


def test_runbook_index_agrees_with_alert_panels():
    rows = {}
    for line in (RUNBOOKS / "README.md").read_text().splitlines():
        cells = [_cell(c) for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in alert_names():
            rows[cells[0]] = (cells[2], cells[3])
    expected = {alert: (entry.dashboard, entry.panel) for alert, entry in alert_panels().items()}
    assert rows == expected


# --- end to end: every query returns data from a real Prometheus --------------------------------

# (dashboard uid, panel title, refId) -> why the query may return nothing on the demo scenario.
ALLOWED_EMPTY: dict[tuple[str, str, str], str] = {
    ("terway-exporter", "Kubernetes watch restarts", "A"):
        "the counter has a series only once a watch restarted; the demo's watches run without a restart",
    ("terway-ip-capacity", "Time until vSwitch IPs run out", "A"):
        "lists only vSwitches whose free IPs shrink; the demo's stay level (scenario vswitch-draining shrinks)",
    ("terway-node", "Daemon container restarts", "A"):
        "kube-state-metrics' restart counters: the test's Prometheus scrapes only the exporter",
    ("terway-node", "Daemon crash causes", "A"):
        "alert-only signal: the demo's crash-looping daemon logs an RBAC error, which names no known error code",
    ("terway-overview", "Daemon crash causes by node", "A"):
        "alert-only signal: the demo's crash-looping daemon logs an RBAC error, which names no known error code",
}
E2E_VARS = {"$__rate_interval": "1m", "$cluster": "demo"}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """simulate(demo) -> serve -> Prometheus scraping it every second with target label cluster=demo."""
    workdir = tmp_path_factory.mktemp("dashboards-e2e")
    procs = []
    try:
        exporter_port = start_serve("demo", workdir, procs,
                                    ["--cloud-poll-interval", "5s", "--eni-census-interval", "5s"])
        prom_port = _start_prometheus(workdir, exporter_port, procs)
        api = PrometheusAPI(prom_port)
        # Every source has succeeded once (the demo throttles the first ENI census), and each success was
        # scraped at least twice: enough samples for rate() and deriv().
        wait_until(lambda: api.query(
            'count(terway_exporter_source_up{cluster="demo"})'
            ' == count(terway_exporter_source_last_success_timestamp_seconds{cluster="demo"})'
            ' and on () min(count_over_time('
            'terway_exporter_source_last_success_timestamp_seconds{cluster="demo"}[1m])) >= 2'
        ), 90, "every source of the exporter to succeed and be scraped twice")
        yield api
    finally:
        for proc in reversed(procs):
            proc.stop()


def _start_prometheus(workdir: Path, exporter_port: int, procs: list) -> int:
    rule_files = [str(shorten_for(RULES, workdir / "rules.yaml"))] if RULES.exists() else []
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_files,
        "scrape_configs": [{"job_name": "terway-exporter", "static_configs": [
            {"targets": [f"127.0.0.1:{exporter_port}"], "labels": {"cluster": "demo"}}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    procs.append(start_process("prometheus", [
        shutil.which("prometheus") or "prometheus", f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}",
    ], workdir))
    wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 30, "Prometheus to be ready")
    return port


@dataclass(frozen=True)
class PrometheusAPI:
    port: int

    def get(self, path: str, **params: str) -> object:
        import urllib.parse

        status, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise ValueError(f"Prometheus {path} {params}: {status} {body[:300]!r}")
        return data["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("query", query=expr, time=f"{time.time():.3f}")["result"]


@pytest.mark.e2e
@pytest.mark.slow
def test_variable_queries_find_the_cluster_and_nodes(prometheus: PrometheusAPI):
    clusters = prometheus.get("label/cluster/values", **{"match[]": "terway_exporter_build_info"})
    assert clusters == ["demo"]
    nodes = prometheus.get("label/node/values", **{"match[]": 'terway_node_info{cluster=~"demo"}'})
    assert len(nodes) >= 2


@pytest.mark.e2e
@pytest.mark.slow
def test_every_panel_query_returns_data(prometheus: PrometheusAPI):
    nodes = prometheus.get("label/node/values", **{"match[]": 'terway_node_info{cluster=~"demo"}'})
    empty = []
    for target in all_targets():
        key = (target.uid, target.panel, target.ref)
        # The Node dashboard shows one node at a time: a query passes when some node has data.
        node_values = nodes if target.uid == "terway-node" else ["unused"]
        has_data = any(prometheus.query(target.substituted({**E2E_VARS, "$node": node})) for node in node_values)
        if not has_data and key not in ALLOWED_EMPTY:
            empty.append(f"{target}: no data for {target.substituted(E2E_VARS)}")
    assert not empty, "\n".join(empty)
