"""Pure projections of raw Kubernetes JSON into the snapshot types, table-driven."""

from __future__ import annotations

import pytest

from terway_exporter.model.kube import (
    SANDBOX_FAILURE_WINDOW,
    ContainerStatus,
    PodNetworkingRefs,
    PodSummary,
    WaitingPod,
    waits_for_network,
)
from terway_exporter.sources.kube.crash import CrashCauses, crash_code
from terway_exporter.sources.kube.events import (
    EventRecord,
    EventTally,
    NetworkEvent,
    PodWait,
    project_event,
    project_pod_wait,
    project_warning,
)
from terway_exporter.sources.kube.fields import ProjectionError
from terway_exporter.sources.kube.nodes import project_node, project_terway_node
from terway_exporter.sources.kube.objects import (
    project_configmap,
    project_daemonset,
    project_deployment,
    project_lease,
    project_pod_networking,
    project_service,
)
from terway_exporter.sources.kube.pods import join_pod_waits, project_pod_summary, project_waiting_pod

T0 = "2026-01-02T03:04:05Z"
T0_UNIX = 1767323045.0


def test_core_node_projection_reads_labels_conditions_and_annotation():
    node = project_node({
        "metadata": {
            "name": "n1", "creationTimestamp": T0,
            "labels": {"beta.kubernetes.io/instance-type": "ecs.g7.xlarge",
                       "failure-domain.beta.kubernetes.io/zone": "cn-hangzhou-h",
                       "topology.kubernetes.io/region": "cn-hangzhou", "terway-config": "dyn-a",
                       "k8s.aliyun.com/exclusive-mode-eni-type": "eniOnly"},
            "annotations": {"k8s.aliyun.com/max-available-ip": "45"},
        },
        "spec": {"providerID": "cn-hangzhou.i-abc"},
        "status": {"conditions": [
            {"type": "Ready", "status": "False",
             "message": "container runtime network not ready: cni plugin not initialized"},
            {"type": "SufficientIP", "status": "False", "reason": "InsufficientIP"},
        ]},
    })
    assert (node.name, node.instance_id, node.instance_type, node.zone_id, node.region_id) == (
        "n1", "i-abc", "ecs.g7.xlarge", "cn-hangzhou-h", "cn-hangzhou")
    assert node.terway_config == "dyn-a" and node.exclusive_eni and not node.ignored
    assert node.ready is False and "cni plugin not initialized" in node.ready_message
    assert node.sufficient_ip is False and node.max_available_ip == 45
    assert node.created == T0_UNIX
    assert project_node({"metadata": {"name": "n"}}).created is None


@pytest.mark.parametrize("labels, ignored", [
    ({"k8s.aliyun.com/ignore-by-terway": "true"}, True),
    ({"type": "virtual-kubelet"}, True),
    ({"k8s.aliyun.com/ignore-by-terway": "false"}, False),
])
def test_ignored_nodes(labels, ignored):
    assert project_node({"metadata": {"name": "n", "labels": labels}}).ignored is ignored


def test_node_without_conditions_or_provider_has_unknowns():
    node = project_node({"metadata": {"name": "n", "annotations": {"k8s.aliyun.com/max-available-ip": "lots"}}})
    assert node.ready is None and node.sufficient_ip is None and node.max_available_ip is None
    assert node.instance_id == ""


