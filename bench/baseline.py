"""The baseline: the same exporter written the usual way, for the benchmark to compare against.

What differs from `terway-exporter serve` is only the "how":
- Kubernetes objects are listed and watched with the synchronous `kubernetes` client and
  deserialised into its generated models (one thread per resource, `watch.Watch().stream`),
  then turned back into dicts (`sanitize_for_serialization`) so the project's own projections
  build the same snapshots;
- /metrics is prometheus_client's WSGI app on its threading server, over the default
  REGISTRY, with a custom collector that runs every collector on every scrape.
The collectors, the snapshots and the cloud source are the real ones, so the figures differ
only by how objects are read and how the exposition is rendered.

    python bench/baseline.py serve --listen-address 127.0.0.1:PORT --ecs-endpoint URL ...

takes the options of `terway-exporter serve` (and its environment variables).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from wsgiref.simple_server import make_server

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from terway_exporter.collectors.registry import all_collectors
from terway_exporter.config import Options, add_options, resolve
from terway_exporter.hub import SnapshotHub
from terway_exporter.logs import setup_logging
from terway_exporter.model.state import ExporterSettings
from terway_exporter.runtime import _make_cloud_source, wait_for_kube_first_sync
from terway_exporter.sources.kube import resources as res
from terway_exporter.sources.kube.events import EventTally, project_warning
from terway_exporter.sources.kube.fields import name_of, namespaced_key, uid_key
from terway_exporter.sources.kube.nodes import project_node, project_terway_node
from terway_exporter.sources.kube.objects import (
    CONTROLPLANE,
    DAEMONSET,
    KUBERNETES_SERVICE,
    project_configmap,
    project_daemonset,
    project_deployment,
    project_lease,
    project_pod_networking,
    project_service,
)
from terway_exporter.sources.kube.podenis import project_pod_eni
from terway_exporter.sources.kube.pods import project_pod_summary, project_waiting_pod
from terway_exporter.sources.kube.reflector import ReflectorStatus
from terway_exporter.sources.kube.source import build_snapshot, group_status

log = logging.getLogger("baseline")


@dataclass(frozen=True)
class Resource:
    name: str
    list_call: Callable[..., Any]  # a model-returning list method, selectors applied
    project: Callable[[dict[str, Any]], Any]
    key: Callable[[dict[str, Any]], str] = namespaced_key
    optional: bool = False


def resources(api: client.ApiClient, namespace: str) -> list[Resource]:
    """The same resources and selectors as the real source (sources/kube/resources.py)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    custom, coordination = client.CustomObjectsApi(api), client.CoordinationV1Api(api)
    crd = partial(custom.list_cluster_custom_object, res.TERWAY_GROUP, res.TERWAY_VERSION)
    pods = partial(core.list_namespaced_pod, namespace)
    by_name = "metadata.name={}".format
    return [
        Resource("nodes", core.list_node, project_node, name_of),
        Resource("terway_nodes", partial(crd, "nodes"), project_terway_node, name_of, optional=True),
        Resource("daemon_pods", partial(pods, label_selector=res.DAEMON_POD_SELECTOR), project_pod_summary),
        Resource("pending_pods", partial(core.list_pod_for_all_namespaces, field_selector="status.phase=Pending"),
                 project_waiting_pod, uid_key),
        Resource("events", partial(core.list_event_for_all_namespaces, field_selector="type=Warning"),
                 project_warning, uid_key),
        Resource("daemonsets", partial(apps.list_namespaced_daemon_set, namespace,
                                       field_selector=by_name(DAEMONSET)), project_daemonset, name_of),
        Resource("deployments", partial(apps.list_namespaced_deployment, namespace), project_deployment, name_of),
        Resource("leases", partial(coordination.list_namespaced_lease, namespace,
                                   field_selector=by_name(CONTROLPLANE)), project_lease, name_of),
        Resource("configmaps", partial(core.list_namespaced_config_map, namespace), project_configmap, name_of),
        Resource("services", partial(core.list_namespaced_service, "default",
                                     field_selector=by_name(KUBERNETES_SERVICE)), project_service, name_of),
        Resource("pod_networkings", partial(crd, "podnetworkings"), project_pod_networking, name_of,
                 optional=True),
        Resource("pod_enis", partial(crd, "podenis"), project_pod_eni, optional=True),
    ]


