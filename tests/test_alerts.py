"""The shipped rules, their promtool tests, the runbooks, and the metrics the rules read.

- `promtool check rules --lint=all --lint-fatal` and `promtool test rules alerts/tests/*.yaml` pass;
- every alert carries severity, summary, description and runbook_url built from the one base URL,
  and every alert has a promtool case that fires, an earlier one that does not (its `for`), and a
  place in the healthy-cluster case that stays silent;
- every runbook_url names a page with the required sections, and docs/runbooks/README.md lists every
  alert with its severity, dashboard and panel, matching the page;
- every metric a rule reads (parsed with promql-parser) is a family of the metric contract
  (docs/metrics.md), a recording rule of the file, or `up`; and the exporter really exposes it when
  run on the `demo` scenario.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import promql_parser
import pytest
import yaml

from support.stack import http_get, start_demo, wait_until

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerts" / "terway-exporter.rules.yaml"
RULE_TESTS = sorted((REPO / "alerts" / "tests").glob("*.yaml"))
RUNBOOKS = REPO / "docs" / "runbooks"
METRICS_DOC = REPO / "docs" / "metrics.md"
RUNBOOK_BASE = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/"
DASHBOARDS = ("Terway / Overview", "Terway / IP capacity", "Terway / Node", "Terway / Exporter")
SEVERITIES = ("critical", "warning", "info")
# The last line of every runbook page names the section of the Terway common issues guide it covers.
GUIDE_SECTION = "Terway common issues guide section: "
# Pages for that guide's issues that no metric can detect.
UNDETECTABLE = ("HighNetworkLatency", "LowNetworkThroughput", "LogCollection", "PodToPodCommunication")
# Series Prometheus itself makes, which the rules may read.
PROMETHEUS_SERIES = {"up"}

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def load_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


ALERTS = {rule["alert"]: rule for rule in load_rules() if "alert" in rule}
RECORDS = {rule["record"]: rule for rule in load_rules() if "record" in rule}


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=900, cwd=REPO)


# ---------------------------------------------------------------- promtool


def test_rules_pass_promtool_check_without_lint_warnings():
    result = run_promtool("check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS) + len(RECORDS)} rules found" in result.stdout
    assert "WARNING" not in (result.stdout + result.stderr).upper()


@pytest.mark.slow  # promtool over every rule test file: about 20 s
def test_promtool_unit_tests_pass():
    """Every file of alerts/tests through `promtool test rules`, one promtool per file, as many at once as
    there are cores (largest first): promtool evaluates a file's tests one after the other on one core."""
    assert RULE_TESTS, "no promtool test files in alerts/tests"
    largest_first = sorted(RULE_TESTS, key=lambda p: p.stat().st_size, reverse=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        reports = pool.map(lambda p: run_promtool("test", "rules", str(p)), largest_first)
        results = dict(zip(largest_first, reports, strict=True))
    failed = {p.name: r.stdout + r.stderr for p, r in results.items()
              if r.returncode != 0 or "FAILED" in r.stdout + r.stderr}
    assert not failed, "\n".join(f"{name}:\n{out}" for name, out in failed.items())


def alert_cases() -> dict[str, list[tuple[str, int, bool]]]:
    """alertname -> [(test name, eval seconds, fires?)] over every promtool test case."""
    cases: dict[str, list[tuple[str, int, bool]]] = {}
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../terway-exporter.rules.yaml"], path
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                seconds = promql_parser.parse_duration(case["eval_time"]).total_seconds()
                cases.setdefault(case["alertname"], []).append(
                    (f"{path.name}: {test.get('name', '')}", int(seconds), bool(case.get("exp_alerts"))))
    return cases


def test_every_alert_has_firing_pending_and_healthy_cases():
    cases = alert_cases()
    assert set(cases) <= set(ALERTS), f"tests for unknown alerts: {sorted(set(cases) - set(ALERTS))}"
    for name, rule in ALERTS.items():
        runs = cases.get(name, [])
        fires = [(test, t) for test, t, firing in runs if firing]
        assert fires, f"{name}: no promtool case where it fires"
        # The `for` is tested: some case where it fires also expects silence earlier in the same test.
        assert any(not firing and t < fire_t and test == fire_test
                   for fire_test, fire_t in fires for test, t, firing in runs), f"{name}: no 'not yet' case"
        healthy = [t for test, t, firing in runs if test.startswith("healthy.yaml") and not firing]
        assert healthy, f"{name}: not checked silent on the healthy cluster"
        assert "for" in rule, f"{name}: no `for`"


# ---------------------------------------------------------------- labels and annotations


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_labels_and_annotations(name):
    rule = ALERTS[name]
    assert re.fullmatch(r"Terway[A-Z][A-Za-z]+", name)
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert set(notes) >= {"summary", "description", "runbook_url"}
    assert "{{" not in notes["summary"], "summary must be static"
    assert "$labels" in notes["description"] or "$value" in notes["description"], "description not templated"
    assert notes["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"


def test_runbook_base_appears_only_as_the_url_prefix():
    """The Helm chart swaps the base by replacing one exact string; it must appear nowhere else."""
    text = RULES.read_text()
    prefixes = re.findall(r"runbook_url: (\S+/)[A-Za-z]+\.md", text)
    assert len(prefixes) == len(ALERTS) and set(prefixes) == {RUNBOOK_BASE}
    assert text.count(RUNBOOK_BASE) == len(ALERTS) + 1  # plus the header comment that documents it


# ---------------------------------------------------------------- runbooks


def page(name: str) -> str:
    return (RUNBOOKS / f"{name}.md").read_text()


def dashboard_line(text: str) -> tuple[str, str]:
    match = re.search(r'^Dashboard: (Terway / [A-Za-z ]+?) → panel "([^"]+)"$', text, re.M)
    assert match, "no line `Dashboard: Terway / <name> → panel \"<panel>\"`"
    return match.group(1), match.group(2)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_runbook_page_has_the_required_sections(name):
    path = RUNBOOKS / f"{name}.md"
    assert path.is_file(), f"runbook_url of {name} points to a missing page {path}"
    text = path.read_text()
    assert text.startswith(f"# {name}\n")
    headings = re.findall(r"^## (.+)$", text, re.M)
    required = ["Meaning", "Impact", "Diagnosis", "Mitigation"]
    assert [h for h in headings if h in required] == required, headings
    diagnosis = text.split("## Diagnosis", 1)[1].split("## Mitigation", 1)[0]
    assert dashboard_line(diagnosis)[0] in DASHBOARDS
    assert re.search(r"```(bash|sh)\n.*?(kubectl|aliyun) ", diagnosis, re.S), "no kubectl/aliyun command"
    last = text.rstrip().splitlines()[-1]
    assert last.startswith(GUIDE_SECTION), "the last line names the Terway common issues guide section it covers"


@pytest.mark.parametrize("name", UNDETECTABLE)
def test_pages_for_undetectable_issues(name):
    text = page(name)
    assert "## Diagnosis" in text and "## Mitigation" in text
    assert text.rstrip().splitlines()[-1].startswith(GUIDE_SECTION)


def readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (RUNBOOKS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"\[(\w+)\]\((\w+)\.md\)", cells[0]) if line.startswith("|") else None
        if match:
            assert match.group(1) == match.group(2), line
            rows[match.group(1)] = cells[1:]
    return rows


def test_readme_lists_every_alert_with_severity_dashboard_and_panel():
    rows = readme_rows()
    assert set(ALERTS) <= set(rows), f"missing from README: {sorted(set(ALERTS) - set(rows))}"
    for name, rule in ALERTS.items():
        severity, dashboard, panel = rows[name][:3]
        assert severity == rule["labels"]["severity"], name
        assert (dashboard, panel) == dashboard_line(page(name)), f"{name}: README and page disagree"
    readme = (RUNBOOKS / "README.md").read_text()
    for name in UNDETECTABLE:
        assert f"({name}.md)" in readme


# ---------------------------------------------------------------- metric names


def contract_families() -> set[str]:
    """Names in the first column of docs/metrics.md's tables."""
    names = set(re.findall(r"^\| `([a-z_:]+)` \|", METRICS_DOC.read_text(), re.M))
    assert len(names) > 40, "could not parse docs/metrics.md"
    return names


def selected_metrics(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rule_metrics() -> set[str]:
    return set().union(*(selected_metrics(str(rule["expr"])) for rule in load_rules()))


def test_rules_read_only_contract_metrics_and_their_own_recordings():
    unknown = rule_metrics() - contract_families() - set(RECORDS) - PROMETHEUS_SERIES
    assert not unknown, f"rules read metrics outside docs/metrics.md: {sorted(unknown)}"


def test_every_recording_rule_is_read_by_an_alert():
    read = set().union(*(selected_metrics(str(rule["expr"])) for rule in ALERTS.values()))
    assert set(RECORDS) <= read, f"recording rules no alert reads: {sorted(set(RECORDS) - read)}"


def exposed_families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


@pytest.mark.slow  # a demo process
def test_the_exporter_exposes_every_family_the_rules_read(tmp_path):
    wanted = rule_metrics() - set(RECORDS) - PROMETHEUS_SERIES
    missing: set[str] = set(wanted)

    def complete() -> bool:
        # /readyz turns 200 after each source's first attempt; the exposition follows within a render.
        status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert status == 200
        missing.intersection_update(wanted - exposed_families(body.decode()))
        return not missing

    proc, port = start_demo("demo", tmp_path)
    try:
        wait_until(complete, 30, "every family the rules read", interval=1)
    except TimeoutError:
        pytest.fail(f"families the rules read but the exporter does not expose on `demo`: {sorted(missing)}")
    finally:
        proc.stop()
