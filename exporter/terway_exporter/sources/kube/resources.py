"""The Kubernetes resources the exporter mirrors: one line per reflector.

Adding a resource is one `Resource` in RESOURCES: the reflector (the `resource` label of the
watch-restart counter), the `kube_*` source reported on `terway_exporter_source_up` that it
joins, the RBAC it needs, the raw list call with its selectors, the projection and the store key.
`STATUS_GROUPS` and the specs are derived from it; tests/test_kube_rbac.py checks docs/rbac.md
and the chart's ClusterRole against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

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

@dataclass(frozen=True, slots=True)
class Apis:
    """The typed API groups a list call is bound from."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    coordination: client.CoordinationV1Api

    @classmethod
    def of(cls, api: client.ApiClient) -> Apis:
        return cls(client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api),
                   client.CoordinationV1Api(api))

    def terway_crd(self, plural: str) -> ListCall:
        return partial(self.custom.list_cluster_custom_object_without_preload_content, TERWAY_GROUP, TERWAY_VERSION,
                       plural)


@dataclass(frozen=True, slots=True)
class Resource:
    """One mirrored resource, declared once: its reflector, the `kube_*` source whose status it
    joins, and the RBAC it needs (docs/rbac.md and the chart's ClusterRole grant list/watch on
    exactly these; tests/test_kube_rbac.py holds them to it)."""

    name: str  # the reflector: the `resource` label of the watch-restart counter and the log prefix
    source: str  # the `kube_*` source on terway_exporter_source_up that combines its status
    api_group: str  # RBAC apiGroup ("" for the core group)
    plural: str  # RBAC resource
    list_call: Callable[[Apis, str], ListCall]  # (APIs, Terway namespace) -> the bound list call
    project: Callable[[dict[str, Any]], Any]
    key: Callable[[dict[str, Any]], str] = namespaced_key
    optional: bool = False  # a CRD that may not be installed

    def spec(self, apis: Apis, namespace: str) -> ResourceSpec[Any]:
        return ResourceSpec(self.name, self.list_call(apis, namespace), self.project, key=self.key,
                            optional=self.optional)


def _by_name(name: str) -> str:
    return f"metadata.name={name}"


def _pods_in_namespace(selector: str) -> Callable[[Apis, str], ListCall]:
    return lambda a, ns: partial(a.core.list_namespaced_pod_without_preload_content, ns, label_selector=selector)


RESOURCES: tuple[Resource, ...] = (
    Resource("nodes", "kube_nodes", "", "nodes", lambda a, ns: a.core.list_node_without_preload_content,
             project_node, key=name_of),
    Resource("terway_nodes", "kube_terway_nodes", TERWAY_GROUP, "nodes", lambda a, ns: a.terway_crd("nodes"),
             project_terway_node, key=name_of, optional=True),
    Resource("daemon_pods", "kube_pods", "", "pods", _pods_in_namespace(DAEMON_POD_SELECTOR), project_pod_summary),
    # Cluster-wide, but only Pending pods: the API server drops a pod from this watch
    # (DELETED) as soon as it leaves Pending, so running pods never reach the store.
    Resource("pending_pods", "kube_pending_pods", "", "pods",
             lambda a, ns: partial(a.core.list_pod_for_all_namespaces_without_preload_content,
                                   field_selector="status.phase=Pending"),
             project_waiting_pod, key=uid_key),
    Resource("events", "kube_events", "", "events",
             lambda a, ns: partial(a.core.list_event_for_all_namespaces_without_preload_content,
                                   field_selector="type=Warning"),
             project_warning, key=uid_key),
    Resource("daemonsets", "kube_workloads", "apps", "daemonsets",
             lambda a, ns: partial(a.apps.list_namespaced_daemon_set_without_preload_content, ns,
                                   field_selector=_by_name(DAEMONSET)),
             project_daemonset, key=name_of),
    # Two names (terway-controlplane, coredns) cannot share one field selector: list the
    # namespace's few Deployments and keep those two.
    Resource("deployments", "kube_workloads", "apps", "deployments",
             lambda a, ns: partial(a.apps.list_namespaced_deployment_without_preload_content, ns),
             project_deployment, key=name_of),
    Resource("leases", "kube_leases", "coordination.k8s.io", "leases",
             lambda a, ns: partial(a.coordination.list_namespaced_lease_without_preload_content, ns,
                                   field_selector=_by_name(CONTROLPLANE)),
             project_lease, key=name_of),
    Resource("configmaps", "kube_configmaps", "", "configmaps",
             lambda a, ns: partial(a.core.list_namespaced_config_map_without_preload_content, ns),
             project_configmap, key=name_of),
    Resource("services", "kube_services", "", "services",
             lambda a, ns: partial(a.core.list_namespaced_service_without_preload_content, "default",
                                   field_selector=_by_name(KUBERNETES_SERVICE)),
             project_service, key=name_of),
    Resource("pod_networkings", "kube_pod_networkings", TERWAY_GROUP, "podnetworkings",
             lambda a, ns: a.terway_crd("podnetworkings"), project_pod_networking, key=name_of, optional=True),
    # Namespaced, listed cluster-wide: the ENIs they reference are not leaked (fixed-IP pods keep theirs).
    Resource("pod_enis", "kube_pod_enis", TERWAY_GROUP, "podenis", lambda a, ns: a.terway_crd("podenis"),
             project_pod_eni, optional=True),
)

# source name -> reflectors whose statuses it combines (derived from RESOURCES, in their order)
STATUS_GROUPS: dict[str, tuple[str, ...]] = {}
for _resource in RESOURCES:
    STATUS_GROUPS[_resource.source] = (*STATUS_GROUPS.get(_resource.source, ()), _resource.name)
del _resource


def resource_specs(api: client.ApiClient, namespace: str) -> dict[str, ResourceSpec[Any]]:
    apis = Apis.of(api)
    return {r.name: r.spec(apis, namespace) for r in RESOURCES}


async def read_previous_terway_log(api: client.ApiClient, namespace: str, name: str) -> str:
    """The last lines of the previous run of a pod's terway container (raises on HTTP errors)."""
    response = await client.CoreV1Api(api).read_namespaced_pod_log_without_preload_content(
        name, namespace, container=TERWAY_CONTAINER, previous=True, tail_lines=LOG_TAIL_LINES,
        _request_timeout=30.0,
    )
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return body.decode("utf-8", "replace")