def test_node_cr_projection_sorts_nics_and_ips():
    cr = project_terway_node({
        "metadata": {"name": "n1"},
        "spec": {
            "nodeMetadata": {"instanceID": "i-1", "instanceType": "ecs.g7.xlarge", "zoneID": "z"},
            "nodeCap": {"adapters": 4, "totalAdapters": 6, "ipv4PerAdapter": 15},
            "eni": {"vSwitchOptions": ["vsw-1"], "securityGroupIDs": ["sg-1"], "enableIPPrefix": False,
                    "enableTrunk": True},
            "pool": {"minPoolSize": 0, "maxPoolSize": 5},
        },
        "status": {
            "lastSyncOpenAPITime": T0,
            "networkInterfaces": {
                "eni-b": {"id": "eni-b", "status": "InUse", "vSwitchID": "vsw-1", "networkInterfaceType": "Secondary",
                          "ipv4": {"10.0.0.3": {"ip": "10.0.0.3", "status": "Valid"},
                                   "10.0.0.2": {"ip": "10.0.0.2", "status": "Valid", "podID": "default/p"},
                                   "10.0.0.4": {"ip": "10.0.0.4", "status": "Deleting", "podID": "default/q"},
                                   "10.0.0.5": {"ip": "10.0.0.5", "status": "Invalid"},
                                   "10.0.0.6": {"ip": "10.0.0.6", "status": "Deleting"}},
                          "conditions": {"InsufficientIP": {"message": "vsw-1 ip is not enough"}}},
                "eni-a": {"status": "Attaching", "unschedulable": True},
            },
        },
    })
    assert (cr.adapters, cr.total_adapters, cr.ipv4_per_adapter, cr.min_pool_size, cr.max_pool_size) == (4, 6, 15, 0, 5)
    assert cr.vswitch_ids == ("vsw-1",) and cr.security_group_ids == ("sg-1",) and cr.enable_trunk
    assert [n.eni_id for n in cr.nics] == ["eni-a", "eni-b"]
    assert cr.nics[0].unschedulable and cr.nics[0].status == "Attaching"
    # Per-NIC counts, not per-address records: with a podID / Valid without one / the rest.
    b = cr.nics[1]
    assert (b.ipv4_in_use, b.ipv4_free_valid, b.ipv4_other) == (2, 1, 2)
    assert (cr.nics[0].ipv4_in_use, cr.nics[0].ipv4_free_valid, cr.nics[0].ipv4_other) == (0, 0, 0)
    assert cr.nics[1].conditions == ("InsufficientIP",)
    assert cr.last_sync_openapi == T0_UNIX


def test_node_cr_missing_spec_and_status_reads_as_unknown():
    cr = project_terway_node({"metadata": {"name": "n1"}})
    assert cr.adapters is None and cr.nics == () and cr.last_sync_openapi is None


def test_prefix_mode_node_cr_counts_the_addresses_of_occupying_prefixes():
    cr = project_terway_node({
        "metadata": {"name": "n1"},
        "spec": {"eni": {"enableIPPrefix": True, "ipv4PrefixCount": 4}, "pool": {}},
        "status": {"networkInterfaces": {"eni-1": {
            "id": "eni-1", "status": "InUse",
            "ipv4": {"10.0.0.5": {"ip": "10.0.0.5", "primary": True, "status": "Valid"}},
            "ipv4Prefix": [{"prefix": "10.0.1.0/28", "status": "Valid"},
                           {"prefix": "10.0.1.16/28", "status": "Frozen"},
                           {"prefix": "10.0.1.32/28", "status": "Deleting"},
                           {"prefix": "10.0.1.48/28", "status": "Invalid"}]}}},
    })
    assert cr.enable_ip_prefix is True
    (nic,) = cr.nics
    assert nic.ipv4_prefix_addresses == 32  # Valid + Frozen /28s
    assert (nic.ipv4_in_use, nic.ipv4_free_valid) == (0, 1)  # no pod records in prefix mode


@pytest.mark.parametrize("raw", [
    {"metadata": {"name": "n1"}, "status": {"networkInterfaces": {"eni-1": {
        "ipv4Prefix": [{"prefix": "10.0.1.0", "status": "Valid"}]}}}},
    {"metadata": {"name": "n1"}, "spec": {"nodeCap": "four"}},
    {"metadata": {"name": "n1"}, "spec": {"nodeCap": {"adapters": "many"}}},
    {"metadata": {"name": "n1"}, "status": {"networkInterfaces": ["eni-1"]}},
    {"metadata": {"name": "n1"}, "status": {"lastSyncOpenAPITime": "yesterday"}},
    {"metadata": {}},
])
def test_node_cr_of_the_wrong_shape_is_rejected(raw):
    with pytest.raises(ProjectionError):
        project_terway_node(raw)


