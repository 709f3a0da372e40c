"""Which metric families are exposed: `--metric-allowlist`, `--metric-denylist`, `--no-node-metrics`.

The lists follow kube-state-metrics: comma-separated regular expressions matched against the whole
metric name as queried (a counter with its `_total`), exclusive of each other. `--no-node-metrics`
drops every family with a `node` label, for users who want cluster-level signals only (the alerts
and dashboard panels that read per-node series then have nothing to show; docs/metrics.md lists them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import Metric


def parse_patterns(text: object) -> tuple[re.Pattern[str], ...]:
    """A comma-separated list (or a YAML list) of regular expressions; ValueError names a bad one."""
    items = text if isinstance(text, list) else str(text).split(",")
    patterns = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            patterns.append(re.compile(item))
        except re.error as err:
            raise ValueError(f"{item!r} is not a regular expression: {err}") from None
    return tuple(patterns)


@dataclass(frozen=True)
class FamilySelection:
    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()
    per_node: bool = True
    per_node_names: frozenset[str] = frozenset()  # families with a `node` label
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.allow and self.deny:
            raise ValueError("--metric-allowlist and --metric-denylist are exclusive: give one of them")

    @property
    def everything(self) -> bool:
        return not self.allow and not self.deny and self.per_node

    def keeps(self, metric: Metric) -> bool:
        key = (metric.name, metric.type)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._judge(metric.name, metric.type)
        return verdict

    def keeps_all(self, metrics: Iterable[Metric]) -> list[Metric]:
        return [m for m in metrics if self.keeps(m)]

    def _judge(self, name: str, kind: str) -> bool:
        queried = f"{name}_total" if kind == "counter" else name
        if not self.per_node and queried in self.per_node_names:
            return False
        if self.allow:
            return any(p.fullmatch(queried) for p in self.allow)
        return not any(p.fullmatch(queried) for p in self.deny)
