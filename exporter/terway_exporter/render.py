"""Render the exposition once per state change, so a scrape only copies bytes.

Each collector's output is rendered to text on its own and cached under the identity
of the state parts it reads (`Collector.reads`): when only the cloud snapshot
changed, the node collectors' text is reused as it is. The result is an immutable
`Exposition` holding the classic text format; gzip and OpenMetrics variants are
produced on first request and kept with it.

The metric objects themselves are not kept (at 5,000 nodes their samples and label dicts
were tens of MB): once a scraper has asked for OpenMetrics, each render formats both
variants while it has the metrics at hand; before that, the first OpenMetrics request
re-runs the collectors over the state the exposition was rendered from.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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
    text: bytes
    openmetrics: bytes | None = None  # without "# EOF"; None until OpenMetrics is wanted


@dataclass(frozen=True, slots=True)
class _Part:
    """One object's share of a per-object collector: its inputs and text per family."""

    inputs: tuple
    chunks: tuple[bytes, ...]
    om_chunks: tuple[bytes, ...] | None = None  # the same in OpenMetrics, once wanted


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
    # What was rendered, so the OpenMetrics variant can be made on demand without keeping metrics.
    state: ClusterState | None = None
    collectors: tuple[Collector, ...] = ()
    on_openmetrics: Callable[[], None] | None = None  # tells the renderer OpenMetrics is wanted
    _gzip: bytes | None = None
    _openmetrics: bytes | None = None
    _gzip_openmetrics: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gzip_text(self) -> bytes:
        with self._lock:
            if self._gzip is None:
                self._gzip = gzip.compress(self.text, compresslevel=5, mtime=0)
            return self._gzip

    def gzip_openmetrics(self) -> bytes:
        body = self.openmetrics_text()
        with self._lock:
            if self._gzip_openmetrics is None:
                self._gzip_openmetrics = gzip.compress(body, compresslevel=5, mtime=0)
            return self._gzip_openmetrics

    def openmetrics_text(self) -> bytes:
        with self._lock:
            if self._openmetrics is None:
                if self.on_openmetrics is not None:
                    self.on_openmetrics()
                chunks = []
                for part, collector in zip(self.parts, self.collectors):
                    if part.openmetrics is None:
                        part.openmetrics = _collect_openmetrics(collector, self.state)
                    chunks.append(part.openmetrics)
                self._openmetrics = b"".join(chunks) + _OPENMETRICS_EOF
            return self._openmetrics


def _collect_openmetrics(collector: Collector, state: ClusterState | None) -> bytes:
    """A collector's OpenMetrics text, re-run over the rendered state (its text came from the same)."""
    if state is None:
        return b""
    try:
        if collector.parts is None:
            return _openmetrics(tuple(collector.collect(state)))
        # Part by part, as a render does: never all 5,000 nodes' metric objects at once.
        parts = collector.parts(state)
        om_headers = [_openmetrics([empty]) for empty in parts.empty]
        return _join_parts(om_headers, [_cut(_openmetrics(build()), om_headers) for _, _, build in parts.items])
    except Exception:  # as in Renderer._render_one: one collector must not take the others down
        log.exception("collector %s failed; its OpenMetrics output is left out", collector.name)
        return b""


def _openmetrics(families: Sequence[Metric]) -> bytes:
    return _strip_eof(generate_openmetrics(_Families(families)))


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
        # Set by the first OpenMetrics request: from then on each render formats both variants.
        self.openmetrics_wanted = False

    def want_openmetrics(self) -> None:
        self.openmetrics_wanted = True

    def render(self, state: ClusterState, version: int, tick: int = 0) -> Exposition:
        parts = tuple(self._render_one(c, state, tick) for c in self.collectors)
        return Exposition(version=version, parts=parts, rendered_at=time.time(),
                          text=b"".join(p.text for p in parts), state=state, collectors=self.collectors,
                          on_openmetrics=self.want_openmetrics)

    def _render_one(self, collector: Collector, state: ClusterState, tick: int) -> _Rendered:
        key = _state_key(state, collector.reads, tick)
        cached = self._cache.get(collector.name)
        want_om = self.openmetrics_wanted
        if cached is not None and cached.key == key and (cached.openmetrics is not None or not want_om):
            return cached
        try:
            if collector.parts is not None:
                text, openmetrics = self._render_parts(collector, state, want_om)
            else:
                families = tuple(collector.collect(state))
                text = generate_latest(_Families(families))
                openmetrics = _openmetrics(families) if want_om else None
        except Exception:  # a collector bug must not take the others down
            self.failures[collector.name] = self.failures.get(collector.name, 0) + 1
            log.exception("collector %s failed; serving its previous output", collector.name)
            return cached or _Rendered(key=key, text=b"", openmetrics=b"")
        rendered = _Rendered(key=key, text=text, openmetrics=openmetrics)
        self._cache[collector.name] = rendered
        return rendered

    def _render_parts(self, collector: Collector, state: ClusterState, want_om: bool) -> tuple[bytes, bytes | None]:
        """Render only the parts whose inputs changed; reuse the others' text as it is."""
        parts = collector.parts(state)
        cache = self._parts.setdefault(collector.name, _PartsCache())
        if cache.shared is None or cache.shared != parts.shared:
            cache.parts = {}
        headers = [generate_latest(_Families([empty])) for empty in parts.empty]
        om_headers = [_openmetrics([empty]) for empty in parts.empty] if want_om else None
        fresh: dict[str, _Part] = {}
        for key, inputs, build in parts.items:
            part = cache.parts.get(key)
            if part is None or not _same_objects(part.inputs, inputs) or (want_om and part.om_chunks is None):
                part = _render_part(inputs, build(), headers, om_headers)
            fresh[key] = part
        cache.shared, cache.parts = parts.shared, fresh  # objects gone from the state drop out here
        text = _join_parts(headers, [p.chunks for p in fresh.values()])
        if om_headers is None:
            return text, None
        return text, _join_parts(om_headers, [p.om_chunks for p in fresh.values()])


def _same_objects(old: tuple, new: tuple) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


def _join_parts(headers: Sequence[bytes], chunks: Sequence[Sequence[bytes]]) -> bytes:
    """Each family's header followed by every part's chunk of that family, in part order."""
    return b"".join(header + b"".join(c[i] for c in chunks) for i, header in enumerate(headers))


def _render_part(inputs: tuple, metrics: Sequence[Metric], headers: Sequence[bytes],
                 om_headers: Sequence[bytes] | None) -> _Part:
    """Format one object's metrics once per variant; the metrics themselves are not kept."""
    chunks = _cut(generate_latest(_Families(metrics)), headers)
    om_chunks = None if om_headers is None else _cut(_openmetrics(metrics), om_headers)
    return _Part(inputs=inputs, chunks=chunks, om_chunks=om_chunks)


def _cut(text: bytes, headers: Sequence[bytes]) -> tuple[bytes, ...]:
    """Cut one object's text into per-family chunks, headers removed."""
    chunks, position = [], 0
    for index, header in enumerate(headers):
        if not text.startswith(header, position):
            raise ValueError(f"part metrics do not follow the families' order at {header[:60]!r}")
        start = position + len(header)
        position = text.find(headers[index + 1], start) if index + 1 < len(headers) else len(text)
        chunks.append(text[start:position])
    return tuple(chunks)
