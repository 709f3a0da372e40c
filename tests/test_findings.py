"""Findings (`check`, the status page) against the rule file, and their judges on hand-made states.

The rule file is read as it is now, never a copy: an alert added, removed, or with another severity
or `for` fails here until findings/alerts.py (and a judge) follow. The end-to-end agreement test
(test_e2e_alerts.py) then holds every judge to what Prometheus fires on each shipped scenario.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml

from terway_exporter.findings import ALERTS, BY_NAME, JUDGES, evaluate, report_context
from terway_exporter.findings.html import status_page
from terway_exporter.findings.output import WIDTH, to_json, to_json_data, to_text
from terway_exporter.model.cloud import CloudSnapshot, VSwitch
from terway_exporter.model.kube import KubeSnapshot, LeaseStatus, WorkloadStatus
from terway_exporter.model.state import ClusterState, ExporterStats
from terway_exporter.model.status import SourceStatus

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerts" / "terway-exporter.rules.yaml"
SCHEMA = REPO / "docs" / "check.schema.json"
NOW = 1_800_000_000.0
# An alert `check` may leave to Prometheus must look further back than this, or need Prometheus itself.
HISTORY = datetime.timedelta(minutes=30)


def rule_file() -> tuple[dict[str, dict], dict[str, str]]:
    """(alert name -> rule, recording rule name -> expression)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    return ({r["alert"]: r for r in rules if "alert" in r}, {r["record"]: r["expr"] for r in rules if "record" in r})


def test_every_alert_of_the_rule_file_is_known_with_its_severity_and_for():
    alerts, _ = rule_file()
    assert sorted(alerts) == sorted(BY_NAME), "findings/alerts.py must list exactly the rule file's alerts"
    for name, rule in alerts.items():
        spec = BY_NAME[name]
        assert spec.severity == rule["labels"]["severity"], name
        assert spec.alert_for == rule.get("for", "0s"), name
        assert spec.runbook_url == rule["annotations"]["runbook_url"], name


def test_every_alert_is_judged_or_says_why_not():
    judged = {spec.name for spec in ALERTS if not spec.not_judged}
    assert set(JUDGES) == judged


def _lookback(expr: str, records: dict[str, str], seen: frozenset[str] = frozenset()) -> tuple[datetime.timedelta, set]:
    """The furthest an expression looks back (ranges, subqueries, offsets; recording rules expanded),
    and the metric names it selects."""
    furthest, names = datetime.timedelta(0), set()

    def seconds(value) -> datetime.timedelta:
        if value is None:
            return datetime.timedelta(0)
        return value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=float(value))

    def visit(node) -> None:
        nonlocal furthest
        if isinstance(node, promql_parser.SubqueryExpr):
            furthest = max(furthest, seconds(node.range) + seconds(node.offset))
        elif isinstance(node, promql_parser.MatrixSelector):
            furthest = max(furthest, seconds(node.range) + seconds(node.vector_selector.offset))
        elif isinstance(node, promql_parser.VectorSelector):
            furthest = max(furthest, seconds(node.offset))
            names.add(node.name)
            if node.name in records and node.name not in seen:
                inner, inner_names = _lookback(records[node.name], records, seen | {node.name})
                furthest = max(furthest, inner)
                names.update(inner_names)

    promql_parser.walk(promql_parser.parse(expr), visit, None)
    return furthest, names


@pytest.mark.parametrize("spec", [s for s in ALERTS if s.not_judged], ids=lambda s: s.name)
def test_an_alert_left_unjudged_really_needs_history_or_prometheus(spec):
    alerts, records = rule_file()
    furthest, names = _lookback(alerts[spec.name]["expr"], records)
    assert furthest >= HISTORY or "up" in names, (
        f"{spec.name} looks back only {furthest} and does not need Prometheus's own `up`: check must judge it")


# ------------------------------------------------------------------------------ judges on hand-made states


def state(**changes) -> ClusterState:
    base = ClusterState(now=NOW, kube=KubeSnapshot(), cloud=CloudSnapshot(), sources={})
    return replace(base, **changes)


def alerts_of(st: ClusterState) -> set[str]:
    return {f.alert for f in evaluate(st).findings}


def vswitch(available: int, cidr: str = "10.0.0.0/24") -> VSwitch:
    return VSwitch(vswitch_id="vsw-a", vpc_id="vpc-1", zone_id="z-a", cidr_block=cidr, name="a",
                   available_ips=available)


@pytest.mark.parametrize("available,expected", [
    (0, {"TerwayVSwitchIPsExhausted"}),
    (1, {"TerwayVSwitchIPsLow"}),
    (25, {"TerwayVSwitchIPsLow"}),  # 25 of 252 is 9.9%
    (26, set()),  # 10.3%: the rule's < 0.1 is strict
])
def test_vswitch_thresholds_are_the_rules(available, expected):
    st = state(cloud=CloudSnapshot(vswitches={"vsw-a": vswitch(available)}), kube_enabled=False)
    assert alerts_of(st) == expected