def _pod(phase="Pending", node="n1", statuses=None, conditions=None, created=T0, host_network=False, init=None):
    status = {"phase": phase, "conditions": conditions or []}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init is not None:
        status["initContainerStatuses"] = init
    spec = {"nodeName": node, **({"hostNetwork": True} if host_network else {})}
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "creationTimestamp": created},
            "spec": spec, "status": status}


def _waiting(reason):
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def _sandbox(status):
    return {"type": "PodReadyToStartContainers", "status": status, "lastTransitionTime": T0}


CREATING = [_waiting("ContainerCreating")]


@pytest.mark.parametrize("raw, expected", [
    # No PodReadyToStartContainers condition: kept as a candidate, decided by sandbox failure events.
    (_pod(statuses=CREATING), WaitingPod("n1", T0_UNIX, "default/p", sandbox_ready=None)),
    (_pod(statuses=None), WaitingPod("n1", T0_UNIX, "default/p", sandbox_ready=None)),
    (_pod(statuses=CREATING,
          conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:05:05Z"}]),
     WaitingPod("n1", T0_UNIX + 60, "default/p", sandbox_ready=None)),
    # With init containers every container waits as PodInitializing until the sandbox exists.
    (_pod(statuses=[_waiting("PodInitializing")], init=[_waiting("PodInitializing")]),
     WaitingPod("n1", T0_UNIX, "default/p", sandbox_ready=None)),
    (_pod(statuses=[_waiting("ImagePullBackOff")]), None),
    # The condition, where the kubelet reports it, decides: False waits for the sandbox, True does not.
    (_pod(statuses=CREATING, conditions=[_sandbox("False")]), WaitingPod("n1", T0_UNIX, "default/p")),
    (_pod(statuses=[_waiting("PodInitializing")], conditions=[_sandbox("False")]),
     WaitingPod("n1", T0_UNIX, "default/p")),
    (_pod(statuses=CREATING, conditions=[_sandbox("True")]), None),  # pulling an image on a healthy network
    (_pod(statuses=CREATING, conditions=[_sandbox("Unknown")]),
     WaitingPod("n1", T0_UNIX, "default/p", sandbox_ready=None)),
    # hostNetwork pods never wait for the CNI, whatever their sandbox condition.
    (_pod(statuses=CREATING, conditions=[_sandbox("False")], host_network=True), None),
    (_pod(statuses=CREATING, host_network=True), None),
    (_pod(node="", statuses=None), None),
    (_pod(phase="Running", statuses=None), None),
])
def test_waiting_pod_projection(raw, expected):
    assert project_waiting_pod(raw) == expected


def test_waiting_pod_with_conditions_of_the_wrong_shape_is_rejected():
    with pytest.raises(ProjectionError):
        project_waiting_pod(_pod(conditions={"type": "PodReadyToStartContainers"}))
    with pytest.raises(ProjectionError):
        project_waiting_pod({**_pod(), "spec": {"nodeName": "n1", "hostNetwork": "sometimes"}})


NOW = T0_UNIX + 3600
CNI_FAILURE = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
               '"9b2e": plugin type="terway" failed (add): cmdAdd: error alloc ip rpc error: code = DeadlineExceeded')


def _pod_event(reason, message, uid="u1", name="p", last=T0, kind="Pod", type_="Warning"):
    involved = {"kind": kind, "namespace": "default", "name": name, **({"uid": uid} if uid else {})}
    event_uid = f"ev-{reason}-{uid}-{last}"
    return {"metadata": {"name": f"{name}.1", "namespace": "default", "uid": event_uid}, "type": type_,
            "reason": reason, "message": message, "involvedObject": involved, "source": {"component": "kubelet"},
            "lastTimestamp": last, "count": 4}


