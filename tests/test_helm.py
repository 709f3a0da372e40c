"""The Helm chart: lint, render with every toggle, validate every object offline, check the rules.

Uses the helm binary named by $HELM (default .tools/helm in the repository; `.ci/install-helm.sh DIR`
installs one), promtool from PATH, kubernetes-validate for core kinds and the prometheus-operator CRD
schemas vendored in tests/crds/ for ServiceMonitor and PrometheusRule.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml

from terway_exporter.collectors.node import OPENAPI_SYNC_LONGEST_WAIT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "terway-exporter"
SYNC = ROOT / "helm" / "sync.py"
RULES_SOURCE = ROOT / "alerts" / "terway-exporter.rules.yaml"
DASHBOARDS_SOURCE = ROOT / "grafana" / "dashboards"
CRDS = ROOT / "tests" / "crds"
HELM = Path(os.environ.get("HELM", ROOT / ".tools" / "helm"))
PORT = 9417
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the validator knows.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
SHIPPED_RUNBOOK_BASE = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/"

# Every test renders the chart with the helm binary (a process each, about 0.3 s): CI runs them, the
# fast loop (-m "not slow") leaves the chart out.
pytestmark = pytest.mark.slow

sys.path.insert(0, str(SYNC.parent))
import sync  # noqa: E402  (helm/sync.py: the threshold finder the chart's templates rely on)

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    assert HELM.is_file() and os.access(HELM, os.X_OK), f"no helm at {HELM}: run .ci/install-helm.sh or set HELM"
    home = tmp_path_factory.mktemp("helm-home")
    # helm writes its cache and config under HOME/XDG dirs: keep them out of the real home.
    return {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}


def run_helm(env: Mapping[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], env=dict(env), input=stdin, capture_output=True, text=True,
                          timeout=60)


@functools.cache
def _render_cached(env_items: tuple[tuple[str, str], ...], values_json: str, namespace: str) -> str:
    # Values go in on stdin (`--values -`); JSON is YAML.
    result = run_helm(dict(env_items), "template", "terway-exporter", str(CHART), "--namespace", namespace,
                      "--values", "-", stdin=values_json)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(env: Mapping[str, str], values: Mapping[str, Any] | None = None,
           namespace: str = "monitoring") -> list[dict[str, Any]]:
    text = _render_cached(tuple(sorted(env.items())), json.dumps(values or {}, sort_keys=True), namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_error(env: Mapping[str, str], *set_args: str) -> str:
    args = [a for s in set_args for a in ("--set", s)]
    result = run_helm(env, "template", "terway-exporter", str(CHART), *args)
    assert result.returncode != 0, f"helm accepted {set_args}"
    return result.stderr


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def source_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES_SOURCE.read_text())


def alert_names() -> list[str]:
    return [r["alert"] for g in source_rules()["groups"] for r in g["rules"] if "alert" in r]


def thresholds() -> dict[str, Any]:
    return yaml.safe_load((CHART / "files" / "alerts" / "thresholds.yaml").read_text())["rules"]


def rendered_alerts(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = one(objects, "PrometheusRule")["spec"]
    return {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_SOURCE.glob("*.json"))


# ----------------------------------------------------------------------------- offline validation


def _strict(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    group, version = api_version.split("/")
    for path in CRDS.glob(f"{group}_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] != kind:
            continue
        for served in crd["spec"]["versions"]:
            if served["name"] == version:
                schema = _strict(served["schema"]["openAPIV3Schema"])
                return jsonschema.Draft7Validator(schema)
    raise AssertionError(f"no CRD for {kind} {api_version} in {CRDS}")


def validate(obj: dict[str, Any]) -> None:
    """Fail with the object's kind/name and the first error when it would not be accepted."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        errors = sorted(crd_validator(obj["kind"], obj["apiVersion"]).iter_errors(obj), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            raise AssertionError(f"{name} (Kubernetes {version}): {err.message} at {list(err.path)}") from None


def test_validation_rejects_what_the_api_server_would(helm_env: dict[str, str]) -> None:
    # Proof the offline validation bites: an unknown field and a wrong type in each kind of object.
    objects = render(helm_env)
    for kind, path, field in [("Deployment", ("spec",), "replica"), ("ServiceMonitor", ("spec",), "endpoint"),
                              ("PrometheusRule", ("spec",), "group"), ("ClusterRole", (), "rule")]:
        broken = copy.deepcopy(one(objects, kind))
        target = broken
        for key in path:
            target = target[key]
        target[field] = 1
        with pytest.raises(AssertionError, match=f"'{field}' was unexpected"):
            validate(broken)
    broken = copy.deepcopy(one(objects, "PrometheusRule"))
    broken["spec"]["groups"][0]["rules"][0]["labels"] = {"severity": 3}
    with pytest.raises(AssertionError, match="is not of type 'string'"):
        validate(broken)


# ----------------------------------------------------------------------------- scenarios

BCRYPT = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"  # exporter-toolkit docs' example
BASIC_AUTH_REF = {"username": {"name": "prometheus-scrape-auth", "key": "username"},
                  "password": {"name": "prometheus-scrape-auth", "key": "password"}}
WEB_CONFIG: dict[str, Any] = {
    "webConfig": {"enabled": True, "tls": {"secretName": "terway-exporter-tls"},
                  "basicAuthUsers": {"prometheus": BCRYPT}, "headers": {"X-Content-Type-Options": "nosniff"}},
    "serviceMonitor": {"basicAuth": BASIC_AUTH_REF},
}
MTLS: dict[str, Any] = {
    "webConfig": {"enabled": True, "tls": {"secretName": "terway-exporter-tls",
                                           "clientAuthType": "RequireAndVerifyClientCert",
                                           "clientCASecretName": "prometheus-client-ca"}},
    "serviceMonitor": {"tlsConfig": {
        "ca": {"secret": {"name": "terway-exporter-tls", "key": "ca.crt"}},
        "cert": {"secret": {"name": "prometheus-client-cert", "key": "tls.crt"}},
        "keySecret": {"name": "prometheus-client-cert", "key": "tls.key"},
        "serverName": "terway-exporter.monitoring.svc"}},
}
EXISTING_SECRET = {"source": "existingSecret",
                   "existingSecret": {"name": "terway-exporter-ak", "securityTokenKey": "sts-token"}}
