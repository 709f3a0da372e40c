"""The Kubernetes resources the exporter mirrors: one line per reflector.

Adding a resource is one `Resource` in RESOURCES: the reflector (the `resource` label of the
watch-restart counter), the `kube_*` source reported on `terway_exporter_source_up` that it
joins, the RBAC it needs, the raw list call with its selectors, the projection and the store key.
`STATUS_GROUPS` and the specs are derived from it; tests/test_kube_rbac.py checks docs/rbac.md
and the chart's ClusterRole against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes.aio import client

from .crash import LOG_TAIL_LINES, TERWAY_CONTAINER
from .events import project_warning
from .fields import name_of, namespaced_key, uid_key
from .nodes import project_node, project_terway_node
from .objects import (
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
from .podenis import project_pod_eni
from .pods import project_pod_summary, project_waiting_pod
from .reflector import ListCall, ResourceSpec

TERWAY_GROUP, TERWAY_VERSION = "network.alibabacloud.com", "v1beta1"

# The daemon's pods in the Terway namespace. The controlplane and CoreDNS are read from their Deployments
# (replicas available) and the controlplane's Lease: their pods were once watched too, but nothing read them.
DAEMON_POD_SELECTOR = "app=terway-eniip"

# Calls go through the client's ApiClient (`param_serialize` then `call_api`, what every generated
# `*_without_preload_content` method does) rather than the typed CoreV1Api and AppsV1Api: their modules import
# every model of their API group, 290 pydantic modules and 30 MB of resident memory for models this exporter never
# builds (it reads raw JSON). Measured with kubernetes 37.0.2's aio client; docs/performance.md.
JSON = "application/json"  # the Accept header the generated list and log calls send (their first JSON type)


async def get_raw(api: client.ApiClient, path: str, path_params: dict[str, str], query: list[tuple[str, Any]],
                  request_timeout: float | None) -> aiohttp.ClientResponse:
    """GET `path` with the client's authentication, TLS and retries; the response unread."""
    params = await api.param_serialize(method="GET", resource_path=path, path_params=path_params,
                                       query_params=query, header_params={"Accept": JSON},
                                       auth_settings=["BearerToken"])
    response = await api.call_api(*params, _preload_content=False, _request_timeout=request_timeout)
    return response.response


@dataclass(frozen=True, slots=True)
class Collection:
    """The list/watch call of one collection (a `ListCall`), its selectors applied."""

    api: client.ApiClient
    path: str  # with {placeholders} filled from path_params, quoted by the client
    path_params: dict[str, str] = field(default_factory=dict)
    field_selector: str | None = None
    label_selector: str | None = None

    async def __call__(self, *, allow_watch_bookmarks: bool | None = None, _continue: str | None = None,
                       limit: int | None = None, resource_version: str | None = None,
                       timeout_seconds: int | None = None, watch: bool | None = None,
                       _request_timeout: float | None = None) -> aiohttp.ClientResponse:
        # The query parameters of the generated list methods, in their order (ListOptions' JSON names).
        query = [(name, value) for name, value in (
            ("allowWatchBookmarks", allow_watch_bookmarks), ("continue", _continue),
            ("fieldSelector", self.field_selector), ("labelSelector", self.label_selector), ("limit", limit),
            ("resourceVersion", resource_version), ("timeoutSeconds", timeout_seconds), ("watch", watch),
        ) if value is not None]
        return await get_raw(self.api, self.path, self.path_params, query, _request_timeout)


def _terway_crd(plural: str) -> Callable[[client.ApiClient, str], ListCall]:
    return lambda api, ns: Collection(api, f"/apis/{TERWAY_GROUP}/{TERWAY_VERSION}/{plural}")


def _in_namespace(plural: str, namespace: str | None = None, group_version: str = "api/v1",
                  field_selector: str | None = None,
                  label_selector: str | None = None) -> Callable[[client.ApiClient, str], ListCall]:
    """A namespaced collection: in the Terway namespace unless `namespace` is given."""
    return lambda api, ns: Collection(api, f"/{group_version}/namespaces/{{namespace}}/{plural}",
                                      {"namespace": namespace or ns}, field_selector, label_selector)


