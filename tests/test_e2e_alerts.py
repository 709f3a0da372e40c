"""End to end: simulator -> exporter -> real Prometheus (shipped rules) -> Alertmanager -> webhook.

Every problem scenario runs as its own `terway-exporter demo` process; one Prometheus
scrapes them all (target label `scenario`) and evaluates the shipped rules every
2 s with `for` shortened to 1 s (the test's only change to the rules). Each
scenario must raise its alerts, with their runbook_url, and the healthy scenario
must raise none.

The near-miss scenarios (everyday operations: a node-pool scale-out, a rolling update, ...) go through
bench/detection.py's harness instead (tests/test_detection_harness.py), time compressed 10x with every `for`
shortened in proportion: their transients last seconds, which a 1 s `for` would page on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.agreement import (
    demo_endpoints,
    findings_set,
    firing_set,
    one_shot_faults,
    process_age,
    run_check,
)
from support.stack import RULES_FILE, MonitoringStack, free_port, shorten_for, start_demo, wait_until
from terway_exporter.sources.kube.events import ALERT_WINDOW_SECONDS
from terway_simulator.world import scenario_names

# A real Prometheus and Alertmanager over forty demo processes: end to end, and minutes long.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUNBOOK_BASE = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/"

# scenario -> alerts it must raise. Each alert of the contract appears at least once.
EXPECTED: dict[str, set[str]] = {
    "vswitch-exhausted": {"TerwayVSwitchIPsExhausted", "TerwayVSwitchIPsLow"},
    "eni-quota-near-limit": {"TerwayENIQuotaNearLimit"},
    "leaked-enis": {"TerwayLeakedENIs"},
    "throttled": {"TerwayCloudAPIThrottled"},
    "bad-credentials": {"TerwayExporterCredentialsInvalid", "TerwayExporterSourceFailing"},
    "ram-forbidden": {"TerwayRAMPermissionDenied"},
    "missing-vswitch": {"TerwayConfigInvalidReference"},
    "config-invalid": {"TerwayConfigInvalid"},
    "crashloop-bad-credentials": {"TerwayDaemonCrashLooping", "TerwayCloudCredentialsInvalid"},
    "crashloop-ram-forbidden": {"TerwayDaemonCrashLooping", "TerwayRAMPermissionDenied"},
    "crashloop-missing-vswitch": {"TerwayDaemonCrashLooping", "TerwayConfigInvalidReference"},
    "cni-config-missing": {"TerwayCNIConfigMissing"},
    "stuck-vswitch-exhausted": {"TerwayPodsStuckContainerCreating", "TerwayVSwitchIPsExhausted",
                                "TerwayZoneWithoutIPs", "TerwayPodsCannotGetIP"},
    "stuck-eni-limit": {"TerwayPodsStuckContainerCreating", "TerwayNodeENILimitReached", "TerwayPodsCannotGetIP"},
    "stuck-eni-quota": {"TerwayPodsStuckContainerCreating", "TerwayENIQuotaNearLimit", "TerwayPodsCannotGetIP"},
    "zone-without-vswitch": {"TerwayZoneWithoutVSwitch"},
    "pool-below-minimum": {"TerwayIPPoolBelowMinimum"},
    "service-cidr-mismatch": {"TerwayServiceCIDRMismatch"},
    "coredns-down": {"TerwayClusterDNSUnavailable"},
    "controlplane-down": {"TerwayControlplaneUnavailable"},
    "controlplane-degraded": {"TerwayControlplaneDegraded"},
    "openapi-sync-stale": {"TerwayOpenAPISyncStale"},
}
DEAD_TARGET = "exporter-down"  # a target nobody serves: TerwayExporterDown
QUIET = ("healthy", "legacy-ipam", "near-miss-vswitch-11pct", "near-miss-eni-quota-79pct")  # must raise nothing
# Alerts no scenario can raise within this test, and why (their promtool tests cover them).
NOT_EXERCISED = {
    "TerwayENIQuotaExhaustionForecast": "forecasts only once the quota usage has a day of history "
                                        "(alerts/tests/eni-quota-forecast.yaml)",
    "TerwayVSwitchIPsExhaustionForecast": "forecasts only once the free IPs have an hour of history "
                                          "(alerts/tests/ip-capacity.yaml)",
    "TerwayNodeInsufficientIP": "fires only once SufficientIP was False for 15 of the last 30 minutes, longer "
                                "than this test runs (alerts/tests/ip-capacity.yaml)",
}
# Every other shipped scenario runs too, so `check` can be held to the alerts on all of them.
OTHERS = tuple(s for s in scenario_names() if s not in EXPECTED and s not in QUIET)
DEMO_ARGS = {"scale": ("--nodes", "50")}  # the benchmark cluster, at a size this machine serves quickly


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir: Path = tmp_path_factory.mktemp("e2e-alerts")
    scenarios = [*EXPECTED, *QUIET, *OTHERS]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {s: pool.submit(start_demo, s, workdir, DEMO_ARGS.get(s, ())) for s in scenarios}
    started = {s: f.result() for s, f in futures.items() if f.exception() is None}
    failed = {s: f.exception() for s, f in futures.items() if f.exception() is not None}
    if failed:  # stop what did start before reporting what did not
        for proc, _ in started.values():
            proc.stop()
        pytest.fail(f"scenarios that did not start: {failed}")
    demos = {name: proc for name, (proc, _) in started.items()}
    targets = {name: port for name, (_, port) in started.items()}
    targets[DEAD_TARGET] = free_port()
    rules = shorten_for(RULES_FILE, workdir / "rules.yaml")
    monitoring = MonitoringStack(workdir, targets, rule_files=[rules], demos=demos).start()
    try:
        yield monitoring
    finally:
        monitoring.stop()
        for proc in demos.values():
            proc.stop()


def received(stack: MonitoringStack) -> dict[str, dict[str, dict]]:
    """scenario -> alertname -> one webhook alert."""
    by_scenario: dict[str, dict[str, dict]] = {}
    for alert in stack.webhook.firing():
        labels = alert["labels"]
        by_scenario.setdefault(labels.get("scenario", ""), {})[labels["alertname"]] = alert
    return by_scenario


def test_check_findings_are_the_alerts_prometheus_fires(stack):
    """For every shipped scenario, `terway-exporter check` on the demo's own simulators finds exactly the
    alerts Prometheus fires for that demo (rules from the rule file, `for` shortened), the alerts `check`
    reports as not judged (they need history) aside. Prometheus lags a scrape and an evaluation behind,
    so a scenario is compared again until both agree, and fails with the last difference.

    Runs first, one scenario after the other (check runs in this process): the alerts on Terway's events
    count the last 10 minutes, and so does `check`; a demo counts its scenario's events of the 10 minutes
    before it started. Near the end of that window the two leave it a scrape apart, so a demo compared
    later than that (a loaded machine) is compared without that signal."""
    def scraped() -> bool:
        up = {r["metric"]["scenario"] for r in stack.query("up == 1")}
        return set(stack.demos) <= up
    wait_until(scraped, 120, "every demo to be scraped", interval=1)

    def compare(scenario: str) -> str | None:
        endpoints = demo_endpoints(stack.demos[scenario])
        own = one_shot_faults(scenario)
        last: dict[str, object] = {}

        def agree() -> bool:
            code, document = run_check(scenario, endpoints)
            assert code == document["exit_code"], (scenario, code, document["exit_code"])
            # Past 10 minutes the demo's Terway events have left the alerts' window (see ALERT_WINDOW_SECONDS).
            late = process_age(stack.demos[scenario]) > ALERT_WINDOW_SECONDS - 30
            not_judged = {n["alert"] for n in document["not_judged"]}
            found = findings_set(document, drop_own_calls=own, drop_events=late)

            def prometheus_agrees() -> bool:
                fired = firing_set(stack, scenario, drop_own_calls=own, drop_events=late) - not_judged
                last.update(code=code, found=found, fired=fired, late=late)
                return found == fired
            # Prometheus reaches the same state a scrape, an evaluation and the shortened `for` later: ask
            # it again for a while before judging again (a check costs far more than a query).
            try:
                return wait_until(prometheus_agrees, 20, f"Prometheus to catch up on {scenario}", interval=1)
            except TimeoutError:
                return False
        try:
            wait_until(agree, 150, f"check and Prometheus to agree on {scenario}", interval=1)
        except TimeoutError:
            found, fired = last.get("found", set()), last.get("fired", set())
            return (f"only check: {sorted(found - fired)}; only Prometheus: {sorted(fired - found)}; "
                    f"exit {last.get('code')}" + ("; compared past the event window" if last.get("late") else ""))
        return None

    results = {scenario: compare(scenario) for scenario in sorted(stack.demos)}
    disagreements = {scenario: diff for scenario, diff in results.items() if diff}
    assert not disagreements, disagreements


def test_every_contract_alert_is_exercised():
    text = RULES_FILE.read_text()
    exercised = set().union(*EXPECTED.values()) | {"TerwayExporterDown"} | set(NOT_EXERCISED)
    import yaml
    alerts = {r["alert"] for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r}
    assert alerts <= exercised, f"alerts without an end-to-end scenario: {sorted(alerts - exercised)}"


def test_each_scenario_raises_its_alerts_with_runbooks(stack):
    def complete() -> bool:
        got = received(stack)
        return all(want <= set(got.get(s, {})) for s, want in EXPECTED.items()) and \
            "TerwayExporterDown" in got.get(DEAD_TARGET, {})
    try:
        wait_until(complete, 240, "every scenario's alerts at the webhook", interval=1)
    except TimeoutError:
        got = received(stack)
        missing = {s: sorted(w - set(got.get(s, {}))) for s, w in EXPECTED.items() if w - set(got.get(s, {}))}
        pytest.fail(f"alerts that never reached Alertmanager's webhook: {missing}")
    for scenario, alerts in received(stack).items():
        for name, alert in alerts.items():
            assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}{name}.md", (scenario, name)
            assert alert["labels"]["severity"] in ("critical", "warning", "info")
            assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_quiet_scenarios_raise_nothing(stack):
    # Give the rules time to see the quiet targets, then look: nothing may have fired for them.
    # Ten scrapes of every quiet target: rules evaluated at least ten times on each.
    for scenario in QUIET:
        wait_until(lambda s=scenario: stack.query(f'count_over_time(up{{scenario="{s}"}}[5m]) >= 10'), 90,
                   f"{scenario} to be scraped ten times", interval=1)
    active = stack.api("alerts")["alerts"]
    noisy = [(a["labels"].get("scenario"), a["labels"]["alertname"]) for a in active
             if a["labels"].get("scenario") in QUIET]
    assert noisy == []
    assert not any(received(stack).get(s) for s in QUIET)
