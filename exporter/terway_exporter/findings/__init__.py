"""Findings: the shipped alerts evaluated on one ClusterState, for `check` and the status page.

`evaluate(state)` is pure: it reads the snapshots through the functions the collectors use, runs
one judge per alert of alerts/terway-exporter.rules.yaml (the area modules' `JUDGES`), and returns
a `Report`. A judge returns the evidence that makes its alert fire, or nothing. Alerts that need
history (trends, minutes counted over a window, Prometheus's scrape health) are reported as not
judged. tests/test_findings.py holds every alert of the rule file to a judge or a reason, and the
end-to-end test holds each judge to what Prometheus fires on the same scenario.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..model.state import ClusterState
from . import configuration, controlplane, credentials, daemon, enis, ip_capacity, other, pods
from .alerts import ALERTS, BY_NAME, AlertSpec
from .context import Context
from .model import AREAS, SEVERITY_ORDER, Evidence, Finding, NotJudged, Report, SourceState

log = logging.getLogger(__name__)

JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    **ip_capacity.JUDGES, **enis.JUDGES, **credentials.JUDGES, **configuration.JUDGES,
    **daemon.JUDGES, **controlplane.JUDGES, **pods.JUDGES, **other.JUDGES,
}
# Areas that read only the cluster: not checked when the exporter runs without one.
KUBE_AREAS = ("daemon", "controlplane", "pods", "dns", "configuration")

__all__ = ["ALERTS", "BY_NAME", "JUDGES", "AlertSpec", "Evidence", "Finding", "NotJudged", "Report", "evaluate",
           "report_context"]


def report_context(state: ClusterState) -> dict[str, object]:
    """What a report is about: region, VPC and the number of nodes Terway manages."""
    from ..terway.node import managed_nodes

    return {
        "region": state.cloud.region_id or state.targets.region_id,
        "vpc": state.cloud.vpc_id or state.targets.vpc_id,
        "nodes": len(managed_nodes(state.kube)) if state.kube_enabled else None,
    }


def evaluate(state: ClusterState) -> Report:
    ctx = Context(state)
    area_order = {area: index for index, (area, _) in enumerate(AREAS)}
    findings, not_judged = [], []
    for spec in ALERTS:
        if spec.not_judged:
            not_judged.append(NotJudged(spec.name, spec.area, spec.not_judged))
            continue
        judge = JUDGES.get(spec.name)
        if judge is None:  # an alert without a judge: tests/test_findings.py fails on it
            not_judged.append(NotJudged(spec.name, spec.area, "no judge for this alert"))
            continue
        try:
            evidence = judge(ctx)
        except Exception:  # one judge must not take the report down; the log says which
            log.exception("judging %s failed", spec.name)
            not_judged.append(NotJudged(spec.name, spec.area, "its judge failed (see the log)"))
            continue
        if evidence:
            findings.append(Finding(alert=spec.name, severity=spec.severity, area=spec.area, summary=spec.title,
                                    evidence=tuple(evidence), runbook_url=spec.runbook_url,
                                    alert_for=spec.alert_for))
    findings.sort(key=lambda f: (area_order[f.area], SEVERITY_ORDER[f.severity], f.alert))
    not_judged.sort(key=lambda n: (area_order[n.area], n.alert))
    not_checked = {} if state.kube_enabled else dict.fromkeys(KUBE_AREAS, "the exporter runs without a cluster")
    sources = tuple(SourceState.of(s) for _, s in sorted(state.sources.items()))
    return Report(generated_at=state.now, findings=tuple(findings), not_judged=tuple(not_judged),
                  sources=sources, not_checked=not_checked)