def test_a_stale_lease_is_not_judged_while_a_source_fails():
    """The rule's `unless ignoring (source) (terway_exporter_source_up == 0)`: a frozen Lease is what a
    failing source looks like."""
    kube = KubeSnapshot(controlplane=WorkloadStatus("terway-controlplane", desired=1, available=1),
                        controlplane_lease=LeaseStatus(holder="a", renew_time=NOW - 600))
    healthy = {"kube_workloads": SourceStatus("kube_workloads", attempted=True, up=True, last_success=NOW)}
    assert alerts_of(state(kube=kube, sources=healthy)) == {"TerwayControlplaneUnavailable"}
    failing = {**healthy, "cloud_vswitches": SourceStatus("cloud_vswitches", attempted=True, up=False, error="x")}
    assert alerts_of(state(kube=kube, sources=failing)) == {"TerwayExporterSourceFailing"}


def test_a_gated_family_gives_no_finding_before_its_source_synced():
    """CoreDNS at 0 replicas means nothing before the workloads were listed (the family is absent)."""
    kube = KubeSnapshot(coredns=WorkloadStatus("coredns", desired=2, available=0))
    never = {"kube_workloads": SourceStatus("kube_workloads")}  # registered, not read yet
    assert alerts_of(state(kube=kube, sources=never)) == set()
    synced = {"kube_workloads": SourceStatus("kube_workloads", attempted=True, up=True, last_success=NOW)}
    assert alerts_of(state(kube=kube, sources=synced)) == {"TerwayClusterDNSUnavailable"}


def test_own_api_errors_name_the_alert_by_code():
    stats = ExporterStats(cloud_requests={("DescribeVSwitches", "InvalidAccessKeyId.NotFound"): 3,
                                          ("DescribeVSwitches", "Throttling.User"): 2,
                                          ("GetProductQuota", "Forbidden.RAM"): 1,
                                          ("DescribeVSwitches", "Success"): 9})
    report = evaluate(state(stats=stats, kube_enabled=False))
    found = {f.alert: f for f in report.findings}
    assert set(found) == {"TerwayExporterCredentialsInvalid", "TerwayCloudAPIThrottled", "TerwayRAMPermissionDenied"}
    assert found["TerwayCloudAPIThrottled"].evidence[0].label == "exporter_api_calls"
    assert "3 of the exporter's own API calls" in found["TerwayExporterCredentialsInvalid"].evidence[0].detail


# ------------------------------------------------------------------------------ report, exit codes, output


def test_exit_codes_and_status():
    assert evaluate(state(kube_enabled=False)).exit_code == 0
    low = state(cloud=CloudSnapshot(vswitches={"vsw-a": vswitch(3)}), kube_enabled=False)
    assert evaluate(low).exit_code == 1
    empty = state(cloud=CloudSnapshot(vswitches={"vsw-a": vswitch(0)}), kube_enabled=False)
    assert evaluate(empty).exit_code == 2
    failing = replace(empty, sources={"cloud_eni_quota": SourceStatus("cloud_eni_quota", attempted=True, error="e")})
    report = evaluate(failing)
    assert report.exit_code == 3 and report.status == "not_checked"


def test_text_fits_100_columns_and_colours_only_when_asked():
    stats = ExporterStats(cloud_requests={("DescribeNetworkInterfaces" * 3, "Throttling.User"): 2})
    st = state(cloud=CloudSnapshot(vswitches={"vsw-a": vswitch(0)}), stats=stats,
               sources={"cloud_x": SourceStatus("cloud_x", attempted=True, error="y" * 300)}, kube_enabled=False)
    report = evaluate(st)
    plain = to_text(report, report_context(st))
    assert "\x1b" not in plain
    assert max(len(line) for line in plain.splitlines()) <= WIDTH
    assert plain.rstrip().splitlines()[-1].startswith("Summary: NOT CHECKED")
    coloured = to_text(report, report_context(st), colour=True)
    assert "\x1b[1;31mCRITICAL\x1b[0m" in coloured
    visible = re.sub(r"\x1b\]8;;[^\x1b]*\x1b\\|\x1b\[[0-9;]*m", "", coloured)
    assert visible == plain  # colour and hyperlinks add no visible character


def test_json_follows_its_documented_schema():
    stats = ExporterStats(cloud_requests={("GetProductQuota", "Forbidden.RAM"): 1})
    st = state(cloud=CloudSnapshot(vswitches={"vsw-a": vswitch(1)}), stats=stats, kube_enabled=False)
    report = evaluate(st)
    document = json.loads(to_json(report, report_context(st)))
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert document == to_json_data(report, report_context(st))
    assert {a["id"]: a["status"] for a in document["areas"]}["daemon"] == "not_checked"
    assert document["exit_code"] == 1


def test_status_page_escapes_what_it_shows():
    bad = "<script>alert(1)</script>"
    st = state(sources={"cloud_x": SourceStatus("cloud_x", attempted=True, error=bad)}, kube_enabled=False)
    page = status_page(evaluate(st), report_context(st)).decode()
    assert bad not in page and "&lt;script&gt;" in page
    assert "<script" not in page  # no JavaScript at all
