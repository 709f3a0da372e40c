"""What several judges read, computed once per evaluation from one ClusterState.

Every value here is what the exporter's metrics would say of the same state, read through the same
functions the collectors use and behind the same gates (a family the collectors leave absent, such as
the configuration checks before the ConfigMaps were read, gives no finding either): a finding is an
alert expression evaluated on the metrics, without Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from ..checks.config import Problem, run_checks
from ..collectors.pods import collect_waiting
from ..memo import reuse_while_same
from ..model.state import ClusterState, synced
from ..terway.eniconf import ConfigError, EniConf, configured_vswitches, effective_confs
from ..terway.errors import KNOWN_CODES, OTHER
from ..terway.node import NodeView, cached_node_views, degradation_level

CONFIG_SOURCE = "kube_configmaps"  # the configuration checks are judged once the ConfigMaps were read


def full_match(pattern: str, value: str) -> bool:
    """PromQL's =~: the regular expression must match the whole label value."""
    return re.fullmatch(pattern, value) is not None


@dataclass
class Context:
    state: ClusterState

    @property
    def kube(self):
        return self.state.kube

    @property
    def cloud(self):
        return self.state.cloud

    @cached_property
    def confs(self) -> Mapping[str, EniConf | ConfigError]:
        return effective_confs(self.kube)

    @cached_property
    def views(self) -> list[NodeView]:
        return cached_node_views(self.state)

    @cached_property
    def problems(self) -> list[Problem]:
        """terway_config_problem: every configuration check failure, one per (check, object)."""
        if not self.state.kube_enabled or not synced(self.state, CONFIG_SOURCE):
            return []
        state, views = self.state, self.views

        def compute() -> list[Problem]:
            seen: set[tuple[str, str]] = set()
            unique = []
            for problem in run_checks(state, views):
                if (problem.check, problem.object) not in seen:
                    seen.add((problem.check, problem.object))
                    unique.append(problem)
            return unique
        # What the checks read: the cluster, the cloud, the targets, the vSwitch step's status, the views.
        inputs = (state.kube, state.cloud, state.targets, state.sources.get("cloud_vswitches"), views)
        return reuse_while_same("problems", inputs, compute)

    @cached_property
    def configured_vswitch_ids(self) -> frozenset[str]:
        """vSwitches terway_vswitch_configured names (any source)."""
        return frozenset(v for v, _ in configured_vswitches(self.kube))

    @cached_property
    def network_errors(self) -> dict[tuple[str, str], int]:
        """terway_network_errors_total by (code, reason), codes outside the closed list as `other`."""
        if not self.state.kube_enabled:
            return {}
        totals: dict[tuple[str, str], int] = {}
        for (code, reason), occurrences in self.kube.network_errors.items():
            key = (code if code in KNOWN_CODES else OTHER, reason)
            totals[key] = totals.get(key, 0) + occurrences
        return {k: v for k, v in totals.items() if v > 0}

    def network_error_codes(self, pattern: str) -> dict[str, int]:
        """Occurrences by code of the counted events whose code matches `pattern` (all reasons)."""
        found: dict[str, int] = {}
        for (code, _), count in self.network_errors.items():
            if full_match(pattern, code):
                found[code] = found.get(code, 0) + count
        return found

    @cached_property
    def waiting(self) -> dict[str, tuple[int, float]]:
        """terway_pods_waiting_for_network and ..._oldest_seconds: node -> (pods, oldest age in seconds)."""
        count: dict[str, float] = {}  # sample values are floats; int() below
        oldest: dict[str, float] = {}
        for metric in collect_waiting(self.state):
            for sample in metric.samples:
                target = count if sample.name == "terway_pods_waiting_for_network" else oldest
                target[sample.labels["node"]] = sample.value
        return {node: (int(count[node]), oldest.get(node, 0.0)) for node in sorted(count)}

    @cached_property
    def daemon_synced(self) -> bool:
        return self.state.kube_enabled and synced(self.state, "kube_workloads", "kube_pods")

    def crash_causes(self, pattern: str) -> dict[str, list[str]]:
        """terway_daemon_crash_cause: code -> nodes whose crashing terway container's log names it."""
        if not self.daemon_synced:
            return {}
        found: dict[str, list[str]] = {}
        for node, code in sorted(self.kube.crash_causes.items()):
            code = code if code in KNOWN_CODES else OTHER
            if full_match(pattern, code):
                found.setdefault(code, []).append(node)
        return found

    def exporter_errors(self, pattern: str) -> dict[str, dict[str, int]]:
        """The exporter's own failed cloud API calls whose code matches: code -> api -> calls.

        The rules look at the last 10 minutes (terway_exporter:cloud_api_errors:increase10m), and
        a counter that appeared within them counts whole: for `check`, whose counters start at 0,
        that is every call of this run."""
        found: dict[str, dict[str, int]] = {}
        for (api, code), count in sorted(self.state.stats.cloud_requests.items()):
            if code != "Success" and count > 0 and full_match(pattern, code):
                found.setdefault(code, {})[api] = count
        return found

    @cached_property
    def degradation(self) -> str | None:
        """terway_controlplane_degradation's level set to 1 (none, l0, l1), None when absent."""
        if not self.state.kube_enabled or not synced(self.state, CONFIG_SOURCE):
            return None
        config = self.kube.controlplane_config
        level = reuse_while_same("degradation", (config,), lambda: degradation_level(self.kube))  # a YAML parse
        return None if level is None or isinstance(level, ConfigError) else level

    @cached_property
    def sources_down(self) -> list[str]:
        """terway_exporter_source_up == 0: sources that ran and whose last attempt failed."""
        return sorted(name for name, s in self.state.sources.items() if s.attempted and not s.up)
