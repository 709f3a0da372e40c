"""The simulated API server's state: Kubernetes objects derived from a World, kept versioned.

`KubeSimulator` turns the World into objects (kube_objects, kube_pods), stores them with
resourceVersions (kube_store), and re-derives them when the World changes:
- small worlds (up to `auto_refresh_max_nodes` nodes) are re-derived on every request, so a
  test that edits the World directly sees the change at once, as from a real API server;
- steps, churn, `apply()` and `touch()` re-derive what they changed, which is what keeps the
  5,000-node scale scenario cheap; `refresh()` re-derives everything on demand.
Application pods (one per in-use IP) are never stored: they are generated while a list or
a watch walks them, and only their resourceVersion/churn counters are remembered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import kube_objects as ko
from . import kube_pods as kp
from .kube_podenis import pod_enis
from .kube_select import Selector
from .kube_steps import apply_change, validate_steps
from .kube_store import ResourceKind, VersionedStore
from .world import World, WorldNode

log = logging.getLogger(__name__)

_POD_FIELDS = frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                         "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"})
_EVENT_FIELDS = frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                           "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                           "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"})

# Internal resource name -> REST resource. "crnodes" is nodes.network.alibabacloud.com.
RESOURCES: dict[str, ResourceKind] = {
    "nodes": ResourceKind("nodes", "Node", namespaced=False, fields=frozenset({"spec.unschedulable"})),
    "pods": ResourceKind("pods", "Pod", fields=_POD_FIELDS),
    "events": ResourceKind("events", "Event", fields=_EVENT_FIELDS),
    "configmaps": ResourceKind("configmaps", "ConfigMap"),
    "services": ResourceKind("services", "Service"),
    "namespaces": ResourceKind("namespaces", "Namespace", namespaced=False, fields=frozenset({"status.phase"})),
    "daemonsets": ResourceKind("daemonsets", "DaemonSet", group="apps"),
    "deployments": ResourceKind("deployments", "Deployment", group="apps"),
    "leases": ResourceKind("leases", "Lease", group="coordination.k8s.io"),
    "crnodes": ResourceKind("nodes", "Node", group=ko.CRD_GROUP, version="v1beta1", namespaced=False),
    "podnetworkings": ResourceKind("podnetworkings", "PodNetworking", group=ko.CRD_GROUP, version="v1beta1",
                                   namespaced=False),
    "podenis": ResourceKind("podenis", "PodENI", group=ko.CRD_GROUP, version="v1beta1"),
}
CRD_RESOURCES = frozenset({"crnodes", "podnetworkings", "podenis"})


class KubeSimulator:
    def __init__(self, world: World, *, token: str, auto_refresh_max_nodes: int = 200, seed: int = 1) -> None:
        api = world.kubernetes.get("api") or {}
        validate_steps(world)
        self.world = world
        self.token = token
        self.store = VersionedStore(compaction_seconds=float(api.get("compaction_seconds", 300)))
        self.bookmark_seconds = float(api.get("bookmark_seconds", 5))
        self.default_watch_seconds = float(api.get("watch_timeout_seconds", 1800))
        # "event": a too-old watch gets HTTP 200 and one ERROR event with code 410 (what a real server with the
        # watch cache does); "http": a plain HTTP 410 Status response.
        self.expired_watch = str(api.get("expired_watch", "event"))
        self.auto_refresh = len(world.nodes) <= auto_refresh_max_nodes
        self.churn_per_minute = float(world.kubernetes.get("churn_per_minute", 0.0))
        self.started = time.monotonic()
        self.next_step = 0
        self.requests = 0
        self._rng = random.Random(seed)
        self._churn_credit = 0.0
        self._app_rv: dict[str, int] = {}  # pod key -> rv, for application pods changed since load
        self._app_churn: dict[str, int] = {}
        self._app_index: dict[str, tuple[tuple[str, str], ...]] = {}  # node -> ((pod_id, ip), ...)
        self._node_pods: dict[str, set[str]] = {}  # node -> keys of stored (non-app) pods on it
        self._daemon_names: dict[str, str] = {}
        self._tasks: list[asyncio.Task] = []
        self._app_base_rv = self.store.next_rv()  # application pods present at load share one version
        self.refresh()

    # ------------------------------------------------------------------ deriving

    def refresh(self, nodes: set[str] | None = None) -> int:
        """Re-derive objects from the World (all, or only those of `nodes`); returns the number of changes."""
        world, store, now = self.world, self.store, time.time()
        changes = 0
        names = set(world.nodes) if nodes is None else nodes
        present = [world.nodes[n] for n in sorted(names) if n in world.nodes]
        scope = None if nodes is None else names
        changes += store.replace("nodes", [ko.core_node(world, n) for n in present], scope)
        if ko.crds_enabled(world):
            changes += store.replace("crnodes", [ko.node_cr(world, n) for n in present if not ko.is_ignored(n)], scope)
        elif store.count("crnodes"):
            changes += store.replace("crnodes", [])
        pod_changes = self._refresh_node_pods(present, nodes is None)
        changes += pod_changes
        for node in present:
            changes += self._refresh_app_pods(node)
        if nodes is not None:
            for gone in names - set(world.nodes):
                changes += self._refresh_app_pods(None, gone)
        changes += self._refresh_cluster(now, full=nodes is None, pods_changed=pod_changes > 0)
        return changes

    def _refresh_node_pods(self, present: list[WorldNode], full: bool) -> int:
        pods: list[dict] = []
        keys: set[str] = set()
        if full or len(self._daemon_names) != len(self.world.nodes):
            self._daemon_names = kp.daemon_pod_names(self.world)
        for node in present:
            daemon = kp.daemon_pod(self.world, node, self._daemon_names[node.name])
            node_pods = ([daemon] if daemon else []) + kp.waiting_pods(self.world, node)
            old = self._node_pods.get(node.name, set())
            new = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in node_pods}
            self._node_pods[node.name] = new
            keys |= old | new
            pods += node_pods
        if full:
            pods += kp.controlplane_pods(self.world) + kp.coredns_pods(self.world) + kp.unscheduled_pods(self.world)
            return self.store.replace("pods", pods)
        return self.store.replace("pods", pods, keys)

    def _refresh_cluster(self, now: float, full: bool, pods_changed: bool) -> int:
        world, store = self.world, self.store
        changes = self._refresh_lease(now)
        if full or pods_changed or not store.has("daemonsets"):
            daemon = [p for p in store.items("pods") if p["metadata"]["labels"].get("app") == "terway-eniip"]
            changes += store.replace("daemonsets", [ko.daemonset(world, daemon)])
        if full or pods_changed:  # waiting pods come with their kubelet events
            changes += store.replace("events", ko.events(world) + kp.waiting_pod_events(world, now))
        if not full:
            return changes
        changes += store.replace("deployments", ko.deployments(world))
        changes += store.replace("configmaps", ko.configmaps(world))
        changes += store.replace("services", ko.services(world))
        changes += store.replace("namespaces",
                                 [_namespace(world, n) for n in ("default", "kube-system", "kube-public")])
        if ko.crds_enabled(world):
            changes += store.replace("podnetworkings", ko.pod_networkings(world))
            changes += store.replace("podenis", pod_enis(world))
        else:
            for resource in ("podnetworkings", "podenis"):
                if store.count(resource):
                    changes += store.replace(resource, [])
        return changes

    def _refresh_lease(self, now: float) -> int:
        lease = ko.lease(self.world, now, kp.controlplane_leader(self.world))
        return self.store.replace("leases", [lease] if lease else [])

    def _refresh_app_pods(self, node: WorldNode | None, name: str = "") -> int:
        name = node.name if node else name
        new = tuple((ip.pod_id, ip.ip) for eni in node.enis for ip in eni.ips if ip.pod_id) if node else ()
        old = self._app_index.get(name)
        if old is None and node is not None:  # first sight: present since load, no events
            self._app_index[name] = new
            return 0
        if old == new:
            return 0
        old_map, new_map = dict(old or ()), dict(new)
        changes = 0
        for pod_id, ip in old or ():
            if pod_id not in new_map:
                self._emit_app(self.world.nodes.get(name) or node, pod_id, ip, "DELETED", name)
                changes += 1
        for pod_id, ip in new:
            if old_map.get(pod_id) != ip:
                self._emit_app(node, pod_id, ip, "ADDED" if pod_id not in old_map else "MODIFIED", name)
                changes += 1
        if node is None:
            self._app_index.pop(name, None)
        else:
            self._app_index[name] = new
        return changes

    def _emit_app(self, node: WorldNode | None, pod_id: str, ip: str, type_: str, node_name: str) -> None:
        shell = node or WorldNode(name=node_name, instance_id="", instance_type="", zone_id="", vswitch_id="")
        obj = kp.app_pod(self.world, shell, pod_id, ip, self._app_churn.get(pod_id, 0))
        rv = self.store.emit_external("pods", type_, obj)
        if type_ == "DELETED":
            self._app_rv.pop(pod_id, None)
            self._app_churn.pop(pod_id, None)
        else:
            self._app_rv[pod_id] = rv

    def before_request(self) -> None:
        self.requests += 1
        if self.auto_refresh:
            self.refresh()

    # ------------------------------------------------------------------ reading

    def app_pods(self, node_name: str | None = None, start: int = 0,
                 keep: Callable[[str, dict[str, str]], bool] | None = None) -> Iterator[dict | None]:
        """Application pods in a stable order, from position `start`; `node_name` limits to one node. A pod whose
        namespace and labels `keep` refuses is None, not built: a list by label selector (the Terway daemon's
        pods) would otherwise build every application pod of the cluster to drop each one."""
        position = 0
        nodes = [self.world.nodes[node_name]] if node_name in self.world.nodes else (
            [] if node_name else self.world.nodes.values())
        for node in nodes:
            entries = self._app_index.get(node.name, ())
            if position + len(entries) <= start:
                position += len(entries)
                continue
            for pod_id, ip in entries:
                if position >= start:
                    namespace, _, name = pod_id.partition("/")
                    if keep is not None and not keep(namespace, kp.shell_labels(name)):
                        yield None
                    else:
                        obj = kp.app_pod(self.world, node, pod_id, ip, self._app_churn.get(pod_id, 0))
                        obj["metadata"]["resourceVersion"] = str(self._app_rv.get(pod_id, self._app_base_rv))
                        yield obj
                position += 1

    def objects(self, resource: str, field_sel: Selector, start: int = 0,
                keep: Callable[[str, dict[str, str]], bool] | None = None) -> Iterator[dict | None]:
        """Every object of a resource in list order, from position `start` (continue tokens count positions);
        None for an application pod `keep` refuses by namespace and labels (see app_pods)."""
        stored = self.store.items(resource)
        count = self.store.count(resource)
        if start < count:
            for index, obj in enumerate(stored):
                if index >= start:
                    yield obj
        if resource == "pods" and field_sel.value_of("status.phase") in (None, "Running"):
            yield from self.app_pods(field_sel.value_of("spec.nodeName"), max(start - count, 0), keep)

    def find(self, resource: str, key: str) -> dict | None:
        obj = self.store.get(resource, key)
        if obj is None and resource == "pods":
            for node_name, entries in self._app_index.items():
                if any(pod_id == key for pod_id, _ in entries):
                    return next(p for p in self.app_pods(node_name)
                                if p is not None and f"{p['metadata']['namespace']}/{p['metadata']['name']}" == key)
        return obj

    def resource_available(self, resource: str) -> bool:
        return resource not in CRD_RESOURCES or ko.crds_enabled(self.world)

    # ------------------------------------------------------------------ changing

    def apply(self, change: dict[str, Any]) -> int:
        """Apply a steps-style `set:` mapping now; returns the number of object changes it caused."""
        touched = apply_change(self.world, change, time.time())
        return self.refresh(touched)

    def touch(self, nodes: set[str]) -> int:
        """Re-derive the objects of these nodes after editing them in the World directly."""
        return self.refresh(set(nodes))

    def run_next_step(self) -> int | None:
        if self.next_step >= len(self.world.steps):
            return None
        step = self.world.steps[self.next_step]
        self.next_step += 1
        log.info("scenario %s: applying step %d", self.world.name, self.next_step - 1)
        return self.apply(step["set"])

    def churn(self, count: int) -> int:
        """Modify `count` objects, pods and Node CRs in proportion to their numbers; emits MODIFIED events.

        A pod change bumps an annotation; a Node CR change is an OpenAPI sync (lastSyncOpenAPITime moves).
        """
        nodes = [n for n in self.world.nodes.values() if self._app_index.get(n.name)]
        node_share = len(self.world.nodes) / max(self.total_churnable(), 1)
        changes = 0
        for _ in range(count):
            if not nodes or self._rng.random() < node_share:
                node = self._rng.choice(list(self.world.nodes.values()))
                # A later sync, at least a second on (the CR's timestamps have one-second resolution).
                node.last_sync_openapi = max(time.time(), (node.last_sync_openapi or self.world.started_at) + 1)
                changes += self.refresh({node.name})
                continue
            node = self._rng.choice(nodes)
            pod_id, ip = self._rng.choice(self._app_index[node.name])
            self._app_churn[pod_id] = self._app_churn.get(pod_id, 0) + 1
            self._emit_app(node, pod_id, ip, "MODIFIED", node.name)
            changes += 1
        return changes

    def app_pod_count(self) -> int:
        return sum(len(v) for v in self._app_index.values())

    def total_churnable(self) -> int:
        return self.app_pod_count() + len(self.world.nodes)

    async def _tick(self) -> None:
        """Once a second: due steps, churn, the leader Lease renewal, and sandbox failures that go on."""
        while True:
            await asyncio.sleep(1.0)
            try:
                elapsed = time.monotonic() - self.started
                while (self.next_step < len(self.world.steps)
                       and float(self.world.steps[self.next_step].get("after_seconds", 0)) <= elapsed):
                    self.run_next_step()
                if self.churn_per_minute > 0:
                    self._churn_credit += self.total_churnable() * self.churn_per_minute / 60.0
                    due, self._churn_credit = int(self._churn_credit), self._churn_credit % 1
                    self.churn(due)
                self._refresh_lease(time.time())
                if kp.has_repeating_events(self.world):  # sandbox failures that go on
                    self.store.replace("events", ko.events(self.world) + kp.waiting_pod_events(self.world, time.time()))
            except Exception:  # a bad step must not stop the clock; the error is the scenario's, say so
                log.exception("scenario %s: step or churn failed", self.world.name)

    def start(self) -> None:
        if not self._tasks:
            self.started = time.monotonic()
            self._tasks.append(asyncio.get_running_loop().create_task(self._tick()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _namespace(world: World, name: str) -> dict:
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": ko.uid("ns", name), "labels": {"kubernetes.io/metadata.name": name},
                         "creationTimestamp": ko.ts(world.started_at - 30 * 86400)},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


