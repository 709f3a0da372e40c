"""The HTTP endpoints of `serve`: /metrics, /healthz, /readyz and an index page.

/metrics never computes anything: it picks the latest `Exposition` and returns its
bytes (gzip-compressed or OpenMetrics when the scraper asks for them).

Memory per client is bounded. The body is written in `WRITE_CHUNK` slices of the shared cached
bytes, each write waiting for the socket to drain: a client that does not read holds at most about
two chunks in the transport's buffer instead of its own copy of a multi-megabyte body (CPython
3.11's selector transport copies whatever the socket did not take). At most `max_concurrent`
responses are written at once (`ScrapeLimits`); a further scraper waits up to `queue_timeout` for a
slot, then gets 503. A response not fully written within `write_timeout` is aborted. Worst case:
max_concurrent x 2 x WRITE_CHUNK of buffered body (4 MiB), whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from .hub import SnapshotHub
from .render import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition
from .webconfig import WebSecurity

log = logging.getLogger(__name__)

EXPOSITION_KEY: web.AppKey[Callable[[], Exposition | None]] = web.AppKey("exposition")
HUB_KEY = web.AppKey("hub", SnapshotHub)
# aiohttp's writer drains once more than 64 KiB are buffered; writing slices of that size keeps
# each connection's buffered share of the body at about two slices.
WRITE_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ScrapeLimits:
    # Prometheus scrapes a target over one connection at a time; more slots cover HA pairs and humans.
    max_concurrent: int = 32
    queue_timeout: float = 10.0
    # Prometheus's default scrape timeout is 10 s: a client that has not read the body in 30 s never will.
    write_timeout: float = 30.0


LIMITS_KEY = web.AppKey("scrape_limits", ScrapeLimits)
STATUS_PAGE_KEY: web.AppKey[Callable[[], bytes | None]] = web.AppKey("status_page")  # the cached page, or None
SCRAPE_SLOTS_KEY = web.AppKey("scrape_slots", asyncio.Semaphore)


def make_app(hub: SnapshotHub, exposition: Callable[[], Exposition | None],
             limits: ScrapeLimits = ScrapeLimits(), security: WebSecurity | None = None,
             status_page: Callable[[], bytes | None] | None = None) -> web.Application:
    """The endpoints; `security` (--web.config.file) adds basic auth, headers and the rate limit to every
    path but /healthz and /readyz (TLS itself is the site's SSLContext)."""
    app = web.Application()
    if security is not None:
        security.install(app)
    app[HUB_KEY] = hub
    app[EXPOSITION_KEY] = exposition
    app[LIMITS_KEY] = limits
    app[STATUS_PAGE_KEY] = status_page or (lambda: None)
    app[SCRAPE_SLOTS_KEY] = asyncio.Semaphore(limits.max_concurrent)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app


def _weights(header: str) -> dict[str, float]:
    """An Accept-Encoding header as {coding: q} (RFC 9110 section 12.5.3)."""
    weights: dict[str, float] = {}
    for element in header.split(","):
        name, *params = (part.strip() for part in element.split(";"))
        if not name:
            continue
        name = name.lower()
        weights[name] = max(weights.get(name, 0.0), _q(params))
    return weights


def _q(params: list[str]) -> float:
    """The q weight among an Accept or Accept-Encoding element's parameters (RFC 9110 section 12.4.2)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0  # a q that is not a number: RFC 9110 has no meaning for it; do not prefer
    return 1.0


def _wants_openmetrics(request: web.Request) -> bool:
    """Whether prometheus_client's own negotiation (`exposition.choose_encoder`, what its
    `make_asgi_app`/`MetricsHandler` answer with) picks OpenMetrics for this Accept header.

    choose_encoder reads the media ranges in order and ignores q, so an element with q=0, which
    RFC 9110 section 12.4.2 defines as "not acceptable", would be picked all the same: such
    elements are dropped first. That is the only departure from prometheus_client's choice. Only
    the format is taken from it; the bytes are the pre-rendered ones with our own Content-Type.
    """
    header = request.headers.get("Accept", "")
    acceptable = [e for e in header.split(",") if _q([p.strip() for p in e.split(";")[1:]]) > 0]
    _, content_type = choose_encoder(",".join(acceptable))
    return content_type.startswith("application/openmetrics-text")


def _accepts_gzip(request: web.Request) -> bool:
    weights = _weights(request.headers.get("Accept-Encoding", ""))
    return weights.get("gzip", weights.get("*", 0.0)) > 0


async def metrics(request: web.Request) -> web.StreamResponse:
    current = request.app[EXPOSITION_KEY]()
    if current is None:
        return web.Response(status=503, text="no metrics rendered yet\n")
    slots, limits = request.app[SCRAPE_SLOTS_KEY], request.app[LIMITS_KEY]
    try:
        async with asyncio.timeout(limits.queue_timeout):  # not wait_for: see runtime._render_loop
            await slots.acquire()
    except TimeoutError:
        request.app[HUB_KEY].counters.count_scrape_rejected("too_many_concurrent")
        log.warning("503 to %s: %d /metrics responses already being written", request.remote,
                    limits.max_concurrent)
        return web.Response(status=503, text="too many concurrent scrapes\n", headers={"Retry-After": "1"})
    try:
        gzipped = _accepts_gzip(request)
        openmetrics = _wants_openmetrics(request)
        if openmetrics and current.openmetrics is None:
            # Nothing is formatted on the event loop: answer in the text format (Prometheus accepts
            # it) and ask the render loop to make OpenMetrics from now on.
            current.want_openmetrics()
            openmetrics = False
        om_body = current.openmetrics_gzip if gzipped else current.openmetrics
        if openmetrics and om_body is not None:
            body, content_type = om_body, OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = (current.text_gzip if gzipped else current.text), TEXT_CONTENT_TYPE
        # aiohttp's `content_type` argument rejects parameters; set the header whole.
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return await _stream(request, body, headers, limits.write_timeout)
    finally:
        slots.release()


async def _stream(request: web.Request, body: bytes, headers: dict[str, str],
                  write_timeout: float) -> web.StreamResponse:
    """Write the shared body slice by slice, waiting for the client to read each (see the module doc)."""
    response = web.StreamResponse(headers=headers)
    response.content_length = len(body)
    view = memoryview(body)
    try:
        async with asyncio.timeout(write_timeout):
            await response.prepare(request)
            for start in range(0, len(view), WRITE_CHUNK):
                await response.write(view[start:start + WRITE_CHUNK])
            await response.write_eof()
    except TimeoutError:
        request.app[HUB_KEY].counters.count_scrape_rejected("write_timeout")
        log.warning("aborted /metrics to %s: the body was not read within %.0f s", request.remote, write_timeout)
        if request.transport is not None:
            request.transport.abort()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    exposition = request.app[EXPOSITION_KEY]()
    # Ready once /metrics serves what the first sync read: an exposition rendered after every source's
    # first try, not merely every source tried (the render that follows may be a pacing pause away).
    if exposition is not None and exposition.complete:
        return web.Response(text="ready\n")
    if hub.ready():  # the sources /readyz does not wait for (the ENI census) may still be running
        return web.Response(status=503, text="every source synced once; rendering them\n")
    waiting = sorted(name for name, s in hub.sources.items() if not s.attempted)
    return web.Response(status=503, text="waiting for the first sync of: " + ", ".join(waiting) + "\n")


async def index(request: web.Request) -> web.Response:
    """The status page rendered with the latest exposition (findings, sources, links), else, before the
    first render, the sources alone."""
    page = request.app[STATUS_PAGE_KEY]()
    if page is not None:
        return web.Response(body=page, content_type="text/html", charset="utf-8")
    hub = request.app[HUB_KEY]
    rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{'up' if s.up else ('down' if s.attempted else 'pending')}</td>"
        f"<td>{html.escape(s.error)}</td></tr>"
        for s in sorted(hub.sources.values(), key=lambda s: s.name)
    )
    fallback = (
        "<!doctype html><html><head><title>terway-exporter</title></head><body>"
        "<h1>terway-exporter</h1><ul>"
        '<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>'
        '<li><a href="/healthz">/healthz</a>: liveness</li>'
        '<li><a href="/readyz">/readyz</a>: readiness (every source synced once)</li></ul>'
        f"<h2>Sources</h2><table><tr><th>source</th><th>state</th><th>last error</th></tr>{rows}</table>"
        "</body></html>"
    )
    return web.Response(text=fallback, content_type="text/html")
