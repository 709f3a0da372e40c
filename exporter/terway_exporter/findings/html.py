"""The status page (`/`): the current findings, as `check` reports them, the sources and the endpoints.

Plain HTML with an inline style sheet, no JavaScript. Rendered in the render thread with the
exposition (runtime.py), so a request only returns cached bytes. Every value from the cluster or the
cloud is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape
from typing import Any

from .model import AREAS, CRITICAL, WARNING, Report
from .output import describe, summary_line

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;
color:#1d2329;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin:1rem 0 .3rem}code{font:13px ui-monospace,Menlo,Consolas,monospace;
background:#f3f4f6;padding:0 .2rem;border-radius:3px;overflow-wrap:anywhere}
.meta{color:#57606a;margin:.2rem 0}.summary{font-weight:600;padding:.5rem .8rem;border-radius:6px;margin:.8rem 0}
.s-critical{background:#ffebe9;color:#82071e}.s-warning{background:#fff8c5;color:#6a4b00}
.s-ok{background:#dafbe1;color:#116329}.s-not_checked,.s-info{background:#ddf4ff;color:#0a3069}
.badge{display:inline-block;min-width:5.5rem;text-align:center;font-size:12px;font-weight:700;
padding:.1rem .4rem;border-radius:4px;margin-right:.4rem}
.finding{border-left:4px solid #d0d7de;padding:.1rem .8rem;margin:.5rem 0}
.finding.critical{border-color:#cf222e}.finding.warning{border-color:#bf8700}
.finding h4{margin:.3rem 0;font-size:1rem}.finding ul{margin:.2rem 0 .4rem;padding-left:1.2rem}
.muted{color:#57606a;font-size:.9rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top}
"""
_WORDS = {CRITICAL: "CRITICAL", WARNING: "WARNING", "ok": "OK", "not_checked": "NOT CHECKED", "info": "INFO"}


def _badge(status: str) -> str:
    return f'<span class="badge s-{status}">{_WORDS[status]}</span>'


def status_page(report: Report, context: Mapping[str, Any]) -> bytes:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.generated_at))
    title = {"ok": "no finding", CRITICAL: "critical", WARNING: "warning",
             "not_checked": "a source failed"}[report.status]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>terway-exporter: {escape(title)}</title><style>{_STYLE}</style></head><body>",
        "<h1>terway-exporter</h1>",
        f'<p class="meta">{escape(describe(context))}; judged at {escape(when)} (what '
        "<code>terway-exporter check</code> reports, refreshed with the metrics)</p>",
        '<p class="meta"><a href="/metrics">/metrics</a> (Prometheus metrics) · <a href="/healthz">/healthz</a> '
        '(liveness) · <a href="/readyz">/readyz</a> (readiness: every source synced once)</p>',
        f'<p class="summary s-{report.status}" id="summary">{escape(summary_line(report))}</p>',
        "<h2>Findings</h2>",
    ]
    for area, title_text in AREAS:
        status = report.area_status(area)
        parts.append(f'<section id="area-{area}"><h3>{_badge(status)}{escape(title_text)}</h3>')
        if status == "not_checked":
            parts.append(f'<p class="muted">{escape(report.not_checked[area])}</p>')
        for finding in report.in_area(area):
            evidence = "".join(f"<li><code>{escape(e.object)}</code>: {escape(e.detail)}</li>"
                               for e in finding.evidence)
            parts.append(
                f'<div class="finding {finding.severity}" id="{escape(finding.alert)}">'
                f"<h4>{_badge(finding.severity)}{escape(finding.alert)}</h4>"
                f"<p>{escape(finding.summary)}</p><ul>{evidence}</ul>"
                f'<p class="muted"><a href="{escape(finding.runbook_url)}">Runbook: {escape(finding.alert)}</a>'
                f" · the alert fires once this lasts {escape(finding.alert_for)}</p></div>")
        for item in (n for n in report.not_judged if n.area == area):
            parts.append(f'<p class="muted">Not judged: {escape(item.alert)} ({escape(item.reason)})</p>')
        parts.append("</section>")
    parts.append('<h2>Sources</h2><table><tr><th>source</th><th>state</th><th>last success</th>'
                 "<th>last error</th></tr>")
    for source in report.sources:
        success = "never" if source.last_success is None else time.strftime(
            "%H:%M:%S UTC", time.gmtime(source.last_success))
        state = {"up": "ok", "down": CRITICAL, "pending": "not_checked"}[source.state]
        parts.append(f'<tr><td>{escape(source.name)}</td><td><span class="badge s-{state}">'
                     f"{escape(source.state)}</span></td><td>{escape(success)}</td>"
                     f"<td>{escape(source.last_error)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "".join(parts).encode()
