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
            families = tuple(collector.collect(state))
            text = generate_latest(_Families(families))
        except Exception:  # a collector bug must not take the others down
            self.failures[collector.name] = self.failures.get(collector.name, 0) + 1
            log.exception("collector %s failed; serving its previous output", collector.name)
            return cached or _Rendered(key=key, families=(), text=b"")
        rendered = _Rendered(key=key, families=families, text=text)
        self._cache[collector.name] = rendered
        return rendered