@pytest.mark.parametrize("raw, expected", [
    (_pod_event("FailedCreatePodSandBox", CNI_FAILURE), PodWait("u1", True, T0_UNIX)),
    (_pod_event("NetworkNotReady", "network is not ready: container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"),
     PodWait("u1", True, T0_UNIX)),
    (_pod_event("FailedCreatePodSandBox", CNI_FAILURE, uid=""), PodWait("default/p", True, T0_UNIX)),
    (_pod_event("FailedMount", 'MountVolume.SetUp failed for volume "data" : rpc error: code = DeadlineExceeded'),
     PodWait("u1", False, T0_UNIX)),
    (_pod_event("FailedAttachVolume", "AttachVolume.Attach failed for volume \"d-bp1\" : InvalidDiskId.NotFound"),
     PodWait("u1", False, T0_UNIX)),
    # A pause image that cannot be pulled fails the sandbox, not its network.
    (_pod_event("FailedCreatePodSandBox", "Failed to create pod sandbox: failed to get sandbox image "
                "\"registry/pause:3.9\": failed to pull image"), None),
    (_pod_event("FailedCreatePodSandBox", CNI_FAILURE, kind="Node"), None),
    (_pod_event("FailedCreatePodSandBox", CNI_FAILURE, type_="Normal"), None),
    (_pod_event("BackOff", "Back-off pulling image nginx:1.27"), None),
])
def test_pod_wait_projection(raw, expected):
    assert project_pod_wait(raw) == expected


def test_a_sandbox_failure_is_both_a_network_error_and_a_pod_wait():
    record = project_warning(_pod_event("FailedCreatePodSandBox", CNI_FAILURE))
    assert record == EventRecord(NetworkEvent("other", "FailedCreatePodSandBox", 4, T0_UNIX),
                                 PodWait("u1", True, T0_UNIX))
    volume = project_warning(_pod_event("FailedMount", "MountVolume.SetUp failed for volume \"data\""))
    assert volume == EventRecord(None, PodWait("u1", False, T0_UNIX))
    assert project_warning(_pod_event("BackOff", "Back-off pulling image nginx:1.27")) is None


def _records(*events):
    return {e["metadata"]["uid"]: project_warning(e) for e in events}


def test_join_pod_waits_matches_events_by_uid_or_by_name():
    creating = project_waiting_pod(_pod(statuses=CREATING))  # a cluster without the condition
    pending = {"u1": creating, "u2": replace_pod(creating, "default/q")}
    joined = join_pod_waits(pending, _records(
        _pod_event("FailedCreatePodSandBox", CNI_FAILURE, last="2026-01-02T03:50:05Z"),
        _pod_event("FailedCreatePodSandBox", CNI_FAILURE, last="2026-01-02T03:40:05Z"),  # older, same pod
        _pod_event("FailedMount", "MountVolume.SetUp failed", uid="", name="q"),
        _pod_event("FailedCreatePodSandBox", CNI_FAILURE, uid="someone-else", name="r"),
    ))
    assert joined["u1"].network_failed_at == T0_UNIX + 46 * 60 and not joined["u1"].volume_wait
    assert joined["u2"].network_failed_at is None and joined["u2"].volume_wait
    assert join_pod_waits(pending, {}) == pending and join_pod_waits({}, _records()) == {}


def replace_pod(pod: WaitingPod, ref: str) -> WaitingPod:
    from dataclasses import replace
    return replace(pod, ref=ref)


@pytest.mark.parametrize("pod, counts", [
    (WaitingPod("n1", T0_UNIX), True),  # PodReadyToStartContainers False
    (WaitingPod("n1", T0_UNIX, volume_wait=True), False),  # waits for a volume
    (WaitingPod("n1", T0_UNIX, volume_wait=True, network_failed_at=NOW - 3000), True),  # and for its network
    (WaitingPod("n1", T0_UNIX, sandbox_ready=None), False),  # no condition, no failure: pulling
    (WaitingPod("n1", T0_UNIX, sandbox_ready=None, network_failed_at=NOW - 60), True),
    (WaitingPod("n1", T0_UNIX, sandbox_ready=None, network_failed_at=NOW - SANDBOX_FAILURE_WINDOW), True),
    (WaitingPod("n1", T0_UNIX, sandbox_ready=None, network_failed_at=NOW - SANDBOX_FAILURE_WINDOW - 1), False),
])
def test_waits_for_network(pod, counts):
    assert waits_for_network(pod, NOW) is counts