@dataclass(frozen=True, slots=True)
class Resource:
    """One mirrored resource, declared once: its reflector, the `kube_*` source whose status it
    joins, and the RBAC it needs (docs/rbac.md and the chart's ClusterRole grant list/watch on
    exactly these; tests/test_kube_rbac.py holds them to it)."""

    name: str  # the reflector: the `resource` label of the watch-restart counter and the log prefix
    source: str  # the `kube_*` source on terway_exporter_source_up that combines its status
    api_group: str  # RBAC apiGroup ("" for the core group)
    plural: str  # RBAC resource
    list_call: Callable[[client.ApiClient, str], ListCall]  # (API client, Terway namespace) -> the list call
    project: Callable[[dict[str, Any]], Any]
    key: Callable[[dict[str, Any]], str] = namespaced_key
    optional: bool = False  # a CRD that may not be installed

    def spec(self, api: client.ApiClient, namespace: str) -> ResourceSpec[Any]:
        return ResourceSpec(self.name, self.list_call(api, namespace), self.project, key=self.key,
                            optional=self.optional)


def _by_name(name: str) -> str:
    return f"metadata.name={name}"


RESOURCES: tuple[Resource, ...] = (
    Resource("nodes", "kube_nodes", "", "nodes", lambda api, ns: Collection(api, "/api/v1/nodes"),
             project_node, key=name_of),
    Resource("terway_nodes", "kube_terway_nodes", TERWAY_GROUP, "nodes", _terway_crd("nodes"),
             project_terway_node, key=name_of, optional=True),
    Resource("daemon_pods", "kube_pods", "", "pods", _in_namespace("pods", label_selector=DAEMON_POD_SELECTOR),
             project_pod_summary),
    # Cluster-wide, but only Pending pods: the API server drops a pod from this watch
    # (DELETED) as soon as it leaves Pending, so running pods never reach the store.
    Resource("pending_pods", "kube_pending_pods", "", "pods",
             lambda api, ns: Collection(api, "/api/v1/pods", field_selector="status.phase=Pending"),
             project_waiting_pod, key=uid_key),
    Resource("events", "kube_events", "", "events",
             lambda api, ns: Collection(api, "/api/v1/events", field_selector="type=Warning"),
             project_warning, key=uid_key),
    Resource("daemonsets", "kube_workloads", "apps", "daemonsets",
             _in_namespace("daemonsets", group_version="apis/apps/v1", field_selector=_by_name(DAEMONSET)),
             project_daemonset, key=name_of),
    # Two names (terway-controlplane, coredns) cannot share one field selector: list the
    # namespace's few Deployments and keep those two.
    Resource("deployments", "kube_workloads", "apps", "deployments",
             _in_namespace("deployments", group_version="apis/apps/v1"), project_deployment, key=name_of),
    Resource("leases", "kube_leases", "coordination.k8s.io", "leases",
             _in_namespace("leases", group_version="apis/coordination.k8s.io/v1",
                           field_selector=_by_name(CONTROLPLANE)),
             project_lease, key=name_of),
    Resource("configmaps", "kube_configmaps", "", "configmaps", _in_namespace("configmaps"),
             project_configmap, key=name_of),
    Resource("services", "kube_services", "", "services",
             _in_namespace("services", namespace="default", field_selector=_by_name(KUBERNETES_SERVICE)),
             project_service, key=name_of),
    Resource("pod_networkings", "kube_pod_networkings", TERWAY_GROUP, "podnetworkings",
             _terway_crd("podnetworkings"), project_pod_networking, key=name_of, optional=True),
    # Namespaced, listed cluster-wide: the ENIs they reference are not leaked (fixed-IP pods keep theirs).
    Resource("pod_enis", "kube_pod_enis", TERWAY_GROUP, "podenis", _terway_crd("podenis"),
             project_pod_eni, optional=True),
)

# source name -> reflectors whose statuses it combines (derived from RESOURCES, in their order)
STATUS_GROUPS: dict[str, tuple[str, ...]] = {}
for _resource in RESOURCES:
    STATUS_GROUPS[_resource.source] = (*STATUS_GROUPS.get(_resource.source, ()), _resource.name)
del _resource


def resource_specs(api: client.ApiClient, namespace: str) -> dict[str, ResourceSpec[Any]]:
    return {r.name: r.spec(api, namespace) for r in RESOURCES}


async def read_previous_terway_log(api: client.ApiClient, namespace: str, name: str) -> str:
    """The last lines of the previous run of a pod's terway container (raises on HTTP errors)."""
    response = await get_raw(api, "/api/v1/namespaces/{namespace}/pods/{name}/log",
                             {"namespace": namespace, "name": name},
                             [("container", TERWAY_CONTAINER), ("previous", True), ("tailLines", LOG_TAIL_LINES)],
                             30.0)
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return body.decode("utf-8", "replace")
