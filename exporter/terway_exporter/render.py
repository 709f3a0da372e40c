"""Render the exposition once per state change, so a scrape only copies bytes.

Each collector's output is rendered to text on its own and cached under the identity
of the state parts it reads (`Collector.reads`): when only the cloud snapshot
changed, the node collectors' text is reused as it is. The result is an immutable
`Exposition` holding the classic text format and its gzip; once a scraper has asked for
OpenMetrics, each render formats both variants (and both gzips) while it has the metrics at hand.

The metric objects themselves are not kept (at 5,000 nodes their samples and label dicts
were tens of MB), nor the state they came from. Until the first OpenMetrics render exists, an
OpenMetrics request is answered in the text format, which every Prometheus accepts, and asks the
render loop for an OpenMetrics render: no request ever runs a collector or compresses a body.

A collector that raises does not take the exposition down: its previous output is served and
`terway_exporter_collector_success{collector}` (node_exporter's `node_scrape_collector_success`)
says 0 for it; that family closes the exposition and is formatted on every render (one sample per
collector), since it describes the render itself rather than a part of the state.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .collectors.base import Collector
from .collectors.exporter import collector_duration, collector_success
from .memo import same_objects
from .model.state import ClusterState
from .selection import FamilySelection

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
    """A collector's output as the pieces of its text, in order. Pieces, not one joined body: the
    per-node collector's pieces are its parts' cached chunks, so the exposition is joined once, from
    them, and no second copy of 5,000 nodes' text is kept per variant (docs/performance.md)."""

    key: tuple
    text: Sequence[bytes]
    openmetrics: Sequence[bytes] | None = None  # without "# EOF"; None until OpenMetrics is wanted


@dataclass(frozen=True, slots=True)
class _Part:
    """One object's share of a per-object collector: its inputs and its sample lines per family, which are
    the same bytes in the text format and in OpenMetrics (`_sample_lines`), so both variants share them."""

    inputs: tuple
    chunks: tuple[bytes, ...]


@dataclass
class _PartsCache:
    shared: tuple | None = None
    parts: dict[str, _Part] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Exposition:
    """One rendering of every collector, in every variant a scraper has asked for, made in the
    render thread: a request only picks bytes (never formats, re-runs a collector or compresses)."""

    version: int
    rendered_at: float
    text: bytes
    text_gzip: bytes
    openmetrics: bytes | None = None  # None until a scraper has asked for OpenMetrics
    openmetrics_gzip: bytes | None = None
    # Tells the renderer a scraper asked for OpenMetrics (from the next render on, both are made).
    on_openmetrics: Callable[[], None] | None = None
    complete: bool = False  # rendered from a state in which every source had its first try (/readyz)

    @classmethod
    def of(cls, version: int, text: bytes, openmetrics: bytes | None = None,
           on_openmetrics: Callable[[], None] | None = None, complete: bool = False) -> Exposition:
        """Compress what was rendered (zlib releases the GIL, so scrapes go on meanwhile)."""
        return cls(version=version, rendered_at=time.time(), text=text, text_gzip=_gzip(text),
                   openmetrics=openmetrics, openmetrics_gzip=None if openmetrics is None else _gzip(openmetrics),
                   on_openmetrics=on_openmetrics, complete=complete)

    def want_openmetrics(self) -> None:
        if self.on_openmetrics is not None:
            self.on_openmetrics()


def _gzip(body: bytes) -> bytes:
    # Level 5: 5,000 nodes' text compresses 18:1 in about a tenth of level 9's time.
    return gzip.compress(body, compresslevel=5, mtime=0)


def _openmetrics(families: Sequence[Metric]) -> bytes:
    return _strip_eof(generate_openmetrics(_Families(families)))


def _strip_eof(body: bytes) -> bytes:
    return body[: -len(_OPENMETRICS_EOF)] if body.endswith(_OPENMETRICS_EOF) else body


