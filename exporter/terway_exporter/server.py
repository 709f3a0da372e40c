"""The HTTP endpoints of `serve`: /metrics, /healthz, /readyz and an index page.

/metrics never computes anything: it picks the latest `Exposition` and returns its
bytes (gzip-compressed or OpenMetrics when the scraper asks for them).
"""

from __future__ import annotations

import html
from collections.abc import Callable

from aiohttp import web

from .hub import SnapshotHub
from .render import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition

EXPOSITION_KEY = web.AppKey("exposition", Callable)
HUB_KEY = web.AppKey("hub", SnapshotHub)


def make_app(hub: SnapshotHub, exposition: Callable[[], Exposition | None]) -> web.Application:
    app = web.Application()
    app[HUB_KEY] = hub
    app[EXPOSITION_KEY] = exposition
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app


def _wants_openmetrics(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/openmetrics-text" in accept


def _accepts_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "")


async def metrics(request: web.Request) -> web.Response:
    current = request.app[EXPOSITION_KEY]()
    if current is None:
        return web.Response(status=503, text="no metrics rendered yet\n")
    if _wants_openmetrics(request):
        body, content_type = current.openmetrics_text(), OPENMETRICS_CONTENT_TYPE
        return _bytes(body, content_type)
    if _accepts_gzip(request):
        response = _bytes(current.gzip_text(), TEXT_CONTENT_TYPE)
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        return response
    return _bytes(current.text, TEXT_CONTENT_TYPE)


def _bytes(body: bytes, content_type: str) -> web.Response:
    # aiohttp's `content_type` argument rejects parameters; set the header whole.
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    if hub.ready() and request.app[EXPOSITION_KEY]() is not None:
        return web.Response(text="ready\n")
    waiting = sorted(name for name, s in hub.sources.items() if not s.attempted)
    return web.Response(status=503, text="waiting for the first sync of: " + ", ".join(waiting) + "\n")


async def index(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{'up' if s.up else ('down' if s.attempted else 'pending')}</td>"
        f"<td>{html.escape(s.error)}</td></tr>"
        for s in sorted(hub.sources.values(), key=lambda s: s.name)
    )
    page = (
        "<!doctype html><html><head><title>terway-exporter</title></head><body>"
        "<h1>terway-exporter</h1><ul>"
        '<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>'
        '<li><a href="/healthz">/healthz</a>: liveness</li>'
        '<li><a href="/readyz">/readyz</a>: readiness (every source synced once)</li></ul>'
        f"<h2>Sources</h2><table><tr><th>source</th><th>state</th><th>last error</th></tr>{rows}</table>"
        "</body></html>"
    )
    return web.Response(text=page, content_type="text/html")
