"""A simulated Kubernetes API server over plain HTTP, serving objects derived from a World.

What a client sees is what a real API server sends: list responses with a collection
resourceVersion, `limit`/`continue` paging, label and field selectors, `watch=true` as a
chunked stream of JSON lines with BOOKMARK events and `timeoutSeconds`, resume from a
resourceVersion, 410 Gone ("Expired") beyond the compaction window, Status bodies for
errors, 404 for the network.alibabacloud.com group when the scenario has no CRDs, and the
pod log endpoint. Every request must carry `Authorization: Bearer <token>`.

Control endpoints for tests and the benchmark (no auth, 127.0.0.1 only):
  POST /_sim/kube/compact            drop the change log (watches from older versions get 410)
  POST /_sim/kube/step               body {"set": {...}} applies that change now; no body: the next scenario step
  POST /_sim/kube/refresh            re-derive every object from the World
  POST /_sim/kube/churn              body {"count": N}: modify N pods / Node CRs now
  POST /_sim/kube/cut-watches        body {"mode": "partial"|"abort"|"close"}: end open watches mid-line /
                                     abruptly / cleanly (as at their timeout, without the closing bookmark)
  POST /_sim/kube/freeze             body {"frozen": true|false}: a hung API server: requests get no answer
                                     and open watches send nothing (no event, no bookmark) until thawed
  POST /_sim/kube/put                body {"resource": R, "object": {...}}: store the object exactly as given
                                     (R a store resource: pods, nodes, crnodes, podenis, events, ...; it needs
                                     metadata.name, and metadata.namespace when namespaced): what a broken or
                                     hostile writer could leave in etcd, absurd or malformed fields included.
                                     It is an ADDED or MODIFIED event; /refresh removes or repairs it.
                                     A small world's refresh before every request stops at the first put
  POST /_sim/kube/restart            body {"down_seconds": S}: stop the API server (every connection closed,
                                     the port refused) and start it again on the same port after S seconds,
                                     keeping the store (resourceVersions carry on); answers 202 at once.
                                     Only when started with a restart hook (`terway-exporter simulate` has
                                     one), else 501
  GET  /_sim/kube/stats              resourceVersion, compacted version, open watches, request count
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import kube_pods as kp
from .kube_select import (
    Selector,
    SelectorError,
    matches_fields,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from .kube_state import CRD_RESOURCES, RESOURCES, KubeSimulator
from .kube_store import Expired, ResourceKind, decode_continue, encode_continue
from .world import World

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "terway-sim-token"
SIM_KEY = web.AppKey("kube_sim", KubeSimulator)
# Stops this server and serves the same KubeSimulator again on the same port after a pause (seconds).
RestartHook = Callable[[float], Coroutine[Any, Any, None]]
RESTART_KEY: web.AppKey[RestartHook] = web.AppKey("kube_restart")
_BACKGROUND: set[asyncio.Task] = set()  # restarts in progress (a task outlives the request that asked)
_BY_PATH = {(r.group, r.version, r.plural): name for name, r in RESOURCES.items()}
_NOT_FOUND = "the server could not find the requested resource"
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list.")


def status(code: int, reason: str, message: str, details: dict | None = None, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": dict(meta), "status": "Failure",
                            "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def status_response(code: int, reason: str, message: str, details: dict | None = None, **meta: Any) -> web.Response:
    return web.json_response(status(code, reason, message, details, **meta), status=code)


def not_found() -> web.Response:
    return status_response(404, "NotFound", _NOT_FOUND, {})


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as err:
        raise SelectorError(f"{name}: Invalid value: \"{value}\": must be an integer") from err


class _Request:
    """One list/get/watch request, parsed."""

    def __init__(self, resource: str, namespace: str | None, name: str | None, subresource: str | None) -> None:
        self.resource = resource
        self.kind: ResourceKind = RESOURCES[resource]
        self.namespace = namespace
        self.name = name
        self.subresource = subresource


def _route(group: str, version: str, rest: list[str]) -> _Request | None:
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    resource = _BY_PATH.get((group, version, rest[0]))
    if resource is None:
        return None
    if namespace is not None and not RESOURCES[resource].namespaced:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and (resource, sub) != ("pods", "log"):
        return None
    if name is not None and RESOURCES[resource].namespaced and namespace is None:
        return None
    return _Request(resource, namespace, name, sub)


class KubeApi:
    """The HTTP handlers; all state lives in the KubeSimulator."""

    def __init__(self, sim: KubeSimulator) -> None:
        self.sim = sim
        self.stopping = False
        self.cut: tuple[int, str] = (0, "")
        self.open_watches = 0
        self.thawed = asyncio.Event()
        self.thawed.set()

    # ------------------------------------------------------------------ entry points

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.sim.token}":
            return status_response(401, "Unauthorized", "Unauthorized")
        if request.method != "GET":
            return status_response(405, "MethodNotAllowed",
                                   "the server does not allow this method on the requested resource")
        await self.thawed.wait()
        self.sim.before_request()
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            return web.json_response(_version())
        if parts[0] == "api":
            if len(parts) == 1:
                return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return web.json_response(self._groups())
            if len(parts) < 3:
                return not_found()
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return self._discovery(group, version)
        routed = _route(group, version, rest)
        if routed is None or not self.sim.resource_available(routed.resource):
            return not_found()
        try:
            if routed.subresource == "log":
                return self._log(request, routed)
            if routed.name is not None:
                return self._get(routed)
            if _flag(request.query.get("watch")):
                return await self._watch(request, routed)
            return self._list(request, routed)
        except SelectorError as err:
            return status_response(400, "BadRequest", str(err))

    # ------------------------------------------------------------------ get / list

    def _get(self, req: _Request) -> web.Response:
        assert req.name is not None, "routed here only with a name"
        key = f"{req.namespace}/{req.name}" if req.kind.namespaced else req.name
        obj = self.sim.find(req.resource, key)
        if obj is None:
            qualified = req.kind.plural + (f".{req.kind.group}" if req.kind.group else "")
            details = {"name": req.name, "kind": req.kind.plural,
                       **({"group": req.kind.group} if req.kind.group else {})}
            return status_response(404, "NotFound", f'{qualified} "{req.name}" not found', details)
        return web.json_response(obj)

    def _selectors(self, request: web.Request, req: _Request) -> tuple[Selector, Selector]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), req.kind.supported_fields,
                                      req.kind.resource_label)
        return labels, fields

    def _matcher(self, req: _Request, labels: Selector, fields: Selector):
        in_scope = self._scope(req, labels)

        def match(obj: dict | None) -> bool:
            if obj is None:  # an application pod refused by `_prefilter` without being built
                return False
            return in_scope(obj["metadata"].get("namespace"), obj) and matches_fields(fields, obj)
        return match

    def _prefilter(self, req: _Request, labels: Selector):
        """The namespace and label part of `_matcher`, for an application pod not built yet (None: nothing to
        refuse by them, so every pod is built)."""
        if req.namespace is None and not labels:
            return None
        in_scope = self._scope(req, labels)
        return lambda namespace, pod_labels: in_scope(namespace, {"metadata": {"labels": pod_labels}})

    @staticmethod
    def _scope(req: _Request, labels: Selector):
        """Whether an object (or the metadata of one not built yet) is in the request's namespace and matches its
        label selector: the one test `_matcher` and `_prefilter` share."""
        def in_scope(namespace: str | None, obj: dict) -> bool:
            if req.namespace is not None and namespace != req.namespace:
                return False
            return matches_labels(labels, obj)
        return in_scope

    def _list(self, request: web.Request, req: _Request) -> web.Response:
        labels, fields = self._selectors(request, req)
        limit = _int(request.query.get("limit"), "limit")
        token = request.query.get("continue")
        list_rv, start = self.sim.store.rv, 0
        if token:
            try:
                list_rv, start = decode_continue(token)
            except ValueError as err:
                return status_response(400, "BadRequest", str(err))
            if list_rv < self.sim.store.compacted_rv:
                fresh = encode_continue(self.sim.store.rv, start)
                return status_response(410, "Expired", _CONTINUE_EXPIRED, None, **{"continue": fresh})
        match = self._matcher(req, labels, fields)
        strip = req.resource not in CRD_RESOURCES  # built-in lists carry no kind/apiVersion per item
        items: list[dict[str, Any]] = []
        position, more = start, False
        for obj in self.sim.objects(req.resource, fields, start, self._prefilter(req, labels)):
            if limit and len(items) >= limit:
                more = True
                break
            position += 1
            if match(obj):
                assert obj is not None  # match() refuses None
                if strip:
                    obj = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                items.append(obj)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if more:
            meta["continue"] = encode_continue(list_rv, position)
            if not labels and not fields:
                meta["remainingItemCount"] = self._total(req) - position
        body = {"kind": f"{req.kind.kind}List", "apiVersion": req.kind.api_version, "metadata": meta, "items": items}
        return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")

    def _total(self, req: _Request) -> int:
        extra = self.sim.app_pod_count() if req.resource == "pods" else 0
        return self.sim.store.count(req.resource) + extra

    # ------------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, req: _Request) -> web.StreamResponse:
        labels, fields = self._selectors(request, req)
        match = self._matcher(req, labels, fields)
        store = self.sim.store
        rv_param = request.query.get("resourceVersion", "")
        timeout = _int(request.query.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = _flag(request.query.get("allowWatchBookmarks"))
        expired = None
        initial: list[tuple[str, dict]] = []
        # Nothing below awaits until the queue is subscribed: no change can fall between replay and live events.
        if rv_param in ("", "0"):
            initial = [("ADDED", o) for o in self.sim.objects(req.resource, fields, 0, self._prefilter(req, labels))
                       if o is not None and match(o)]  # match refuses None too; this narrows the type
            backlog = []
        else:
            try:
                backlog = store.events_since(req.resource, int(rv_param))
            except ValueError:
                return status_response(400, "BadRequest",
                                       f'resourceVersion: Invalid value: "{rv_param}": must be an integer')
            except Expired as err:
                if self.sim.expired_watch == "http":
                    return status_response(410, "Expired", str(err))
                expired, backlog = str(err), []
        queue = store.subscribe(req.resource)
        self.open_watches += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if expired:
                await _send(resp, "ERROR", status(410, "Expired", expired))
                return resp
            for type_, obj in initial:
                await _send(resp, type_, obj)
            for event in backlog:
                out = _filter_event(event, match)
                if out:
                    await _send(resp, *out)
            await self._stream(request, resp, req, queue, match, bookmarks, timeout)
            return resp
        except ConnectionResetError:
            return resp  # the watcher left (cut, restarted, timed out): nobody to answer, nothing to log
        finally:
            store.unsubscribe(req.resource, queue)
            self.open_watches -= 1

    async def _stream(self, request, resp, req, queue, match, bookmarks, timeout) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self.sim.default_watch_seconds)
        next_bookmark = time.monotonic() + self.sim.bookmark_seconds
        cut_seen = self.cut[0]
        while not self.stopping:
            if not self.thawed.is_set():
                await self.thawed.wait()  # hung: nothing is sent, not even the closing bookmark
                continue
            now = time.monotonic()
            if now >= deadline:
                break
            if not self.sim.resource_available(req.resource):
                return  # the CRD was deleted: the API server ends its watches; a new one gets 404
            if self.cut[0] != cut_seen:
                await self._cut(request, resp)
                return
            if queue.qsize() > 100_000:
                log.warning("kube simulator: closing a %s watch that fell behind", req.resource)
                break
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(0.2, deadline - now))
            except TimeoutError:
                if bookmarks and time.monotonic() >= next_bookmark and queue.empty():
                    await _send(resp, "BOOKMARK", _bookmark(req.kind, self.sim.store.rv))
                    next_bookmark = time.monotonic() + self.sim.bookmark_seconds
                continue
            out = _filter_event(event, match)
            if out:
                await _send(resp, *out)
        if bookmarks and not self.stopping and queue.empty():
            await _send(resp, "BOOKMARK", _bookmark(req.kind, self.sim.store.rv))

    async def _cut(self, request: web.Request, resp: web.StreamResponse) -> None:
        """Test hook: end the stream in the middle of a JSON line, or drop the connection, or end it cleanly."""
        if self.cut[1] == "close":
            return
        await resp.write(b'{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"cut-')
        if self.cut[1] == "abort" and request.transport is not None:
            request.transport.abort()

    # ------------------------------------------------------------------ logs

    def _log(self, request: web.Request, req: _Request) -> web.Response:
        pod = self.sim.find("pods", f"{req.namespace}/{req.name}")
        if pod is None:
            return status_response(404, "NotFound", f'pods "{req.name}" not found', {"name": req.name, "kind": "pods"})
        try:
            text = kp.pod_log(self.sim.world, pod, request.query.get("container"), _flag(request.query.get("previous")))
        except kp.LogError as err:
            return status_response(err.status, "BadRequest", str(err))
        text = kp.tail(text, _int(request.query.get("tailLines"), "tailLines"),
                       _int(request.query.get("limitBytes"), "limitBytes"))
        return web.Response(text=text, content_type="text/plain")

    # ------------------------------------------------------------------ discovery

    def _groups(self) -> dict:
        groups = [("apps", "v1"), ("coordination.k8s.io", "v1")]
        if self.sim.resource_available("crnodes"):
            groups.append(("network.alibabacloud.com", "v1beta1"))
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups]}

    def _discovery(self, group: str, version: str) -> web.Response:
        found = [(n, r) for n, r in RESOURCES.items() if r.group == group and r.version == version
                 and self.sim.resource_available(n)]
        if not found:
            return not_found()
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                  "groupVersion": f"{group}/{version}" if group else version, "resources": [
            {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
             "verbs": ["get", "list", "watch"]} for _, r in found]})

    # ------------------------------------------------------------------ control API

    async def control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        sim = self.sim
        if action == "stats" and request.method == "GET":
            return web.json_response({"resourceVersion": sim.store.rv, "compacted": sim.store.compacted_rv,
                                      "watches": self.open_watches, "requests": sim.requests,
                                      "next_step": sim.next_step, "steps": len(sim.world.steps)})
        if request.method != "POST":
            return web.json_response({"error": "use POST"}, status=405)
        if action == "compact":
            return web.json_response({"compacted": sim.store.compact()})
        if action == "refresh":
            return web.json_response({"changes": sim.refresh()})
        if action == "step":
            changes = sim.apply(body["set"]) if body.get("set") is not None else sim.run_next_step()
            return web.json_response({"changes": changes, "next_step": sim.next_step})
        if action == "churn":
            return web.json_response({"changes": sim.churn(int(body.get("count", 1)))})
        if action == "freeze":
            if body.get("frozen", True):
                self.thawed.clear()
            else:
                self.thawed.set()
            return web.json_response({"frozen": not self.thawed.is_set()})
        if action == "cut-watches":
            self.cut = (self.cut[0] + 1, str(body.get("mode", "partial")))
            return web.json_response({"watches": self.open_watches})
        if action == "put":
            return self._put(body)
        if action == "restart":
            restart = request.app.get(RESTART_KEY)
            if restart is None:
                return web.json_response({"error": "this API server was started without a restart hook"},
                                         status=501)
            down = max(0.0, float(body.get("down_seconds", 0)))
            task = asyncio.get_running_loop().create_task(restart(down))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            return web.json_response({"restarting": True, "down_seconds": down}, status=202)
        return web.json_response({"error": f"unknown action {action!r}"}, status=404)

    def _put(self, body: dict[str, Any]) -> web.Response:
        resource, obj = body.get("resource"), body.get("object")
        if resource not in RESOURCES:
            return web.json_response({"error": f"resource must be one of {sorted(RESOURCES)}"}, status=400)
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name or (RESOURCES[resource].namespaced and not isinstance(namespace, str)):
            return web.json_response({"error": "the object needs metadata.name (and metadata.namespace when "
                                               "the resource is namespaced) as strings"}, status=400)
        key = f"{namespace}/{name}" if RESOURCES[resource].namespaced else name
        self.sim.auto_refresh = False  # else the next request's refresh would take it away at once
        assert isinstance(obj, dict)  # checked above with its metadata
        changes = self.sim.store.replace(resource, [obj], scope={key})
        return web.json_response({"changes": changes, "resourceVersion": self.sim.store.rv})


def _filter_event(event, match) -> tuple[str, dict] | None:
    """What a watcher with a selector sees: objects entering it are ADDED, objects leaving it DELETED."""
    new_ok = match(event.obj)
    if event.type != "MODIFIED":
        return (event.type, event.obj) if new_ok else None
    old_ok = new_ok if event.prev is None else match(event.prev)
    if new_ok and old_ok:
        return "MODIFIED", event.obj
    if new_ok:
        return "ADDED", event.obj
    if old_ok:
        return "DELETED", event.prev
    return None


def _bookmark(kind: ResourceKind, rv: int) -> dict:
    return {"kind": kind.kind, "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(rv), "creationTimestamp": None}}


async def _send(resp: web.StreamResponse, type_: str, obj: dict) -> None:
    await resp.write(json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n")


def _version() -> dict:
    return {"major": "1", "minor": "33", "gitVersion": "v1.33.3-aliyun.1", "gitCommit": "sim", "gitTreeState": "clean",
            "buildDate": "2026-07-01T00:00:00Z", "goVersion": "go1.24.4", "compiler": "gc", "platform": "linux/amd64"}


# --------------------------------------------------------------------------- public API


def make_kube_app(world: World, *, token: str = DEFAULT_TOKEN, sim: KubeSimulator | None = None,
                  restart: RestartHook | None = None) -> web.Application:
    """The aiohttp application. Pass `sim` to keep the stored state (resourceVersions) across a restart;
    `restart` serves POST /_sim/kube/restart."""
    sim = sim or KubeSimulator(world, token=token)
    api = KubeApi(sim)
    app = web.Application()
    app[SIM_KEY] = sim
    if restart is not None:
        app[RESTART_KEY] = restart
    app.router.add_route("*", "/_sim/kube/{action}", api.control)
    app.router.add_route("*", "/version", api.handle)
    app.router.add_route("*", "/api", api.handle)
    app.router.add_route("*", "/api/{tail:.*}", api.handle)
    app.router.add_route("*", "/apis", api.handle)
    app.router.add_route("*", "/apis/{tail:.*}", api.handle)

    async def on_startup(_app: web.Application) -> None:
        sim.start()

    async def on_shutdown(_app: web.Application) -> None:
        api.stopping = True  # open watches end within 0.2 s instead of holding the shutdown
        api.thawed.set()  # and a frozen server lets its hung requests go

    async def on_cleanup(_app: web.Application) -> None:
        await sim.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def simulator_of(runner: web.AppRunner) -> KubeSimulator:
    """The KubeSimulator behind a runner from start_kube_simulator (to mutate the world, or to restart)."""
    return runner.app[SIM_KEY]


async def start_kube_simulator(world: World, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN,
                               sim: KubeSimulator | None = None,
                               restart: RestartHook | None = None) -> tuple[web.AppRunner, str]:
    """Serve the simulated API server; returns the runner (call `cleanup()` to stop) and its base URL."""
    runner = web.AppRunner(make_kube_app(world, token=token, sim=sim, restart=restart), shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"


def write_kubeconfig(path: str | Path, base_url: str, token: str = DEFAULT_TOKEN) -> Path:
    """A kubeconfig for the simulator: plain http, bearer token, one context."""
    path = Path(path)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "terway-sim",
        "clusters": [{"name": "terway-sim", "cluster": {"server": base_url}}],
        "users": [{"name": "terway-sim", "user": {"token": token}}],
        "contexts": [{"name": "terway-sim", "context": {"cluster": "terway-sim", "user": "terway-sim"}}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