def _state_key(state: ClusterState, reads: frozenset[str], tick: int) -> tuple[object, ...]:
    """What a collector's output depends on: each state part it reads, compared by `_same_key`.

    Snapshots are immutable and replaced on change, so identity is a cheap and exact change test.
    The key holds the parts themselves, not their id(): a part freed after its render could hand
    its address to the next snapshot, and an id would then match a different object. `now` stands
    for the periodic tick of age-based collectors.
    """
    key: list[object] = []
    for part in sorted(reads):
        if part == "now":
            key.append(tick)
        elif part in ("sources", "stats"):
            key.append(repr(getattr(state, part)))  # small, rebuilt each time: compare by value
        else:
            key.append(getattr(state, part))
    return tuple(key)


def _same_key(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Parts by identity; the tick and the repr of sources and stats (ints, strings) by value."""
    return len(a) == len(b) and all(x is y or (isinstance(x, int | str) and x == y) for x, y in zip(a, b, strict=True))


class Renderer:
    def __init__(self, collectors: Sequence[Collector], wake: Callable[[], None] | None = None,
                 selection: FamilySelection | None = None) -> None:
        self.collectors = tuple(collectors)
        self.selection = selection or FamilySelection()
        self._cache: dict[str, _Rendered] = {}
        self._parts: dict[str, _PartsCache] = {}
        self.failures: dict[str, int] = {}
        # Whether each collector's output is that of a successful run on the state just rendered.
        self.succeeded: dict[str, bool] = {}
        # Wall time of each collector's last run (cache hits are not runs).
        self.durations: dict[str, float] = {}
        # Set by the first OpenMetrics request: from then on each render formats both variants.
        self.openmetrics_wanted = False
        self._wake = wake  # asks for a render soon (the runtime's render loop)

    def want_openmetrics(self) -> None:
        """A scraper asked for OpenMetrics: render it from now on, starting with a render soon."""
        if not self.openmetrics_wanted:
            self.openmetrics_wanted = True
            if self._wake is not None:
                self._wake()

    def render(self, state: ClusterState, version: int, tick: int = 0) -> Exposition:
        parts = (*(self._render_one(c, state, tick) for c in self.collectors), self._render_success())
        openmetrics = None
        if self.openmetrics_wanted:
            openmetrics = b"".join(chain.from_iterable(p.openmetrics or () for p in parts)) + _OPENMETRICS_EOF
        text = b"".join(chain.from_iterable(p.text for p in parts))
        return Exposition.of(version, text, openmetrics, self.want_openmetrics, complete=state.complete)

    def _render_success(self) -> _Rendered:
        """The renderer's own families, last: each collector's last run time, then whether it succeeded."""
        families = [collector_duration((c.name, self.durations.get(c.name, 0.0)) for c in self.collectors),
                    collector_success((c.name, self.succeeded[c.name]) for c in self.collectors)]
        kept = [family for family in families if self.selection.keeps(family)]
        openmetrics = (_openmetrics(kept),) if self.openmetrics_wanted else None
        return _Rendered(key=(), text=(generate_latest(_Families(kept)),), openmetrics=openmetrics)

    def _render_one(self, collector: Collector, state: ClusterState, tick: int) -> _Rendered:
        key = _state_key(state, collector.reads, tick)
        cached = self._cache.get(collector.name)
        want_om = self.openmetrics_wanted
        if cached is not None and _same_key(cached.key, key) and (cached.openmetrics is not None or not want_om):
            # Only successful runs are cached: this is the output a run on these very inputs gives.
            self.succeeded[collector.name] = True
            return cached
        started = time.perf_counter()
        text: Sequence[bytes]
        openmetrics: Sequence[bytes] | None
        try:
            if collector.parts is not None:
                text, openmetrics = self._render_parts(collector, state, want_om)
            else:
                families = tuple(collector.collect(state))
                if not self.selection.everything:
                    families = tuple(self.selection.keeps_all(families))
                text = (generate_latest(_Families(families)),)
                openmetrics = (_openmetrics(families),) if want_om else None
        except Exception:  # a collector bug must not take the others down
            self.durations[collector.name] = time.perf_counter() - started
            self.failures[collector.name] = self.failures.get(collector.name, 0) + 1
            self.succeeded[collector.name] = False
            log.exception("collector %s failed; serving its previous output", collector.name)
            return cached or _Rendered(key=key, text=(), openmetrics=())
        self.durations[collector.name] = time.perf_counter() - started
        rendered = _Rendered(key=key, text=text, openmetrics=openmetrics)
        self._cache[collector.name] = rendered
        self.succeeded[collector.name] = True
        return rendered

    def _render_parts(
        self, collector: Collector, state: ClusterState, want_om: bool
    ) -> tuple[list[bytes], list[bytes] | None]:
        """Render only the parts whose inputs changed; reuse the others' lines as they are."""
        assert collector.parts is not None, "only called for collectors with parts"
        parts = collector.parts(state)
        selection = self.selection
        kept = [i for i, family in enumerate(parts.empty) if selection.everything or selection.keeps(family)]
        if not kept:
            return [], ([] if want_om else None)  # every family of this collector is switched off
        empties = [parts.empty[i] for i in kept]
        for family in empties:
            if family.type not in _PART_TYPES:
                raise ValueError(f"{family.name}: a per-object family must be a gauge or a counter, not {family.type}")
        cache = self._parts.setdefault(collector.name, _PartsCache())
        if cache.shared is None or cache.shared != parts.shared:
            cache.parts = {}
        fresh: dict[str, _Part] = {}
        for key, inputs, build in parts.items:
            part = cache.parts.get(key)
            if part is None or not same_objects(part.inputs, inputs):
                samples = build()
                label_text: dict[int, str] = {}  # the part's families share one labels dict: format it once
                part = _Part(inputs=inputs, chunks=tuple(_sample_lines(samples[i], label_text) for i in kept))
            fresh[key] = part
        cache.shared, cache.parts = parts.shared, fresh  # objects gone from the state drop out here
        chunks = [p.chunks for p in fresh.values()]
        text = _join_parts([generate_latest(_Families([empty])) for empty in empties], chunks)
        if not want_om:
            return text, None
        return text, _join_parts([_openmetrics([empty]) for empty in empties], chunks)


def _join_parts(headers: Sequence[bytes], chunks: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Each family's header followed by every part's chunk of that family, in part order (references to
    the cached chunks, joined once into the exposition)."""
    pieces: list[bytes] = []
    for i, header in enumerate(headers):
        pieces.append(header)
        pieces.extend(c[i] for c in chunks)
    return pieces


# The per-object families' sample lines are formatted here rather than by prometheus_client, whose formatters
# rebuild each family's header and validate every name for each object (two thirds of a first render of 10,000
# nodes, docs/performance.md). For a gauge's or a counter's samples without timestamp or exemplar both of its
# formats write the same line, `name{label="value",...} value`, labels sorted by name, values escaped as below;
# tests/test_render_parts.py holds the result to prometheus_client's bytes in both formats.
_PART_TYPES = frozenset({"gauge", "counter"})


def _sample_lines(samples: Sequence[Sample], label_text: dict[int, str]) -> bytes:
    """The lines of `samples`; `label_text` keeps each labels dict's text by id while those dicts live."""
    lines = []
    for sample in samples:
        if sample.timestamp is not None or sample.exemplar is not None or sample.native_histogram is not None:
            raise ValueError(f"{sample.name}: per-object samples carry no timestamp, exemplar or native histogram")
        labels = sample.labels
        if labels:
            text = label_text.get(id(labels))
            if text is None:
                text = label_text[id(labels)] = "{" + ",".join(
                    f'{name}="{_escape_label_value(value)}"' for name, value in sorted(labels.items())) + "}"
            lines.append(f"{sample.name}{text} {floatToGoString(sample.value)}\n")
        else:
            lines.append(f"{sample.name} {floatToGoString(sample.value)}\n")
    return "".join(lines).encode()


def _escape_label_value(value: str) -> str:
    # The exposition formats escape exactly these three in label values.
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value
