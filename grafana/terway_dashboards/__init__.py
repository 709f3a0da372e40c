"""Terway dashboards as code (grafana-foundation-sdk, Grafana 11.6 flavour).

`render()` turns the four dashboard modules into the JSON files committed under grafana/dashboards/;
`grafana/generate.py` writes them and `tests/test_dashboards.py` checks they are up to date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import exporter, ip_capacity, node, overview
from .common import Context

MODULES = (overview, ip_capacity, node, exporter)
TITLES = {module.UID: module.TITLE for module in MODULES}


@dataclass(frozen=True)
class AlertPanel:
    """The panel that shows an alert's signal; its runbook's Diagnosis names the same two titles."""

    alert: str
    dashboard: str
    panel: str


def load_alert_panels(path: Path) -> tuple[AlertPanel, ...]:
    """Read grafana/alert-panels.yaml: `Alert: {dashboard: <title>, panel: <title>}`."""
    raw = yaml.safe_load(path.read_text()) or {}
    return tuple(AlertPanel(alert, entry["dashboard"], entry["panel"]) for alert, entry in sorted(raw.items()))


def context(alert_panels: tuple[AlertPanel, ...], *, multi_cluster: bool = False) -> Context:
    by_panel: dict[tuple[str, str], tuple[str, ...]] = {}
    for entry in alert_panels:
        key = (entry.dashboard, entry.panel)
        by_panel[key] = (*by_panel.get(key, ()), entry.alert)
    return Context(multi_cluster=multi_cluster, alert_panels=by_panel)


def render(ctx: Context) -> dict[str, str]:
    """File name -> dashboard JSON text, with stable key order so that diffs stay small."""
    files = {
        f"{module.UID}.json": json.dumps(module.build(ctx).build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for module in MODULES
    }
    _check_alert_panels(ctx.alert_panels, files)
    return files


def _check_alert_panels(alert_panels: Mapping[tuple[str, str], tuple[str, ...]], files: Mapping[str, str]) -> None:
    """Fail the build when alert-panels.yaml names a dashboard or panel that does not exist."""
    panels = {
        (dash["title"], panel["title"])
        for dash in (json.loads(text) for text in files.values())
        for panel in dash["panels"]
        if panel.get("type") != "row"
    }
    missing = sorted(f"{alert} -> {key[0]} / {key[1]}" for key, alerts in alert_panels.items() for alert in alerts
                     if key not in panels)
    if missing:
        raise ValueError(f"alert-panels.yaml names panels that do not exist: {'; '.join(missing)}")
