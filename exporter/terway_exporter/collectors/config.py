"""terway_config_*: Terway's configuration and the problems the checks find in it.

Sources: ConfigMap `eni-config` (`eni_conf`, `10-terway.conf`, `disable_network_policy`), dynamic
configs, `terway-controlplane`'s `ctrl-config.yaml`, the `default/kubernetes` Service; the cloud
snapshot for the checks that verify IDs. Everything here is Kubernetes-side: nothing is emitted when
the exporter runs without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Metric

from ..checks.config import CHECK_NAMES, run_checks
from ..model.state import ClusterState, synced
from ..terway.eniconf import (
    ENI_CONF_KEY,
    ENI_CONFIG_NAME,
    CniConf,
    EniConf,
    effective_confs,
    network_policy_enabled,
    parse_cni_conf,
)
from .base import Collector
from .families import Family

# The checks read ConfigMaps, Nodes and Node CRs; judged only once the ConfigMaps were read.
CONFIG_SOURCE = "kube_configmaps"

INFO = Family(
    "terway_config_info",
    "Terway's cluster-wide configuration from eni-config (eni_conf and the CNI config 10-terway.conf); "
    "ipam_type is crd (centralised) or legacy.",
    (
        "ipam_type",
        "ip_stack",
        "vswitch_selection_policy",
        "eniip_virtual_type",
        "network_policy_provider",
        "network_policy",
        "trunking",
    ),
)
PROBLEMS = Family(
    "terway_config_problems",
    "Objects failing each configuration check, 0 when it passes.",
    ("check",),
)
PROBLEM = Family(
    "terway_config_problem",
    "1 for each object failing a configuration check (object: ConfigMap/key, vSwitch, security group, "
    "zone or node).",
    ("check", "object"),
)


def info_labels(conf: EniConf, cni: CniConf | None, policy_enabled: bool) -> tuple[str, ...]:
    return (
        conf.ipam_type or "legacy",
        conf.ip_stack,
        conf.vswitch_selection_policy,
        cni.eniip_virtual_type if cni else "unknown",
        cni.network_policy_provider if cni else "unknown",
        "enabled" if policy_enabled else "disabled",
        "true" if conf.enable_eni_trunking else "false",
    )


def collect_config_info(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled or not synced(state, CONFIG_SOURCE):
        return []
    data = state.kube.eni_config
    if data is None or ENI_CONF_KEY not in data:
        return [INFO.build()]
    conf = effective_confs(state.kube).get(ENI_CONFIG_NAME)
    if not isinstance(conf, EniConf):
        return [INFO.build()]  # eni_conf_unparsable says why
    cni = parse_cni_conf(data)
    labels = info_labels(conf, cni if isinstance(cni, CniConf) else None, network_policy_enabled(data))
    return [INFO.build_rows([(labels, 1.0)])]


def collect_config_problems(state: ClusterState) -> Iterable[Metric]:
    if not state.kube_enabled or not synced(state, CONFIG_SOURCE):
        return []
    problems = run_checks(state)
    counts = dict.fromkeys(CHECK_NAMES, 0)
    objects: set[tuple[str, str]] = set()
    for p in problems:
        if (p.check, p.object) not in objects:  # the same object failing twice counts once
            objects.add((p.check, p.object))
            counts[p.check] = counts.get(p.check, 0) + 1
    return [
        PROBLEMS.build_rows(((check,), float(n)) for check, n in counts.items()),
        PROBLEM.build_rows((key, 1.0) for key in sorted(objects)),
    ]


COLLECTORS = (
    Collector("terway_config_info", collect_config_info, frozenset({"kube", "sources"})),
    Collector("terway_config_problems", collect_config_problems,
              frozenset({"kube", "cloud", "targets", "sources"})),
)
