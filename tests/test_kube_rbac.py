"""docs/rbac.md grants exactly what the Kubernetes source reads, and the Helm chart renders the same rules."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from kubernetes.aio import client

from terway_exporter.sources.kube.resources import RESOURCES, resource_specs

ROOT = Path(__file__).resolve().parents[1]

# reflector -> (API group, resource) its list/watch needs, from the one declaration of each resource.
NEEDS = {r.name: (r.api_group, r.plural) for r in RESOURCES}


def _grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def _doc_rules() -> list[dict]:
    text = (ROOT / "docs" / "rbac.md").read_text()
    docs = list(yaml.safe_load_all(re.search(r"```yaml\n(.*?)```", text, re.S).group(1)))
    return next(d for d in docs if d["kind"] == "ClusterRole")["rules"]


def test_the_role_covers_every_reflector_and_nothing_writes():
    specs = resource_specs(client.ApiClient(client.Configuration()), "kube-system")
    assert set(specs) == set(NEEDS) and len(RESOURCES) == len(NEEDS), "one declaration per reflector"
    grants = _grants(_doc_rules())
    for group, resource in NEEDS.values():
        assert {(group, resource, "list"), (group, resource, "watch")} <= grants, (group, resource)
    assert ("", "pods/log", "get") in grants
    assert {v for _, _, v in grants} == {"get", "list", "watch"}
    assert not any(r == "secrets" for _, r, _ in grants)
    needed = {(g, r) for g, r in NEEDS.values()} | {("", "pods/log")}
    assert {(g, r) for g, r, _ in grants} == needed, "the role grants something the source never reads"


def test_the_helm_chart_renders_the_same_rules():
    template = (ROOT / "helm" / "terway-exporter" / "templates" / "clusterrole.yaml").read_text()
    rules_block = template.split("rules:", 1)[1].split("---", 1)[0]
    assert _grants(yaml.safe_load(rules_block)) == _grants(_doc_rules())
