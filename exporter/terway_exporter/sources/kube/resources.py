"""The Kubernetes resources the exporter mirrors: one line per reflector.

Each entry names the reflector (the `resource` label of the watch-restart counter), the
raw list call with its selectors, the projection and the store key. `STATUS_GROUPS` maps
the `kube_*` source names reported on `terway_exporter_source_up` to their reflectors.
docs/rbac.md lists the permissions these calls need; keep the two in step.
"""

from __future__ import annotations

from functools import partial

from kubernetes.aio import client

from .crash import LOG_TAIL_LINES, TERWAY_CONTAINER
from .events import project_warning
from .fields import name_of, uid_key
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
from .reflector import ResourceSpec

TERWAY_GROUP, TERWAY_VERSION = "network.alibabacloud.com", "v1beta1"

# Pods in the Terway namespace, by role: the daemon, the controlplane, CoreDNS.
DAEMON_POD_SELECTOR = "app=terway-eniip"
CONTROLPLANE_POD_SELECTOR = "k8s-app=terway-controlplane"
COREDNS_POD_SELECTOR = "k8s-app=kube-dns"

# source name -> reflectors whose statuses it combines
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "kube_nodes": ("nodes",),
    "kube_terway_nodes": ("terway_nodes",),
    "kube_pods": ("daemon_pods", "controlplane_pods", "coredns_pods"),
    "kube_pending_pods": ("pending_pods",),
    "kube_events": ("events",),
    "kube_workloads": ("daemonsets", "deployments"),
    "kube_leases": ("leases",),
    "kube_configmaps": ("configmaps",),
    "kube_services": ("services",),
    "kube_pod_networkings": ("pod_networkings",),
    "kube_pod_enis": ("pod_enis",),
}


def resource_specs(api: client.ApiClient, namespace: str) -> dict[str, ResourceSpec]:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    custom, coordination = client.CustomObjectsApi(api), client.CoordinationV1Api(api)
    terway_crd = partial(custom.list_cluster_custom_object_without_preload_content, TERWAY_GROUP, TERWAY_VERSION)
    pods_in_namespace = partial(core.list_namespaced_pod_without_preload_content, namespace)
    by_name = "metadata.name={}".format
    specs = [
        ResourceSpec("nodes", core.list_node_without_preload_content, project_node, key=name_of),
        ResourceSpec("terway_nodes", partial(terway_crd, "nodes"), project_terway_node, key=name_of, optional=True),
        ResourceSpec("daemon_pods", partial(pods_in_namespace, label_selector=DAEMON_POD_SELECTOR),
                     project_pod_summary),
        ResourceSpec("controlplane_pods", partial(pods_in_namespace, label_selector=CONTROLPLANE_POD_SELECTOR),
                     project_pod_summary),
        ResourceSpec("coredns_pods", partial(pods_in_namespace, label_selector=COREDNS_POD_SELECTOR),
                     project_pod_summary),
        # Cluster-wide, but only Pending pods: the API server drops a pod from this watch
        # (DELETED) as soon as it leaves Pending, so running pods never reach the store.
        ResourceSpec("pending_pods", partial(core.list_pod_for_all_namespaces_without_preload_content,
                                             field_selector="status.phase=Pending"),
                     project_waiting_pod, key=uid_key),
        ResourceSpec("events", partial(core.list_event_for_all_namespaces_without_preload_content,
                                       field_selector="type=Warning"),
                     project_warning, key=uid_key),
        ResourceSpec("daemonsets", partial(apps.list_namespaced_daemon_set_without_preload_content, namespace,
                                           field_selector=by_name(DAEMONSET)), project_daemonset, key=name_of),
        # Two names (terway-controlplane, coredns) cannot share one field selector: list the
        # namespace's few Deployments and keep those two.
        ResourceSpec("deployments", partial(apps.list_namespaced_deployment_without_preload_content, namespace),
                     project_deployment, key=name_of),
        ResourceSpec("leases", partial(coordination.list_namespaced_lease_without_preload_content, namespace,
                                       field_selector=by_name(CONTROLPLANE)), project_lease, key=name_of),
        ResourceSpec("configmaps", partial(core.list_namespaced_config_map_without_preload_content, namespace),
                     project_configmap, key=name_of),
        ResourceSpec("services", partial(core.list_namespaced_service_without_preload_content, "default",
                                         field_selector=by_name(KUBERNETES_SERVICE)), project_service, key=name_of),
        ResourceSpec("pod_networkings", partial(terway_crd, "podnetworkings"), project_pod_networking,
                     key=name_of, optional=True),
        # Namespaced, listed cluster-wide: the ENIs they reference are not leaked (fixed-IP pods keep theirs).
        ResourceSpec("pod_enis", partial(terway_crd, "podenis"), project_pod_eni, optional=True),
    ]
    return {spec.name: spec for spec in specs}


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
