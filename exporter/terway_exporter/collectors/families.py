"""Declarative metric family specs, and the cheap way to fill them.

A `Family` names a metric family once (name, help, labels, type); collectors turn rows into a
`prometheus_client.Metric` with `Family.build`. Samples are created directly rather than through
`GaugeMetricFamily.add_metric`, so a caller may share one labels dict between many samples (the
node collector reuses `{"node": name}` across all of a node's families: at 5,000 nodes that is most
of the per-sample cost). The formatters only read the labels, never change them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # as exposed; a counter's name ends in _total
    help: str
    labels: tuple[str, ...] = ()
    kind: str = "gauge"  # "gauge", "counter" or "histogram"

    @property
    def family_name(self) -> str:
        # prometheus_client names a counter family without its _total suffix.
        if self.kind == "counter" and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name

    # Labels are dicts, as prometheus_client's Sample declares them (shared, never changed: see above).
    def sample(self, labels: dict[str, str], value: float) -> Sample:
        return Sample(self.name, labels, value)

    def build(self, samples: Iterable[tuple[dict[str, str], float]] = ()) -> Metric:
        """A metric from (labels dict, value) pairs; the family is exposed even with no samples."""
        metric = Metric(self.family_name, self.help, self.kind)
        metric.samples = [Sample(self.name, labels, value) for labels, value in samples]
        return metric

    def build_rows(self, rows: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
        """A metric from (label values in `labels` order, value) pairs."""
        names = self.labels
        return self.build((dict(zip(names, values, strict=True)), value) for values, value in rows)

    def histogram(self, rows: Iterable[tuple[tuple[str, ...], Sequence[tuple[float, float]], float]]) -> Metric:
        """A histogram from (label values, cumulative (upper bound, count) buckets ending in +Inf, sum)
        rows: the _bucket series with `le`, then _count and _sum, as prometheus_client's
        HistogramMetricFamily lays them out."""
        metric = Metric(self.family_name, self.help, "histogram")
        for values, buckets, total in rows:
            labels = dict(zip(self.labels, values, strict=True))
            metric.samples.extend(Sample(f"{self.name}_bucket", {**labels, "le": floatToGoString(bound)}, count)
                                  for bound, count in buckets)
            metric.samples.append(Sample(f"{self.name}_count", labels, buckets[-1][1]))
            metric.samples.append(Sample(f"{self.name}_sum", labels, total))
        return metric

    def state_set(self, states: Iterable[str], current: str, label: str = "state") -> Metric:
        """One series per state, 1 on the current one and 0 on the others."""
        return self.build(({label: s}, 1.0 if s == current else 0.0) for s in states)