@dataclass
class ModelReflector:
    """List into models, then watch into models; every object goes model -> dict -> projection."""

    resource: Resource
    api: client.ApiClient
    on_change: Callable[[], None]
    observe: Callable[[str, Any, Any], None] | None = None
    items: dict[str, Any] = field(default_factory=dict)
    absent: bool = False
    listed: threading.Event = field(default_factory=threading.Event)
    up: bool = False
    error: str = ""
    last_success: float | None = None

    def run(self) -> None:
        while True:
            try:
                version = self._list()
                while version is not None:
                    version = self._watch(version)
                if self.absent:
                    time.sleep(300)
            except Exception as err:  # the usual loop: log, wait, relist
                self.up, self.error = False, str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                self.listed.set()
                self.on_change()
                log.warning("%s: %s", self.resource.name, self.error)
                time.sleep(2.0)

    def _dict(self, model: Any) -> dict[str, Any]:
        return model if isinstance(model, dict) else self.api.sanitize_for_serialization(model)

    def _list(self) -> str | None:
        found: dict[str, Any] = {}
        token = None
        try:
            while True:
                page = self.resource.list_call(limit=500, _continue=token)
                page = self._dict(page)
                for raw in page.get("items") or []:
                    key, value = self.resource.key(raw), self.resource.project(raw)
                    if value is not None:
                        found[key] = value
                metadata = page.get("metadata") or {}
                token = metadata.get("continue")
                if not token:
                    break
        except ApiException as err:
            if err.status == 404 and self.resource.optional:
                self.absent = True
                self._replace({})
                return None
            raise
        self.absent = False
        self._replace(found)
        return str(metadata.get("resourceVersion") or "")

    def _replace(self, found: dict[str, Any]) -> None:
        old, self.items = self.items, found
        if self.observe is not None:
            for key, value in found.items():
                if old.get(key) != value:
                    self.observe(key, old.get(key), value)
        self.up, self.error, self.last_success = True, "", time.time()
        self.listed.set()
        self.on_change()

    def _watch(self, version: str) -> str | None:
        """One watch; returns the version to resume from, None to relist (410 Gone)."""
        stream = watch.Watch()
        try:
            for event in stream.stream(self.resource.list_call, resource_version=version, timeout_seconds=300,
                                       allow_watch_bookmarks=True):
                self._apply(event["type"], self._dict(event["object"]))
        except ApiException as err:
            if err.status == 410:
                return None
            raise
        return stream.resource_version or version

    def _apply(self, kind: str, raw: dict[str, Any]) -> None:
        if kind == "ERROR":
            raise ApiException(status=int(raw.get("code") or 500), reason=str(raw.get("message")))
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = self.resource.key(raw)
        old = self.items.get(key)
        new = None if kind == "DELETED" else self.resource.project(raw)
        if new is None:
            self.items.pop(key, None)
        else:
            self.items[key] = new
        if old != new:
            if self.observe is not None:
                self.observe(key, old, new)
            self.on_change()


class ModelKubeSource:
    """Threads of ModelReflectors; publishes a snapshot into the hub at most twice a second."""

    def __init__(self, hub: SnapshotHub, loop: asyncio.AbstractEventLoop, kubeconfig: str, namespace: str) -> None:
        self.hub, self.loop = hub, loop
        self.latest: Any = None  # the last snapshot published: the cloud source derives its targets from it
        self.tally = EventTally(since=time.time())
        self.dirty = threading.Event()
        for name in res.STATUS_GROUPS:
            hub.register(name)
        self.reflectors: dict[str, ModelReflector] = {}
        for index, _ in enumerate(resources(_api_client(kubeconfig), namespace)):
            api = _api_client(kubeconfig)  # one client per thread: a watch holds its connection for minutes
            resource = resources(api, namespace)[index]
            self.reflectors[resource.name] = ModelReflector(
                resource, api, self.dirty.set, self.tally.observe if resource.name == "events" else None)

    def start(self) -> None:
        for reflector in self.reflectors.values():
            threading.Thread(target=reflector.run, name=reflector.resource.name, daemon=True).start()
        threading.Thread(target=self._publish, name="publish", daemon=True).start()

    def _publish(self) -> None:
        for reflector in self.reflectors.values():
            reflector.listed.wait()
        while True:
            self.dirty.wait()
            self.dirty.clear()
            stores = {name: dict(r.items) for name, r in self.reflectors.items()}
            absent = frozenset(name for name, r in self.reflectors.items() if r.absent)
            snapshot = build_snapshot(stores, absent, self.tally.totals(), {})
            self.loop.call_soon_threadsafe(self._hand_over, snapshot)
            time.sleep(0.5)

    def _hand_over(self, snapshot: Any) -> None:
        self.latest = snapshot
        self.hub.publish_kube(snapshot)
        for group, members in res.STATUS_GROUPS.items():
            status = group_status(group, {m: _status(self.reflectors[m]) for m in members})
            if status is not None:
                self.hub.report(status)


def _status(reflector: ModelReflector) -> ReflectorStatus:
    return ReflectorStatus(attempted=reflector.listed.is_set(), synced=reflector.last_success is not None,
                           up=reflector.up, last_success=reflector.last_success, error=reflector.error)


def _api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration, persist_config=False)
    return client.ApiClient(configuration)


class EveryScrape:
    """The custom collector: every collector runs on every scrape, from the hub's latest state."""

    def __init__(self, hub: SnapshotHub) -> None:
        self.hub = hub
        self.collectors = all_collectors()

    def collect(self) -> Iterable[Any]:
        state = self.hub.state()
        for collector in self.collectors:
            yield from collector.collect(state)


def wsgi_app(hub: SnapshotHub) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/readyz":
            ready = hub.ready()
            start_response("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ready else b"waiting\n"]
        return metrics(environ, start_response)

    return app


async def serve(options: Options) -> None:
    loop = asyncio.get_running_loop()
    settings = ExporterSettings(leak_grace_period=options.leak_grace_period)
    hub = SnapshotHub(settings)
    hub.bind_loop(loop)
    kube = ModelKubeSource(hub, loop, options.kubeconfig, options.terway_namespace)
    # The cloud source derives its targets from the cluster at each poll, as in serve.
    cloud = _make_cloud_source(hub, options, kube)
    REGISTRY.register(EveryScrape(hub))
    host, port = options.listen_address
    server = make_server(host, port, wsgi_app(hub), ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("baseline serving on http://%s:%s/metrics", host, port)
    kube.start()
    await wait_for_kube_first_sync(hub)
    await cloud.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baseline")
    commands = parser.add_subparsers(dest="command", required=True)
    add_options(commands.add_parser("serve"), "serve")
    args = parser.parse_args(argv)
    options = resolve("serve", {k: v for k, v in vars(args).items() if k != "command"}, os.environ)
    setup_logging(options.log_level, options.log_format)
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