def test_pod_summary_projection():
    raw = _pod(phase="Running", statuses=[
        {"name": "terway", "ready": False, "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"reason": "Error"}}},
        {"name": "policy", "ready": True, "restartCount": 0, "state": {"running": {}}},
    ], conditions=[{"type": "Ready", "status": "False"}])
    pod = project_pod_summary(raw)
    assert pod.namespace == "default" and pod.node == "n1" and pod.phase == "Running" and not pod.ready
    assert pod.containers[0] == ContainerStatus("terway", False, 7, "CrashLoopBackOff", "Error")
    assert pod.containers[1] == ContainerStatus("policy", True, 0, "", "")


def _event(message, reason="AllocIPFailed", count=None, series=None, last=T0, uid="e1", component="terway-daemon"):
    raw = {"metadata": {"name": "x", "namespace": "default", "uid": uid}, "type": "Warning", "reason": reason,
           "message": message, "source": {"component": component}, "lastTimestamp": last}
    if count is not None:
        raw["count"] = count
    if series is not None:
        raw["series"] = series
    return raw


@pytest.mark.parametrize("raw, expected", [
    (_event("InvalidVSwitchId.IpNotEnough: The specified VSwitch has not enough IpAddress", count=3),
     NetworkEvent("InvalidVSwitchId.IpNotEnough", "AllocIPFailed", 3, T0_UNIX)),
    (_event("something odd \u2603 \x00 happened", count=2), NetworkEvent("other", "AllocIPFailed", 2, T0_UNIX)),
    (_event("Back-off pulling image", reason="Failed", component="kubelet"), None),
    (_event("Throttling", series={"count": 9, "lastObservedTime": "2026-01-02T03:06:05.000001Z"}, count=1),
     NetworkEvent("Throttling", "AllocIPFailed", 9, T0_UNIX + 120.000001)),
    ({**_event("InvalidVSwitchId.IpNotEnough"), "type": "Normal"}, None),
])
def test_event_projection(raw, expected):
    assert project_event(raw) == expected


def _new_style_event(reason, message, controller, series=None, related=None):
    """The core/v1 view of an event written through events.k8s.io/v1 (Terway >= v1.17.2).

    What the API server's conversion leaves: `source` empty, no `count`, null first/last timestamps,
    the recorder's name in `reportingComponent` (kubernetes pkg/apis/events/v1/conversion.go).
    """
    raw = {"metadata": {"name": "web-0.18a2b3c4d5e6f708", "namespace": "default", "uid": "e9",
                        "creationTimestamp": T0},
           "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "p1", "apiVersion": "v1"},
           "reason": reason, "message": message, "source": {}, "firstTimestamp": None, "lastTimestamp": None,
           "eventTime": "2026-01-02T03:04:05.123456Z", "type": "Warning", "action": "CreatePod",
           "reportingComponent": f"terway-controlplane/{controller}",
           "reportingInstance": f"terway-controlplane/{controller}-terway-controlplane-6d8f7c9b5-x2k4q"}
    if series is not None:
        raw["series"] = series
    if related is not None:
        raw["related"] = related
    return raw


@pytest.mark.parametrize("raw, expected", [
    (_new_style_event("PodCreateFailed", "Pod create error: can not found available vSwitch for zone cn-hangzhou-h, "
                      "[vsw-bp1x no ip left, no available vSwitch for zone cn-hangzhou-h, vswList [vsw-bp1x]], "
                      "elapsedTime: 12ms", "pod"),
     NetworkEvent("InvalidVSwitchId.IpNotEnough", "PodCreateFailed", 1, T0_UNIX + 0.123456)),
    (_new_style_event("UpdatePodENIFailed", "ErrorCode: Forbidden.RAM Message: User not authorized", "pod-eni",
                      series={"count": 2, "lastObservedTime": "2026-01-02T03:09:05.000000Z"}),
     NetworkEvent("Forbidden.RAM", "UpdatePodENIFailed", 2, T0_UNIX + 300)),
    (_new_style_event("DetachENIFailed", "SDK.ServerError ErrorCode: Throttling.User", "pod-eni",
                      related={"kind": "Pod", "namespace": "default", "name": "web-0"}),
     NetworkEvent("Throttling", "DetachENIFailed", 1, T0_UNIX + 0.123456)),
    (_new_style_event("CreateENIFailed", "ErrorCode: InvalidAccessKeyId.NotFound", "multi-ip-node"),
     NetworkEvent("InvalidAccessKeyId.NotFound", "CreateENIFailed", 1, T0_UNIX + 0.123456)),
    (_new_style_event("SyncOpenAPIFailed", "ErrorCode: InvalidAccessKeyId.Inactive", "multi-ip-node"),
     NetworkEvent("InvalidAccessKeyId.Inactive", "SyncOpenAPIFailed", 1, T0_UNIX + 0.123456)),
    # An unknown reason from a Terway controller still counts: the component is Terway's.
    (_new_style_event("SomethingNew", "Forbidden.RAM", "eni"),
     NetworkEvent("Forbidden.RAM", "SomethingNew", 1, T0_UNIX + 0.123456)),
])
def test_events_k8s_io_shaped_event_projection(raw, expected):
    assert project_event(raw) == expected


@pytest.mark.parametrize("reason, component", [
    ("CniPodCreateError", "TerwayPodController"),  # <= v1.17.1, core/v1 source.component
    ("UpdatePodENIFailed", "TerwayPodENIController"),
    ("DetachENIFailed", "terway-controlplane/pod-eni"),  # v1.17.1: the new name, still core/v1
    ("SomethingNew", "TerwayENetworkInterfaceontroller"),
])
def test_core_v1_terway_events_of_every_release_count(reason, component):
    event = project_event(_event("ErrorCode: Throttling.User", reason=reason, component=component, count=3))
    assert event == NetworkEvent("Throttling", reason, 3, T0_UNIX)


def test_event_with_a_non_string_message_is_rejected_not_crashing():
    with pytest.raises(ProjectionError):
        project_event(_event({"nested": "object"}))


def test_tally_adds_count_increments_and_ignores_history_before_start():
    tally = EventTally(since=T0_UNIX)
    new = NetworkEvent("InvalidVSwitchId.IpNotEnough", "AllocIPFailed", 3, T0_UNIX + 1)
    tally.observe("e1", None, new)  # first seen with count 3 adds 3
    tally.observe("e1", new, NetworkEvent(new.code, new.reason, 5, T0_UNIX + 2))  # then 5: adds 2
    old = NetworkEvent("Throttling", "AllocIPFailed", 40, T0_UNIX - 3600)
    tally.observe("e2", None, old)  # older than the start: its series appears at 0
    tally.observe("e2", old, NetworkEvent("Throttling", "AllocIPFailed", 41, T0_UNIX + 5))  # a new occurrence
    tally.observe("e1", new, None)  # expired: what it counted stays
    assert tally.totals() == {("InvalidVSwitchId.IpNotEnough", "AllocIPFailed"): 5, ("Throttling", "AllocIPFailed"): 1}


def test_tally_reads_the_network_part_of_event_records():
    tally = EventTally(since=T0_UNIX)
    first = EventRecord(NetworkEvent("other", "FailedCreatePodSandBox", 2, T0_UNIX + 5), PodWait("u1", True, T0_UNIX))
    tally.observe("e1", None, first)
    tally.observe("e1", first, EventRecord(NetworkEvent("other", "FailedCreatePodSandBox", 7, T0_UNIX + 9),
                                           PodWait("u1", True, T0_UNIX + 9)))
    tally.observe("e2", None, EventRecord(None, PodWait("u1", False, T0_UNIX + 5)))  # a volume wait: no error
    assert tally.totals() == {("other", "FailedCreatePodSandBox"): 7}


@pytest.mark.parametrize("raw, expected", [
    ({"metadata": {"name": "eni-config"}, "data": {"eni_conf": "{}", "10-terway.conf": "{}"}},
     {"eni_conf": "{}", "10-terway.conf": "{}"}),
    ({"metadata": {"name": "terway-controlplane"}, "data": {"ctrl-config.yaml": "a: 1"}},
     {"ctrl-config.yaml": "a: 1"}),
    ({"metadata": {"name": "dyn-a"}, "data": {"eni_conf": '{"max_pool_size": 2}'}},
     {"eni_conf": '{"max_pool_size": 2}'}),
    ({"metadata": {"name": "coredns"}, "data": {"Corefile": ".:53 {}"}}, {}),
    ({"metadata": {"name": "eni-config"}}, {}),
])
def test_configmap_projection_keeps_only_terway_data(raw, expected):
    assert project_configmap(raw) == expected


def test_workload_lease_service_and_pod_networking_projections():
    ds = project_daemonset({"metadata": {"name": "terway-eniip"},
                            "status": {"desiredNumberScheduled": 3, "numberAvailable": 2, "numberReady": 2}})
    assert (ds.desired, ds.available, ds.ready) == (3, 2, 2)
    assert project_daemonset({"metadata": {"name": "kube-proxy"}}) is None
    deploy = project_deployment({"metadata": {"name": "coredns"}, "spec": {}, "status": {"readyReplicas": 1}})
    assert (deploy.desired, deploy.available, deploy.ready) == (1, 0, 1)
    assert project_deployment({"metadata": {"name": "metrics-server"}}) is None
    lease = project_lease({"metadata": {"name": "terway-controlplane"},
                           "spec": {"holderIdentity": "cp-0", "renewTime": "2026-01-02T03:04:05.500000Z",
                                    "leaseDurationSeconds": 15}})
    assert (lease.holder, lease.renew_time, lease.duration_seconds) == ("cp-0", T0_UNIX + 0.5, 15)
    assert project_service({"metadata": {"name": "kubernetes", "namespace": "default"},
                            "spec": {"clusterIP": "172.16.0.1"}}) == "172.16.0.1"
    assert project_pod_networking({"metadata": {"name": "pn"},
                                   "status": {"vSwitches": [{"id": "vsw-1", "zone": "z"}, {"zone": "y"}]}}) \
        == PodNetworkingRefs(vswitch_ids=("vsw-1",))
    # What is configured counts even before (or without) the controller resolving it: a typo never resolves.
    pn = project_pod_networking({
        "metadata": {"name": "pn"},
        "spec": {"vSwitchOptions": ["vsw-typo", "vsw-1"], "securityGroupIDs": ["sg-1", "sg-1"]},
        "status": {"status": "Fail", "vSwitches": [{"id": "vsw-1"}, {"id": "vsw-old"}]},
    })
    assert pn == PodNetworkingRefs(vswitch_ids=("vsw-typo", "vsw-1", "vsw-old"), security_group_ids=("sg-1",))


def test_crash_code_takes_the_error_closest_to_the_end():
    log_text = "\n".join([
        "time=1 level=info msg=starting",
        "time=2 level=error msg=Throttling retry",
        "time=3 level=fatal msg=\"error init service: InvalidAccessKeyId.NotFound: Specified access key is not found\"",
        "time=4 level=info msg=bye",
    ])
    assert crash_code(log_text) == "InvalidAccessKeyId.NotFound"
    assert crash_code("all good\n") is None


async def test_crash_causes_read_once_per_restart_count():
    reads: list[str] = []

    async def read_log(namespace: str, name: str) -> str:
        reads.append(name)
        return "fatal: Forbidden.RAM: User not authorized"

    def daemon(restarts: int, reason: str = "CrashLoopBackOff") -> PodSummary:
        return PodSummary("kube-system", "terway-eniip-x", node="n1",
                          containers=(ContainerStatus("terway", restarts=restarts, waiting_reason=reason),))

    causes = CrashCauses()
    assert await causes.refresh({"kube-system/terway-eniip-x": daemon(3)}, read_log)
    assert not await causes.refresh({"kube-system/terway-eniip-x": daemon(3)}, read_log)
    assert causes.causes({"kube-system/terway-eniip-x": daemon(3)}) == {"n1": "Forbidden.RAM"}
    assert await causes.refresh({"kube-system/terway-eniip-x": daemon(4)}, read_log)
    assert reads == ["terway-eniip-x", "terway-eniip-x"]
    running = daemon(4, reason="")
    assert causes.causes({"kube-system/terway-eniip-x": running}) == {}
