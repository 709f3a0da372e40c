"""Render the exposition once per state change, so a scrape only copies bytes.

Each collector's output is rendered to text on its own and cached under the identity
of the state parts it reads (`Collector.reads`): when only the cloud snapshot
changed, the node collectors' text is reused as it is. The result is an immutable
`Exposition` holding the classic text format; gzip and OpenMetrics variants are
produced on first request and kept with it.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .collectors.base import ClusterState, Collector

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_OPENMETRICS_EOF = b"# EOF\n"


class _Families:
    """The minimal registry interface prometheus_client's formatters accept."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass
class _Rendered:
    key: tuple
    families: tuple[Metric, ...]
    text: bytes
    openmetrics: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Part:
    """One object's share of a per-object collector: its inputs, metrics and text per family."""

    inputs: tuple
    metrics: Sequence[Metric]
    chunks: tuple[bytes, ...]


@dataclass
class _PartsCache:
    shared: tuple | None = None
    parts: dict[str, _Part] = field(default_factory=dict)


@dataclass
class Exposition:
    """One rendering of every collector; immutable once published (variants are memoised)."""

    version: int
    parts: tuple[_Rendered, ...]
    rendered_at: float
    text: bytes = b""
    _gzip: bytes | None = None
    _openmetrics: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gzip_text(self) -> bytes:
        with self._lock:
            if self._gzip is None:
                self._gzip = gzip.compress(self.text, compresslevel=5, mtime=0)
            return self._gzip

    def openmetrics_text(self) -> bytes:
        with self._lock:
            if self._openmetrics is None:
                chunks = []
                for part in self.parts:
                    if part.openmetrics is None:
                        part.openmetrics = _strip_eof(generate_openmetrics(_Families(part.families)))
                    chunks.append(part.openmetrics)
                self._openmetrics = b"".join(chunks) + _OPENMETRICS_EOF
            return self._openmetrics


def _strip_eof(body: bytes) -> bytes:
    return body[: -len(_OPENMETRICS_EOF)] if body.endswith(_OPENMETRICS_EOF) else body


def _state_key(state: ClusterState, reads: frozenset[str], tick: int) -> tuple:
    """What a collector's output depends on: the identity of each state part it reads.

    Snapshots are immutable and replaced on change, so identity is a cheap and exact
    change test; `now` stands for the periodic tick of age-based collectors.
    """
    key = []
    for part in sorted(reads):
        if part == "now":
            key.append(tick)
        elif part in ("sources", "stats"):
            key.append(repr(getattr(state, part)))  # small, rebuilt each time: compare by value
        else:
            key.append(id(getattr(state, part)))
    return tuple(key)


class Renderer:
    def __init__(self, collectors: Sequence[Collector]) -> None:
        self.collectors = tuple(collectors)
        self._cache: dict[str, _Rendered] = {}
        self._parts: dict[str, _PartsCache] = {}
        self.failures: dict[str, int] = {}

    def render(self, state: ClusterState, version: int, tick: int = 0) -> Exposition:
        parts = tuple(self._render_one(c, state, tick) for c in self.collectors)
        return Exposition(version=version, parts=parts, rendered_at=time.time(),
                          text=b"".join(p.text for p in parts))

    def _render_one(self, collector: Collector, state: ClusterState, tick: int) -> _Rendered:
        key = _state_key(state, collector.reads, tick)
        cached = self._cache.get(collector.name)
        if cached is not None and cached.key == key:
            return cached
        try:
            if collector.parts is not None:
                families, text = self._render_parts(collector, state)
            else:
                families = tuple(collector.collect(state))
                text = generate_latest(_Families(families))
        except Exception:  # a collector bug must not take the others down
            self.failures[collector.name] = self.failures.get(collector.name, 0) + 1
            log.exception("collector %s failed; serving its previous output", collector.name)
            return cached or _Rendered(key=key, families=(), text=b"")
        rendered = _Rendered(key=key, families=families, text=text)
        self._cache[collector.name] = rendered
        return rendered

    def _render_parts(self, collector: Collector, state: ClusterState) -> tuple[tuple[Metric, ...], bytes]:
        """Render only the parts whose inputs changed; reuse the others' text as it is."""
        parts = collector.parts(state)
        cache = self._parts.setdefault(collector.name, _PartsCache())
        if cache.shared is None or cache.shared != parts.shared:
            cache.parts = {}
        headers = [generate_latest(_Families([empty])) for empty in parts.empty]
        fresh: dict[str, _Part] = {}
        for key, inputs, build in parts.items:
            part = cache.parts.get(key)
            if part is None or not _same_objects(part.inputs, inputs):
                part = _render_part(inputs, build(), headers)
            fresh[key] = part
        cache.shared, cache.parts = parts.shared, fresh  # objects gone from the state drop out here
        text = b"".join(header + b"".join(p.chunks[i] for p in fresh.values()) for i, header in enumerate(headers))
        return _merge_families(parts.empty, fresh.values()), text


def _same_objects(old: tuple, new: tuple) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


def _render_part(inputs: tuple, metrics: Sequence[Metric], headers: Sequence[bytes]) -> _Part:
    """Format one object's metrics once, then cut the text into per-family chunks (headers removed)."""
    text = generate_latest(_Families(metrics))
    chunks, position = [], 0
    for index, header in enumerate(headers):
        if not text.startswith(header, position):
            raise ValueError(f"part metrics do not follow the families' order at {header[:60]!r}")
        start = position + len(header)
        position = text.find(headers[index + 1], start) if index + 1 < len(headers) else len(text)
        chunks.append(text[start:position])
    return _Part(inputs=inputs, metrics=tuple(metrics), chunks=tuple(chunks))


def _merge_families(empty: Sequence[Metric], parts: Iterable[_Part]) -> tuple[Metric, ...]:
    """The whole families (for the OpenMetrics variant): each part's samples, in part order."""
    merged = []
    for metric in empty:
        whole = Metric(metric.name, metric.documentation, metric.type)
        whole.samples = list(metric.samples)
        merged.append(whole)
    for part in parts:
        for whole, metric in zip(merged, part.metrics):
            whole.samples.extend(metric.samples)
    return tuple(merged)