ALL_ON: dict[str, Any] = {
    "credentials": EXISTING_SECRET,
    "exporter": {
        "region": "cn-hangzhou", "vpcId": "vpc-bp1abc", "vswitchIds": ["vsw-bp1a", "vsw-bp1b"],
        "securityGroupIds": ["sg-bp1a"], "cloudPollInterval": "2m", "cloudApiRate": 2.5,
        "terwayNamespace": "kube-system", "logLevel": "debug", "logFormat": "text",
        "metricDenylist": ["terway_daemon_container_.*", "terway_node_ips"], "nodeMetrics": False,
        "extraArgs": ["--leak-grace-period=30m"], "extraEnv": [{"name": "TZ", "value": "UTC"}],
    },
    "serviceAccount": {"annotations": {"example.com/owner": "network"}, "labels": {"team": "network"}},
    "image": {"digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "acr-credentials"}],
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/a": "b"},
    "podLabels": {"team": "network"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}]}}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "terway-exporter"}}}],
    "extraVolumes": [{"name": "config", "configMap": {"name": "terway-exporter-config"}}],
    "extraVolumeMounts": [{"name": "config", "mountPath": "/etc/terway-exporter", "readOnly": True}],
    "service": {"annotations": {"prometheus.io/scrape": "true"}, "labels": {"team": "network"}},
    "serviceMonitor": {
        "enabled": True, "namespace": "observability", "additionalLabels": {"release": "kube-prometheus-stack"},
        "interval": "15s", "scrapeTimeout": "10s",
        "relabelings": [{"targetLabel": "cluster", "replacement": "prod-hangzhou", "action": "replace"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
    },
    "prometheusRule": {
        "enabled": True, "namespace": "observability", "additionalLabels": {"release": "kube-prometheus-stack"},
        "runbookBaseUrl": "https://wiki.example.com/terway/runbooks", "extraAlertLabels": {"team": "network"},
        "alertOverrides": {"TerwayVSwitchIPsLow": {"for": "30m", "threshold": 0.2}},
    },
    "dashboards": {"enabled": True, "namespace": "grafana", "label": "grafana_dashboard", "labelValue": "1",
                   "annotations": {"grafana_folder": "Terway"}},
    "networkPolicy": {"enabled": True, "allowedNamespaces": ["monitoring", "arms-prom"],
                      "extraFrom": [{"podSelector": {"matchLabels": {"app": "vmagent"}}}]},
    "webConfig": {"enabled": True,
                  "tls": {"secretName": "terway-exporter-tls", "clientAuthType": "VerifyClientCertIfGiven",
                          "clientCASecretName": "prometheus-client-ca", "minVersion": "TLS13"},
                  "basicAuthUsers": {"prometheus": BCRYPT, "grafana-agent": BCRYPT},
                  "headers": {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}},
}
ALL_ON["serviceMonitor"] |= {
    # The ServiceMonitor is in another namespace than the TLS Secret: its tlsConfig names its own.
    "tlsConfig": {"ca": {"configMap": {"name": "terway-exporter-ca", "key": "ca.crt"}},
                  "serverName": "terway-exporter.monitoring.svc"},
    "basicAuth": BASIC_AUTH_REF,
}
ALL_OFF: dict[str, Any] = {
    "serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False},
    "dashboards": {"enabled": False}, "networkPolicy": {"enabled": False},
    "rbac": {"create": False}, "serviceAccount": {"create": False, "name": "terway-exporter-existing"},
}
# Each toggle, flipped on and off from the defaults (with what turning it on needs).
TOGGLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "serviceMonitor": ({"serviceMonitor": {"enabled": True}}, {"serviceMonitor": {"enabled": False}}),
    "prometheusRule": ({"prometheusRule": {"enabled": True}}, {"prometheusRule": {"enabled": False}}),
    "dashboards": ({"dashboards": {"enabled": True}}, {"dashboards": {"enabled": False}}),
    "networkPolicy": ({"networkPolicy": {"enabled": True, "allowedNamespaces": ["monitoring"]}},
                      {"networkPolicy": {"enabled": False}}),
    "rbac": ({"rbac": {"create": True}}, {"rbac": {"create": False}}),
    "serviceAccount": ({"serviceAccount": {"create": True}},
                       {"serviceAccount": {"create": False, "name": "terway-exporter-existing"}}),
    "webConfig": (WEB_CONFIG, {"webConfig": {"enabled": False}}),
}
CREDENTIALS: dict[str, dict[str, Any]] = {
    "ecsRamRole": {"source": "ecsRamRole"},
    "ecsRamRoleNamed": {"source": "ecsRamRole", "ecsRamRole": {"roleName": "KubernetesWorkerRole-abc"}},
    "existingSecret": EXISTING_SECRET,
    "rrsa": {"source": "rrsa", "rrsa": {"roleName": "terway-exporter"}},
}


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def expected_kinds(values: Mapping[str, Any]) -> dict[str, int]:
    effective = merged(yaml.safe_load((CHART / "values.yaml").read_text()), values)
    kinds = {"Deployment": 1, "Service": 1}
    if effective["serviceAccount"]["create"]:
        kinds["ServiceAccount"] = 1
    if effective["rbac"]["create"]:
        kinds["ClusterRole"] = kinds["ClusterRoleBinding"] = 1
    if effective["serviceMonitor"]["enabled"]:
        kinds["ServiceMonitor"] = 1
    if effective["prometheusRule"]["enabled"]:
        kinds["PrometheusRule"] = 1
    if effective["dashboards"]["enabled"] and dashboard_files():
        kinds["ConfigMap"] = len(dashboard_files())
    if effective["networkPolicy"]["enabled"]:
        kinds["NetworkPolicy"] = 1
    if effective["webConfig"]["enabled"] and not effective["webConfig"]["existingSecret"]:
        kinds["Secret"] = 1
    return kinds


