"""A Report as terminal text (`check`), as JSON (`check --output json`, docs/check.schema.json).

Text: areas in the order of `AREAS`, each on one line with its status; under it each finding with its
severity, the evidence (one object a line) and its runbook; the alerts one look cannot judge; a summary
line last. No line is longer than `WIDTH` columns (long values wrap, indented). Colour and terminal
hyperlinks (OSC 8) only when asked for, which `check` does when stdout is a terminal.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Mapping
from typing import Any

from .alerts import RUNBOOK_BASE
from .model import AREAS, CRITICAL, INFO, WARNING, Report

WIDTH = 100
HEADER_WIDTH = 78  # area lines: title, dots, status
INDENT = " " * 11
SCHEMA_VERSION = 1

_COLOURS = {CRITICAL: "1;31", WARNING: "33", INFO: "36", "ok": "32", "not_checked": "35", "dim": "2", "bold": "1"}
_STATUS_WORDS = {CRITICAL: "CRITICAL", WARNING: "WARNING", INFO: "INFO", "ok": "OK", "not_checked": "NOT CHECKED"}


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def paint(self, kind: str, text: str) -> str:
        return f"\x1b[{_COLOURS[kind]}m{text}\x1b[0m" if self.colour else text

    def link(self, url: str, text: str) -> str:
        """An OSC 8 hyperlink: the terminal shows `text` and opens `url` (only with colour: a terminal)."""
        return f"\x1b]8;;{url}\x1b\\{text}\x1b]8;;\x1b\\" if self.colour else text


def _wrap(text: str, first: str, rest: str = INDENT) -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def _area_line(title: str, status: str, style: _Style) -> str:
    word = _STATUS_WORDS[status]
    dots = "." * max(HEADER_WIDTH - len(title) - len(word) - 2, 3)
    return f"{style.paint('bold', title)} {style.paint('dim', dots)} {style.paint(status, word)}"


def to_text(report: Report, context: Mapping[str, Any], colour: bool = False) -> str:
    style = _Style(colour)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.generated_at))
    lines = _wrap(f"terway-exporter check: {describe(context)}", "")
    lines += [f"Checked at {when}", f"Runbooks: {RUNBOOK_BASE}", ""]
    for area, title in AREAS:
        status = report.area_status(area)
        lines.append(_area_line(title, status, style))
        if status == "not_checked":
            lines += _wrap(report.not_checked[area], "  ", "  ")
        for finding in report.in_area(area):
            word = _STATUS_WORDS[finding.severity]
            head = f"  {word:<8} {finding.alert}: {finding.summary}"
            wrapped = _wrap(head, "", INDENT)
            wrapped[0] = wrapped[0].replace(word, style.paint(finding.severity, word), 1)
            lines += wrapped
            for evidence in finding.evidence:
                lines += _wrap(f"{evidence.object}: {evidence.detail}", INDENT, INDENT + "  ")
            page = f"docs/runbooks/{finding.alert}.md"
            lines.append(f"{INDENT}runbook: {style.link(finding.runbook_url, page)} "
                         + style.paint("dim", f"(alert fires after {finding.alert_for})"))
        for item in (n for n in report.not_judged if n.area == area):
            lines += [style.paint("dim", line) for line in
                      _wrap(f"not judged: {item.alert} ({item.reason})", "  ", "    ")]
    lines += ["", summary_line(report)]
    return "\n".join(lines) + "\n"


def describe(context: Mapping[str, Any]) -> str:
    parts = []
    if context.get("region"):
        parts.append(f"region {context['region']}")
    if context.get("vpc"):
        parts.append(f"VPC {context['vpc']}")
    if context.get("nodes") is not None:
        parts.append(f"{context['nodes']} node(s)")
    return ", ".join(parts) or "no cluster or cloud data"


def summary_line(report: Report) -> str:
    """The last line: the verdict, the counts, the sources, the exit code (under 100 columns)."""
    critical, others = report.count(CRITICAL), len(report.findings) - report.count(CRITICAL)
    up = sum(1 for s in report.sources if s.state == "up")
    found = "no finding" if not report.findings else f"{critical} critical, {others} warning(s)"
    verdict = {"ok": "OK", CRITICAL: "CRITICAL", WARNING: "WARNING", "not_checked": "NOT CHECKED"}[report.status]
    return (f"Summary: {verdict}: {found}; {len(report.not_judged)} not judged; "
            f"sources {up}/{len(report.sources)} up; exit {report.exit_code}")


def to_json_data(report: Report, context: Mapping[str, Any]) -> dict[str, Any]:
    """The document `check --output json` prints (docs/check.schema.json)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.generated_at)),
        "status": report.status,
        "exit_code": report.exit_code,
        "context": {"region": context.get("region"), "vpc": context.get("vpc"), "nodes": context.get("nodes")},
        "summary": {
            "critical": report.count(CRITICAL),
            "warning": len(report.findings) - report.count(CRITICAL),
            "not_judged": len(report.not_judged),
            "sources_up": sum(1 for s in report.sources if s.state == "up"),
            "sources_failed": len(report.sources_failed),
        },
        "areas": [{"id": area, "title": title, "status": report.area_status(area),
                   "reason": report.not_checked.get(area, "")} for area, title in AREAS],
        "findings": [{
            "alert": f.alert, "severity": f.severity, "area": f.area, "summary": f.summary,
            "runbook_url": f.runbook_url, "alert_for": f.alert_for,
            "evidence": [{"object": e.object, "detail": e.detail, "label": e.label, "values": dict(e.values)}
                         for e in f.evidence],
        } for f in report.findings],
        "not_judged": [{"alert": n.alert, "area": n.area, "reason": n.reason} for n in report.not_judged],
        "sources": [{"name": s.name, "state": s.state, "last_error": s.last_error,
                     "last_success": None if s.last_success is None else
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.last_success))} for s in report.sources],
    }


def to_json(report: Report, context: Mapping[str, Any]) -> str:
    return json.dumps(to_json_data(report, context), indent=2) + "\n"
