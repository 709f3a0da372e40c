"""What `terway-exporter check` and the status page report: findings, grouped by area.

A `Finding` is one alert of alerts/terway-exporter.rules.yaml that would fire on the current
state: the same alert name, its severity, and the evidence (the objects and the values that make
it fire). Healthy areas have no finding. Alerts that need history a single look cannot have (a
trend over hours, minutes counted over half an hour, Prometheus's own scrape health) are listed
as not judged, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..model.status import SourceStatus

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITY_ORDER = {CRITICAL: 0, WARNING: 1, INFO: 2}

# The areas, in the order an operator goes through them, with their titles.
AREAS: tuple[tuple[str, str], ...] = (
    ("ip_capacity", "IP capacity (vSwitches, zones, nodes, pool)"),
    ("enis", "ENIs and quota"),
    ("credentials", "Credentials and RAM"),
    ("configuration", "Configuration"),
    ("daemon", "Daemon (terway-eniip)"),
    ("controlplane", "Controlplane"),
    ("pods", "Pods waiting for their network"),
    ("dns", "Cluster DNS"),
    ("exporter", "The exporter's own sources"),
)

# Exit codes of `check` (docs/cli.md).
EXIT_NO_FINDING, EXIT_WARNING, EXIT_CRITICAL, EXIT_NOT_CHECKED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Evidence:
    """One object behind a finding and the values that make the alert fire on it."""

    object: str  # what to look at: "vswitch/vsw-...", "node/<name>", "zone/<zone>", "eni-config/eni_conf"
    detail: str  # the values, in words
    # The alert's own distinguishing label when it has one (signal, reason, check, creator, code), so
    # a finding can be compared with the alert instances Prometheus fires.
    label: str = ""
    values: Mapping[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    alert: str
    severity: str
    area: str
    summary: str
    evidence: tuple[Evidence, ...]
    runbook_url: str
    alert_for: str  # how long the alert waits before it fires (the rule's `for`)


@dataclass(frozen=True, slots=True)
class NotJudged:
    alert: str
    area: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    state: str  # "up", "down" or "pending" (never ran)
    last_error: str = ""
    last_success: float | None = None

    @classmethod
    def of(cls, status: SourceStatus) -> SourceState:
        state = "up" if status.up else ("down" if status.attempted else "pending")
        return cls(status.name, state, status.error if not status.up else "", status.last_success)


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: float
    findings: tuple[Finding, ...]  # by area order, then severity, then alert name
    not_judged: tuple[NotJudged, ...]
    sources: tuple[SourceState, ...]
    not_checked: Mapping[str, str] = field(default_factory=dict)  # area -> why (e.g. no Kubernetes access)

    @property
    def sources_failed(self) -> tuple[SourceState, ...]:
        return tuple(s for s in self.sources if s.state == "down")

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def in_area(self, area: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.area == area)

    def area_status(self, area: str) -> str:
        """critical, warning, info, ok, or not_checked."""
        findings = self.in_area(area)
        if findings:
            return min((f.severity for f in findings), key=SEVERITY_ORDER.__getitem__)
        return "not_checked" if area in self.not_checked else "ok"

    @property
    def status(self) -> str:
        """Overall: not_checked when a source failed, else critical, else warning for any other finding."""
        if self.sources_failed:
            return "not_checked"
        if self.count(CRITICAL):
            return CRITICAL
        return WARNING if self.findings else "ok"

    @property
    def exit_code(self) -> int:
        return {"not_checked": EXIT_NOT_CHECKED, CRITICAL: EXIT_CRITICAL, WARNING: EXIT_WARNING}.get(
            self.status, EXIT_NO_FINDING)