def check_render(env: Mapping[str, str], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    objects = render(env, values)
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
        validate(obj)
    assert kinds == expected_kinds(values)
    return objects


# ----------------------------------------------------------------------------- sync


def test_sources_exist() -> None:
    assert RULES_SOURCE.is_file(), "alerts/terway-exporter.rules.yaml is what the PrometheusRule wraps"
    assert dashboard_files(), "grafana/dashboards/*.json are what the dashboard ConfigMaps carry"


def test_chart_copies_are_identical_to_the_sources() -> None:
    copies = CHART / "files"
    assert (copies / "alerts" / RULES_SOURCE.name).read_bytes() == RULES_SOURCE.read_bytes()
    assert sorted(p.name for p in (copies / "dashboards").glob("*.json")) == [p.name for p in dashboard_files()]
    for source in dashboard_files():
        assert (copies / "dashboards" / source.name).read_bytes() == source.read_bytes(), source.name
    result = subprocess.run([sys.executable, str(SYNC), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("expr", "default", "template"), [
    ("terway:vswitch_available_ip_ratio < 0.1", 0.1, "terway:vswitch_available_ip_ratio < @"),
    ("x / y > 0.9 and y > 0", 0.9, "x / y > @ and y > 0"),  # `> 0` is a guard, not a threshold
    ('sum by (a) (x{a="0.1"}) < 0.1', 0.1, 'sum by (a) (x{a="0.1"}) < @'),  # not inside a string
    ("time() - x > 24 * 3600", 86400, "time() - x > @"),
    ("x offset 5m > 5", 5, "x offset 5m > @"),
    ("x > 1e3", 1000, "x > @"),
])
def test_threshold_found_by_parsing(expr: str, default: float, template: str) -> None:
    found = sync.find_threshold(expr)
    assert found is not None
    assert found.default == default
    assert found.template == template.replace("@", sync.PLACEHOLDER)


@pytest.mark.parametrize("expr", [
    "up == 0",  # a state test
    "x > 0",  # "any at all"
    "a > 0.9 or b > 0.8",  # two thresholds
    "clamp_min(x, 10) > 10",  # the number appears twice: which one?
    "x * 2 + 3 > 5",  # `2 + 3` also reads as 5
    "x > bool 5",  # not a filter
    "x < -5",
])
def test_no_threshold_when_not_one_clear_number(expr: str) -> None:
    assert sync.find_threshold(expr) is None


# ----------------------------------------------------------------------------- lint and render


def test_helm_lint_strict(helm_env: dict[str, str], tmp_path: Path) -> None:
    result = run_helm(helm_env, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    values = tmp_path / "all-on.json"
    values.write_text(json.dumps(ALL_ON))
    result = run_helm(helm_env, "lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_install_dry_run(helm_env: dict[str, str]) -> None:
    # The install path itself (hooks, NOTES, kubeVersion), offline.
    result = run_helm(helm_env, "install", "terway-exporter", str(CHART), "--namespace", "monitoring",
                      "--dry-run=client", "--set", "credentials.source=rrsa",
                      "--set", "credentials.rrsa.roleName=terway-exporter")
    assert result.returncode == 0, result.stderr
    assert "RAM role terway-exporter via ack-pod-identity-webhook" in result.stdout


def test_default_render_is_valid(helm_env: dict[str, str]) -> None:
    check_render(helm_env, {})


def test_everything_on_is_valid(helm_env: dict[str, str]) -> None:
    objects = check_render(helm_env, ALL_ON)
    assert one(objects, "ServiceMonitor")["metadata"]["namespace"] == "observability"
    assert one(objects, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert {o["metadata"]["namespace"] for o in by_kind(objects, "ConfigMap")} == {"grafana"}


def test_everything_off_is_valid(helm_env: dict[str, str]) -> None:
    objects = check_render(helm_env, ALL_OFF)
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "terway-exporter-existing"


@pytest.mark.parametrize("state", ["on", "off"])
@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_each_toggle(helm_env: dict[str, str], toggle: str, state: str) -> None:
    check_render(helm_env, TOGGLES[toggle][0 if state == "on" else 1])


@pytest.mark.parametrize("source", sorted(CREDENTIALS))
def test_each_credential_source_is_valid(helm_env: dict[str, str], source: str) -> None:
    check_render(helm_env, {"credentials": CREDENTIALS[source]})


# ----------------------------------------------------------------------------- the Deployment


def test_deployment_is_locked_down(helm_env: dict[str, str]) -> None:
    deployment = one(render(helm_env), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container([deployment])["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0


def test_deployment_probes_port_and_resources(helm_env: dict[str, str]) -> None:
    c = container(render(helm_env))
    assert c["ports"] == [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "512Mi"}}
    assert c["args"][:2] == ["serve", f"--listen-address=:{PORT}"]
    assert "command" not in c, "the image's ENTRYPOINT is the console script"


def test_exporter_values_become_flags(helm_env: dict[str, str]) -> None:
    args = container(render(helm_env, ALL_ON))["args"]
    assert args == [
        "serve", f"--listen-address=:{PORT}", "--region=cn-hangzhou", "--vpc-id=vpc-bp1abc",
        "--vswitch-ids=vsw-bp1a,vsw-bp1b", "--security-group-ids=sg-bp1a", "--cloud-poll-interval=2m",
        "--cloud-api-rate=2.5", "--terway-namespace=kube-system", "--log-level=debug", "--log-format=text",
        "--metric-denylist=terway_daemon_container_.*,terway_node_ips", "--no-node-metrics",
        "--web.config.file=/etc/terway-exporter/web/web-config.yml", "--leak-grace-period=30m",
    ]


def test_metric_allowlist_becomes_a_flag_and_excludes_the_denylist(helm_env: dict[str, str]) -> None:
    args = container(render(helm_env, {"exporter": {"metricAllowlist": ["terway_vswitch_.*", "up"]}}))["args"]
    assert "--metric-allowlist=terway_vswitch_.*,up" in args and "--no-node-metrics" not in args
    error = render_error(helm_env, "exporter.metricAllowlist={a}", "exporter.metricDenylist={b}")
    assert "exclusive" in error


def test_every_rendered_flag_is_one_the_exporter_takes(helm_env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "terway-exporter"
    result = subprocess.run([str(script), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    known = set(re.findall(r"(--[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*)", result.stdout))  # --web.config.file
    rendered = {arg.split("=", 1)[0] for arg in container(render(helm_env, ALL_ON))["args"][1:]}
    assert rendered <= known, f"flags `terway-exporter serve` does not take: {sorted(rendered - known)}"


def test_image_defaults_to_app_version(helm_env: dict[str, str]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert chart["appVersion"] == version, "Chart.yaml appVersion must follow pyproject.toml's version"
    assert container(render(helm_env))["image"].endswith(f":{version}")
    assert container(render(helm_env, ALL_ON))["image"].endswith("@sha256:" + "a" * 64)


# ----------------------------------------------------------------------------- credentials


def env_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(objects).get("env", [])}


def test_existing_secret_maps_keys_through_secret_key_ref(helm_env: dict[str, str]) -> None:
    env = env_of(render(helm_env, {"credentials": EXISTING_SECRET}))
    for name, key in [("ALIBABA_CLOUD_ACCESS_KEY_ID", "access-key-id"),
                      ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access-key-secret"),
                      ("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token")]:
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "terway-exporter-ak", "key": key}}}


def test_rrsa_annotates_the_service_account_and_labels_the_pod(helm_env: dict[str, str]) -> None:
    objects = render(helm_env, {"credentials": CREDENTIALS["rrsa"]})
    sa = one(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"pod-identity.alibabacloud.com/role-name": "terway-exporter"}
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["pod-identity.alibabacloud.com/injection"] == "on"
    assert not any(name.startswith("ALIBABA_CLOUD_ACCESS_KEY") for name in env_of(objects))


@pytest.mark.parametrize("source", ["ecsRamRole", "ecsRamRoleNamed"])
def test_ecs_ram_role_needs_no_key(helm_env: dict[str, str], source: str) -> None:
    objects = render(helm_env, {"credentials": CREDENTIALS[source]})
    env = env_of(objects)
    assert not any(name.startswith("ALIBABA_CLOUD_ACCESS_KEY") for name in env)
    assert "pod-identity.alibabacloud.com/injection" not in (
        one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"])
    if source == "ecsRamRoleNamed":
        assert env["ALIBABA_CLOUD_ECS_METADATA"]["value"] == "KubernetesWorkerRole-abc"


def test_no_rendered_object_carries_a_key_in_plain_text(helm_env: dict[str, str]) -> None:
    for values in (ALL_ON, *({"credentials": c} for c in CREDENTIALS.values())):
        objects = render(helm_env, values)
        # The one Secret the chart writes is the web configuration, whose passwords are bcrypt hashes.
        for secret in by_kind(objects, "Secret"):
            assert (secret["metadata"]["name"].endswith("-web-config")
                    and set(secret["stringData"]) == {"web-config.yml"})
            users = yaml.safe_load(secret["stringData"]["web-config.yml"]).get("basic_auth_users", {})
            assert all(re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", h) for h in users.values()), users
        for name, entry in env_of(objects).items():
            if name.startswith("ALIBABA_CLOUD_ACCESS_KEY") or name == "ALIBABA_CLOUD_SECURITY_TOKEN":
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"]


# ----------------------------------------------------------------------------- invalid values


SCHEMA_REJECTS = [
    (["credentials.accessKeyId=LTAI5tExample"], "/credentials/accessKeyId", "never: put AccessKeys in a Secret"),
    (["credentials.accessKeySecret=abc"], "/credentials/accessKeySecret", "never: put AccessKeys in a Secret"),
    (["exporter.extraEnv[0].name=ALIBABA_CLOUD_ACCESS_KEY_SECRET", "exporter.extraEnv[0].value=abc"],
     "/exporter/extraEnv/0/value", "never: put AccessKeys in a Secret"),
    (["credentials.source=existingSecret"], "/credentials/existingSecret/name", "minLength"),
    (["credentials.source=rrsa"], "/credentials/rrsa/roleName", "minLength"),
    (["credentials.source=password"], "/credentials/source", "ecsRamRole"),
    (["exporter.region=Hangzhou"], "/exporter/region", "does not match pattern"),
    (["exporter.vpcId=bp1abc"], "/exporter/vpcId", "does not match pattern"),
    (["exporter.logFormat=xml"], "/exporter/logFormat", "'text', 'json'"),
    (["exporter.logLevel=trace"], "/exporter/logLevel", "'debug'"),
    (["exporter.cloudPollInterval=soon"], "/exporter/cloudPollInterval", "does not match pattern"),
    (["exporter.cloudApiRate=0"], "/exporter/cloudApiRate", "minimum"),
    (["replicaCount=2"], "/replicaCount", "maximum: got 2, want 1"),
    (["port=80"], "/port", "minimum: got 80"),
    (["serviceMonitr.enabled=true"], "additional properties 'serviceMonitr' not allowed", ""),
    (["serviceMonitor.interval=often"], "/serviceMonitor/interval", "does not match pattern"),
    (["prometheusRule.runbookBaseUrl=wiki/runbooks"], "/prometheusRule/runbookBaseUrl", "does not match pattern"),
    (["prometheusRule.alertOverrides.TerwayVSwitchIPsLow.for=soon"],
     "/prometheusRule/alertOverrides/TerwayVSwitchIPsLow/for", "does not match pattern"),
    (["prometheusRule.alertOverrides.TerwayVSwitchIPsLow.severity=critical"],
     "additional properties 'severity' not allowed", ""),
    (["prometheusRule.alertOverrides.TerwayVSwitchIPsLow.threshold=lots"],
     "/prometheusRule/alertOverrides/TerwayVSwitchIPsLow/threshold", ""),
    (["networkPolicy.allowedNamespaces[0]=Not_A_Namespace"], "/networkPolicy/allowedNamespaces/0", "pattern"),
    (["image.digest=latest"], "/image/digest", "does not match pattern"),
    (["webConfig.basicAuthUsers.prometheus=hunter2"], "/webConfig/basicAuthUsers/prometheus", "does not match pattern"),
    (["webConfig.tls.clientAuthType=Always"], "/webConfig/tls/clientAuthType", "'RequireAndVerifyClientCert'"),
    (["webConfig.tls.minVersion=TLS10"], "/webConfig/tls/minVersion", "'TLS12', 'TLS13'"),
    (["webConfig.headers.Server=nginx"], "additional properties 'Server' not allowed", ""),
    (["webConfig.headers.X-Frame-Options=allow"], "/webConfig/headers/X-Frame-Options", "'deny', 'sameorigin'"),
    (["serviceMonitor.basicAuth.username.name=s", "serviceMonitor.basicAuth.username.key=u"],
     "/serviceMonitor/basicAuth", "password"),
]


@pytest.mark.parametrize(("set_args", "where", "what"), SCHEMA_REJECTS, ids=[s[0][0] for s in SCHEMA_REJECTS])
def test_schema_rejects_invalid_values(helm_env: dict[str, str], set_args: list[str], where: str, what: str) -> None:
    error = render_error(helm_env, *set_args)
    assert "values don't meet the specifications of the schema" in error
    assert where in error and what in error, error


def test_overriding_an_unknown_alert_names_it(helm_env: dict[str, str]) -> None:
    error = render_error(helm_env, "prometheusRule.alertOverrides.TerwayNoSuchAlert.for=5m")
    assert "prometheusRule.alertOverrides.TerwayNoSuchAlert: there is no alert TerwayNoSuchAlert" in error
    assert "TerwayVSwitchIPsLow" in error, "the message lists the alerts there are"


def test_threshold_on_an_alert_without_one_says_to_override_expr(helm_env: dict[str, str]) -> None:
    with_threshold = {entry["alert"] for entry in thresholds().values()}
    without = next(name for name in alert_names() if name not in with_threshold)
    error = render_error(helm_env, f"prometheusRule.alertOverrides.{without}.threshold=3")
    assert f"prometheusRule.alertOverrides.{without}.threshold: this alert has no single numeric threshold" in error


def test_network_policy_without_namespaces_is_refused(helm_env: dict[str, str]) -> None:
    error = render_error(helm_env, "networkPolicy.enabled=true")
    assert "networkPolicy.allowedNamespaces" in error


def test_existing_service_account_needs_a_name(helm_env: dict[str, str]) -> None:
    error = render_error(helm_env, "serviceAccount.create=false")
    assert "serviceAccount.name" in error


# ----------------------------------------------------------------------------- PrometheusRule


def promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> None:
    rules = tmp_path / "rendered.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    assert shutil.which("promtool"), "promtool (Debian package prometheus) checks the rendered rules"
    result = subprocess.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(rules)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_rules_are_the_shipped_rules(helm_env: dict[str, str], tmp_path: Path) -> None:
    groups = one(render(helm_env), "PrometheusRule")["spec"]["groups"]
    # The template adds an empty label map where a rule had none; nothing else may change.
    normalised = [{**g, "rules": [{k: v for k, v in r.items() if v != {}} for r in g["rules"]]} for g in groups]
    assert normalised == source_rules()["groups"]
    promtool_check(groups, tmp_path)


def test_rules_with_every_override_pass_promtool(helm_env: dict[str, str], tmp_path: Path) -> None:
    overrides = {entry["alert"]: {"threshold": entry["default"] * 2, "for": "45m"} for entry in thresholds().values()}
    objects = render(helm_env, {"prometheusRule": {"alertOverrides": overrides, "extraAlertLabels": {"team": "n"}}})
    validate(one(objects, "PrometheusRule"))
    promtool_check(one(objects, "PrometheusRule")["spec"]["groups"], tmp_path)
    promtool_check(one(render(helm_env, ALL_ON), "PrometheusRule")["spec"]["groups"], tmp_path)


def test_for_and_threshold_overrides_show_up(helm_env: dict[str, str]) -> None:
    original = {r["alert"]: r for g in source_rules()["groups"] for r in g["rules"] if "alert" in r}
    low = "TerwayVSwitchIPsLow"
    assert any(e["alert"] == low for e in thresholds().values()), f"{low} should have one clear threshold"
    alerts = rendered_alerts(render(helm_env, {"prometheusRule": {"alertOverrides": {low: {"for": "30m",
                                                                                          "threshold": 0.2}}}}))
    assert alerts[low]["for"] == "30m"
    assert alerts[low]["expr"] != original[low]["expr"]
    values = _compared_numbers(alerts[low]["expr"])
    assert 0.2 in values and sync.find_threshold(original[low]["expr"]).default not in values
    # Only that alert changed.
    for name, rule in alerts.items():
        if name != low:
            assert (rule["expr"], rule.get("for")) == (original[name]["expr"], original[name].get("for")), name


def _compared_numbers(expr: str) -> list[float]:
    return sync._comparisons(promql_parser.parse(expr))


def test_every_threshold_override_lands_on_its_threshold(helm_env: dict[str, str]) -> None:
    entries = thresholds()
    assert entries, "no alert has a threshold the chart can override"
    wanted = {e["alert"]: e.get("minimum", 0) + 4242.5 for e in entries.values()}
    overrides = {alert: {"threshold": value} for alert, value in wanted.items()}
    alerts = rendered_alerts(render(helm_env, {"prometheusRule": {"alertOverrides": overrides}}))
    for entry in entries.values():
        expr = alerts[entry["alert"]]["expr"]
        assert sync.PLACEHOLDER not in expr
        assert wanted[entry["alert"]] in _compared_numbers(expr), entry["alert"]
        assert sync.find_threshold(expr).default == wanted[entry["alert"]], entry["alert"]


def test_a_threshold_below_what_the_alert_can_honour_is_refused(helm_env: dict[str, str]) -> None:
    """TerwayOpenAPISyncStale reads a family that holds only nodes over the exporter's 24 h line: a lower threshold
    would silently find nothing, so the chart says so (the --set form, a string, included)."""
    alert = "TerwayOpenAPISyncStale"
    entry = next(e for e in thresholds().values() if e["alert"] == alert)
    assert entry["minimum"] == OPENAPI_SYNC_LONGEST_WAIT_SECONDS, "the chart's floor is the exporter's line"
    error = render_error(helm_env, f"prometheusRule.alertOverrides.{alert}.threshold=43200")
    assert f"prometheusRule.alertOverrides.{alert}.threshold: 43200 is below 86400" in error
    assert "terway_node_openapi_sync_overdue_timestamp_seconds" in error
    at_floor = rendered_alerts(render(helm_env, {"prometheusRule": {"alertOverrides": {alert: {"threshold": 86400}}}}))
    assert sync.find_threshold(at_floor[alert]["expr"]).default == 86400
    # The threshold is not used when the expression is replaced or the alert is off: nothing to refuse.
    own = "time() - terway_node_last_openapi_sync_timestamp_seconds > 14 * 3600"
    for extra in ({"expr": own}, {"disabled": True}):
        alerts = rendered_alerts(render(helm_env, {"prometheusRule": {"alertOverrides": {
            alert: {"threshold": 43200, **extra}}}}))
        assert alerts.get(alert, {}).get("expr", own) == own


def test_expr_labels_disabled_runbook_and_extra_labels(helm_env: dict[str, str]) -> None:
    names = alert_names()
    replaced, silenced = names[0], names[-1]
    values = {"prometheusRule": {
        "runbookBaseUrl": "https://wiki.example.com/terway",
        "extraAlertLabels": {"team": "network", "severity": "ignored-because-the-alert-has-one"},
        "alertOverrides": {replaced: {"expr": "vector(1) > 0", "labels": {"severity": "info", "pager": "no"}},
                           silenced: {"disabled": True}},
    }}
    alerts = rendered_alerts(render(helm_env, values))
    assert silenced not in alerts and len(alerts) == len(set(names)) - 1
    assert alerts[replaced]["expr"] == "vector(1) > 0"
    assert alerts[replaced]["labels"]["severity"] == "info" and alerts[replaced]["labels"]["pager"] == "no"
    for name, rule in alerts.items():
        assert rule["labels"]["team"] == "network"
        assert rule["labels"]["severity"] != "ignored-because-the-alert-has-one", name
        assert rule["annotations"]["runbook_url"] == f"https://wiki.example.com/terway/{name}.md"


def test_shipped_runbook_urls_use_the_base_the_chart_replaces() -> None:
    for group in source_rules()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["annotations"]["runbook_url"] == f"{SHIPPED_RUNBOOK_BASE}{rule['alert']}.md"
    template = (CHART / "templates" / "prometheusrule.yaml").read_text()
    assert f'$shippedBase := "{SHIPPED_RUNBOOK_BASE}"' in template
    assert yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["runbookBaseUrl"] == \
        SHIPPED_RUNBOOK_BASE


# ----------------------------------------------------------------------------- ServiceMonitor, dashboards, policy


def test_service_monitor_scrapes_the_metrics_port(helm_env: dict[str, str]) -> None:
    objects = render(helm_env)
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": PORT, "targetPort": "metrics", "protocol": "TCP"}]
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == ("metrics", "/metrics", True)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # job = the Service's app.kubernetes.io/name label, which the alerts' job regex matches.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert re.fullmatch(".*terway-exporter.*", job)
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["monitoring"]


def test_dashboards_are_config_maps_for_the_sidecar(helm_env: dict[str, str]) -> None:
    maps = by_kind(render(helm_env, {"dashboards": {"label": "grafana.com/dashboard", "labelValue": "terway"}}),
                   "ConfigMap")
    assert len(maps) == len(dashboard_files())
    by_file = {name: cm for cm in maps for name in cm["data"]}
    for source in dashboard_files():
        cm = by_file[source.name]
        assert cm["metadata"]["labels"]["grafana.com/dashboard"] == "terway"
        assert json.loads(cm["data"][source.name]) == json.loads(source.read_text())
    default = by_kind(render(helm_env), "ConfigMap")
    assert all(cm["metadata"]["labels"]["grafana_dashboard"] == "1" for cm in default)


def test_network_policy_admits_only_named_namespaces(helm_env: dict[str, str]) -> None:
    policy = one(render(helm_env, {"networkPolicy": {"enabled": True, "allowedNamespaces": ["monitoring"]}}),
                 "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}]}}]


# ----------------------------------------------------------------------------- web configuration (TLS, basic auth)


def web_config_file(objects: list[dict[str, Any]], tmp_path: Path) -> Path:
    secret = one(objects, "Secret")
    path = tmp_path / "web-config.yml"
    path.write_text(secret["stringData"]["web-config.yml"])
    return path


def volumes_and_mounts(objects: list[dict[str, Any]]) -> tuple[dict[str, dict], dict[str, dict]]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    return ({v["name"]: v for v in pod["volumes"]},
            {m["name"]: m for m in pod["containers"][0]["volumeMounts"]})


def test_web_config_with_tls_and_basic_auth(helm_env: dict[str, str], tmp_path: Path) -> None:
    from terway_exporter.webconfig import read_web_config

    objects = check_render(helm_env, WEB_CONFIG)
    c = container(objects)
    assert c["args"][-1] == "--web.config.file=/etc/terway-exporter/web/web-config.yml"
    # The file the chart writes is one the exporter accepts, naming the mounted TLS Secret.
    config = read_web_config(str(web_config_file(objects, tmp_path)))
    assert (config.tls.cert_file, config.tls.key_file) == ("/etc/terway-exporter/tls/tls.crt",
                                                           "/etc/terway-exporter/tls/tls.key")
    assert config.tls.client_auth_type == "NoClientCert" and config.tls.min_version == "TLS12"
    assert dict(config.users) == {"prometheus": BCRYPT.encode()}
    assert dict(config.headers) == {"X-Content-Type-Options": "nosniff"}
    volumes, mounts = volumes_and_mounts(objects)
    assert volumes["web-tls"]["secret"] == {"secretName": "terway-exporter-tls"}
    assert volumes["web-config"]["secret"]["secretName"] == one(objects, "Secret")["metadata"]["name"]
    # Whole directories, never subPath: the kubelet then swaps renewed certificates in place.
    assert mounts["web-tls"] == {"name": "web-tls", "mountPath": "/etc/terway-exporter/tls", "readOnly": True}
    assert mounts["web-config"]["mountPath"] == "/etc/terway-exporter/web"
    assert not any("subPath" in m for m in mounts.values())
    # The kubelet's probes speak HTTPS (without verifying) and need no password: /healthz and /readyz are open.
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics", "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics", "scheme": "HTTPS"}
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/web-config"])
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"ca": {"secret": {"name": "terway-exporter-tls", "key": "ca.crt"}},
                                     "serverName": "terway-exporter.monitoring.svc"}
    assert endpoint["basicAuth"] == BASIC_AUTH_REF
    assert one(objects, "Service")["metadata"]["name"] + ".monitoring.svc" == endpoint["tlsConfig"]["serverName"]


def test_web_config_with_client_certificates(helm_env: dict[str, str], tmp_path: Path) -> None:
    from terway_exporter.webconfig import read_web_config

    objects = check_render(helm_env, MTLS)
    config = read_web_config(str(web_config_file(objects, tmp_path)))
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.client_ca_file == "/etc/terway-exporter/client-ca/ca.crt"
    volumes, mounts = volumes_and_mounts(objects)
    assert volumes["web-client-ca"]["secret"] == {"secretName": "prometheus-client-ca",
                                                  "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert mounts["web-client-ca"]["mountPath"] == "/etc/terway-exporter/client-ca"
    # The kubelet has no client certificate: the probes only check that the port accepts connections.
    c = container(objects)
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["tcpSocket"] == {"port": "metrics"} and "httpGet" not in probe
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["tlsConfig"] == MTLS["serviceMonitor"]["tlsConfig"] and "basicAuth" not in endpoint
    # Without a separate client CA Secret, the TLS Secret's ca.crt signs the clients.
    same_ca = merged(MTLS, {"webConfig": {"tls": {"clientCASecretName": ""}}})
    config = read_web_config(str(web_config_file(render(helm_env, same_ca), tmp_path)))
    assert config.tls.client_ca_file == "/etc/terway-exporter/tls/ca.crt"


def test_web_config_from_an_existing_secret(helm_env: dict[str, str]) -> None:
    values = {"webConfig": {"enabled": True, "existingSecret": "my-web-config", "tls": {"enabled": False}}}
    objects = check_render(helm_env, values)
    volumes, _ = volumes_and_mounts(objects)
    assert volumes["web-config"]["secret"]["secretName"] == "my-web-config" and "web-tls" not in volumes
    assert container(objects)["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint
    assert "annotations" not in one(objects, "Deployment")["spec"]["template"]["metadata"]


def test_web_config_off_changes_nothing(helm_env: dict[str, str]) -> None:
    objects = render(helm_env)
    assert not by_kind(objects, "Secret")
    assert not any(a.startswith("--web.config.file") for a in container(objects)["args"])
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert not {"scheme", "tlsConfig", "basicAuth"} & set(endpoint)


@pytest.mark.parametrize(("set_args", "expected"), [
    (["webConfig.enabled=true"], "webConfig.tls.secretName: name the kubernetes.io/tls Secret"),
    (["webConfig.enabled=true", "webConfig.tls.enabled=false"], "webConfig.enabled: nothing to configure"),
    (["webConfig.enabled=true", "webConfig.tls.secretName=tls", f"webConfig.basicAuthUsers.prometheus={BCRYPT}"],
     "serviceMonitor.basicAuth: the exporter asks for basic auth"),
    (["webConfig.enabled=true", "webConfig.tls.secretName=tls",
      "webConfig.tls.clientAuthType=RequireAndVerifyClientCert"],
     "serviceMonitor.tlsConfig: the exporter requires client certificates"),
    (["webConfig.enabled=true", "webConfig.tls.secretName=tls", "serviceMonitor.namespace=observability"],
     "serviceMonitor.tlsConfig: the ServiceMonitor is in namespace observability"),
    (["webConfig.enabled=true", "webConfig.existingSecret=mine"],
     "serviceMonitor.tlsConfig: tell Prometheus how to verify"),
])
def test_web_config_that_cannot_work_is_refused(helm_env: dict[str, str], set_args: list[str], expected: str) -> None:
    assert expected in render_error(helm_env, *set_args)


# ----------------------------------------------------------------------------- RBAC


READ = frozenset({"get", "list", "watch"})


def permissions(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def chart_permissions(helm_env: dict[str, str]) -> set[tuple[str, str, str]]:
    return permissions(one(render(helm_env), "ClusterRole")["rules"])


def test_cluster_role_only_reads(helm_env: dict[str, str]) -> None:
    role = one(render(helm_env), "ClusterRole")
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames/nonResourceURLs tricks"
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
    granted = permissions(role["rules"])
    assert all(verb in READ for _, _, verb in granted)
    assert {(g, r) for g, r, _ in granted if r.endswith("/log")} == {("", "pods/log")}
    assert {v for _, r, v in granted if r == "pods/log"} == {"get"}
    assert not any(r in ("secrets", "serviceaccounts/token") for _, r, _ in granted)
    binding = one(render(helm_env), "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": one(render(helm_env), "ServiceAccount")[
        "metadata"]["name"], "namespace": "monitoring"}]


def test_cluster_role_matches_docs_rbac(helm_env: dict[str, str]) -> None:
    text = (ROOT / "docs" / "rbac.md").read_text()
    blocks = re.findall(r"```ya?ml\n(.*?)```", text, re.S)
    roles = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "ClusterRole"]
    assert len(roles) == 1, "docs/rbac.md should show exactly one ClusterRole"
    assert chart_permissions(helm_env) == permissions(roles[0]["rules"])


def _api_classes() -> dict[str, type]:
    from kubernetes.aio import client

    return {name: cls for name, cls in vars(client).items() if name.endswith("Api") and isinstance(cls, type)}


def _resource_of(path: str, args: tuple[Any, ...] = ()) -> tuple[str, str]:
    """`/api/v1/namespaces/{namespace}/pods/{name}/log` -> ("", "pods/log")."""
    if "{group}" in path:  # custom objects: group, version and plural are the call's first arguments
        group, _version, plural = args[:3]
        return group, plural
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:2] == ["namespaces", "{namespace}"]:
        rest = rest[2:]
    resource = rest[0]
    if len(rest) >= 3:
        resource += "/" + rest[2]
    return group, resource


def _call_permissions(method_name: str, args: tuple[Any, ...] = ()) -> set[tuple[str, str, str]]:
    """The permissions one kubernetes-client call needs, from the client's own request path."""
    name = method_name.removesuffix("_without_preload_content").removesuffix("_with_http_info")
    for cls in _api_classes().values():
        serialize = getattr(cls, f"_{name}_serialize", None)
        if serialize is None:
            continue
        source = inspect.getsource(serialize)
        method = re.search(r"method='(\w+)'", source).group(1)
        path = re.search(r"resource_path='([^']+)'", source).group(1)
        group, resource = _resource_of(path, args)
        if method != "GET":
            return {(group, resource, method.lower())}
        if name.startswith("list_"):  # every list is followed by a watch (the reflectors)
            return {(group, resource, "list"), (group, resource, "watch")}
        return {(group, resource, "get")}
    raise AssertionError(f"{method_name} is not a kubernetes client call")


def code_permissions() -> set[tuple[str, str, str]]:
    """Everything the exporter's code asks the API server for."""
    from kubernetes.aio import client

    from terway_exporter.sources.kube.resources import resource_specs

    needed: set[tuple[str, str, str]] = set()
    # The reflectors: each lists then watches one collection path (resources.Collection).
    for spec in resource_specs(client.ApiClient(), "kube-system").values():
        group, resource = _resource_of(spec.call.path)
        needed |= {(group, resource, "list"), (group, resource, "watch")}
    # Raw GETs anywhere in the package, by their literal path (resources.get_raw: the previous terway log).
    raw = re.compile(r"get_raw\(\s*\w+,\s*\"([^\"]+)\"")
    for path in (ROOT / "exporter" / "terway_exporter").rglob("*.py"):
        for resource_path in raw.findall(path.read_text()):
            needed.add((*_resource_of(resource_path), "get"))
    # Any typed client call anywhere in the package, found by name (writes would show up here too).
    methods = {m[1:].removesuffix("_serialize") for cls in _api_classes().values() for m in dir(cls)
               if m.startswith("_") and m.endswith("_serialize")}
    pattern = re.compile(r"\.(\w+?)(?:_without_preload_content|_with_http_info)?\(")
    for path in (ROOT / "exporter" / "terway_exporter").rglob("*.py"):
        if "simulator" in path.parts:
            continue  # the simulator serves the API; it does not call it
        for name in pattern.findall(path.read_text()):
            if name in methods and "custom_object" not in name:
                needed |= _call_permissions(name)
    return needed


def test_cluster_role_covers_every_call_the_exporter_makes(helm_env: dict[str, str]) -> None:
    needed = code_permissions()
    assert ("", "pods/log", "get") in needed and ("network.alibabacloud.com", "nodes", "list") in needed
    assert all(verb in READ for _, _, verb in needed), f"the exporter writes: {sorted(needed)}"
    granted = chart_permissions(helm_env)
    missing = needed - granted
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"
    # Nothing granted for a resource the code never reads (get beside list/watch is allowed).
    unused = {(g, r) for g, r, _ in granted} - {(g, r) for g, r, _ in needed}
    assert not unused, f"the ClusterRole grants resources the exporter never reads: {sorted(unused)}"


# ----------------------------------------------------------------------------- README


# Kubernetes objects passed through whole; the README documents them as one value each.
OPAQUE = frozenset({"resources", "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe"})


def value_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        if isinstance(value, Mapping) and value and key not in OPAQUE:
            yield from value_paths(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def test_readme_lists_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", readme, re.M)}
    paths = set(value_paths(yaml.safe_load((CHART / "values.yaml").read_text())))
    assert not paths - table, f"values missing from the README's table: {sorted(paths - table)}"
    assert not {p for p in table if "." in p or p in paths} - paths - set(alert_names()), (
        "README documents a value that does not exist")


def test_readme_has_install_on_ack_with_rrsa_and_ecs_ram_role() -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Install on ACK", 1)[1].split("\n## ", 1)[0]
    assert "credentials.source=rrsa" in section and "credentials.rrsa.roleName=" in section
    assert "pod-identity.alibabacloud.com/role-name" in section
    assert "pod-identity.alibabacloud.com/injection" in section
    assert "ECS RAM role" in section and "ecsRamRole" in section
    assert "credentials.existingSecret.name=" in section


def test_readme_lists_every_alert() -> None:
    readme = (CHART / "README.md").read_text()
    for name in alert_names():
        assert f"| `{name}` |" in readme, name
