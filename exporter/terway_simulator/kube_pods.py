"""Pods derived from the World, and what their log endpoint answers.

System pods (terway-eniip per node, terway-controlplane, CoreDNS) and pods waiting for
their network are few and built eagerly. Application pods (one per in-use IP, 150,000 in
the scale scenario) are built one at a time by `app_pod`, only when a list reaches them.
"""

from __future__ import annotations

from typing import Any

from . import kube_objects as ko
from .kube_objects import (
    TERWAY_IMAGE,
    TERWAY_TAG,
    controlplane_spec,
    coredns_spec,
    is_ignored,
    kube,
    rs_hash,
    short_hash,
    ts,
    uid,
)
from .world import World, WorldNode

DEFAULT_DAEMON_LOG = (
    'time="{t}" level=info msg="Starting terway daemon" version={tag}\n'
    'time="{t}" level=info msg="daemon config" ipamType=crd daemonMode=ENIMultiIP\n'
    'time="{t}" level=info msg="start serving" path=/var/run/eni/eni.socket\n'
    'time="{t}" level=info msg="write cni config" path=/etc/cni/net.d/10-terway.conflist\n'
)


class LogError(Exception):
    """What the log endpoint answers instead of a log: HTTP status and the real message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _meta(world: World, namespace: str, name: str, labels: dict[str, str], age: float, owner: tuple[str, str]) -> dict:
    kind, owner_name = owner
    return {
        "name": name, "namespace": namespace, "uid": uid("pod", f"{namespace}/{name}"), "labels": labels,
        "creationTimestamp": ts(world.started_at - age),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name,
                             "uid": uid("owner", kind, owner_name), "controller": True, "blockOwnerDeletion": True}],
    }


def _running(name: str, image: str, started: float, restarts: int = 0) -> dict:
    return {"name": name, "image": image, "imageID": f"{image.split(':')[0]}@sha256:{short_hash(image, 16)}",
            "ready": True, "started": True, "restartCount": restarts,
            "containerID": f"containerd://{short_hash(name + str(started), 32)}",
            "state": {"running": {"startedAt": ts(started)}}, "lastState": {}}


def _waiting(name: str, image: str, reason: str, message: str, restarts: int, last_exit: dict | None) -> dict:
    status = {"name": name, "image": image, "imageID": "", "ready": False, "started": False, "restartCount": restarts,
              "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}},
              "lastState": {"terminated": last_exit} if last_exit else {}}
    if last_exit:
        status["imageID"] = f"{image.split(':')[0]}@sha256:{short_hash(image, 16)}"
        status["containerID"] = last_exit["containerID"]
    return status


def reports_sandbox_condition(world: World) -> bool:
    """`kubernetes.pod_ready_to_start_containers: false`: the kubelets do not report PodReadyToStartContainers
    (Kubernetes before 1.29, or the PodReadyToStartContainersCondition feature gate off)."""
    return bool(kube(world).get("pod_ready_to_start_containers", True))


def _conditions(world: World, ready: bool, scheduled_at: float, not_ready: list[str], initialized: bool = True,
                sandbox: bool = True) -> list:
    """The kubelet's pod conditions. `sandbox`: PodReadyToStartContainers, True once the sandbox exists and
    its network is configured (https://kubernetes.io/docs/concepts/workloads/pods/pod-condition/)."""
    def cond(type_: str, ok: bool, reason: str = "", message: str = "") -> dict:
        out = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
               "lastTransitionTime": ts(scheduled_at if ok else max(scheduled_at, world.started_at - 300))}
        if reason:
            out.update({"reason": reason, "message": message})
        return out

    unready = f"containers with unready status: [{' '.join(not_ready)}]"
    init_msg = "containers with incomplete status: [terway-init]"
    return [
        *([cond("PodReadyToStartContainers", sandbox)] if reports_sandbox_condition(world) else []),
        cond("Initialized", initialized, "" if initialized else "ContainersNotInitialized",
             "" if initialized else init_msg),
        cond("Ready", ready, "" if ready else "ContainersNotReady", "" if ready else unready),
        cond("ContainersReady", ready, "" if ready else "ContainersNotReady", "" if ready else unready),
        cond("PodScheduled", True),
    ]


# --------------------------------------------------------------------------- terway-eniip


def daemon_pod_names(world: World) -> dict[str, str]:
    """node -> its terway-eniip pod name. Five random characters collide in a 5,000-node cluster; like
    the DaemonSet controller retrying a taken name, a collision takes the next salted hash."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for node in world.nodes:
        salt = 0
        while (name := f"terway-eniip-{short_hash(f'ds/{node}/{salt}' if salt else 'ds/' + node)}") in taken:
            salt += 1
        names[node] = name
        taken.add(name)
    return names


def daemon_state(node: WorldNode) -> dict[str, Any]:
    return dict(node.kube.get("daemon") or {})


def daemon_pod(world: World, node: WorldNode, name: str) -> dict | None:
    state = daemon_state(node)
    if is_ignored(node) or state.get("missing"):
        return None
    tag = (kube(world).get("daemonset") or {}).get("image_tag", TERWAY_TAG)
    image = f"{TERWAY_IMAGE}:{tag}"
    started = world.started_at - float(state.get("age_seconds", 7 * 86400))
    restarts = int(state.get("restarts", 0))
    reason = state.get("waiting_reason", "")
    init_reason = state.get("init_waiting_reason", "")
    containers = []
    for cname in ("terway", "policy"):
        if init_reason:
            containers.append(_waiting(cname, image, "PodInitializing", "", 0, None))
        elif cname == "terway" and reason:
            last_exit = None
            if restarts:
                finished = world.started_at - 40
                last_exit = {"exitCode": int(state.get("exit_code", 1)),
                             "reason": state.get("terminated_reason", "Error"),
                             "startedAt": ts(finished - 5), "finishedAt": ts(finished),
                             "containerID": f"containerd://{short_hash(name + str(restarts), 32)}"}
            if reason == "CrashLoopBackOff":
                message = (f"back-off 5m0s restarting failed container=terway pod={name}_kube-system("
                           f"{uid('pod', 'kube-system/' + name)})")
            else:
                message = state.get("waiting_message", "")
            containers.append(_waiting(cname, image, reason, message, restarts, last_exit))
        else:
            containers.append(_running(cname, image, started, restarts if cname == "terway" else 0))
    if init_reason:
        init = _waiting("terway-init", image, init_reason, state.get("init_waiting_message", ""),
                        int(state.get("init_restarts", 0)), None)
    else:
        init = {"name": "terway-init", "image": image, "imageID": f"{TERWAY_IMAGE}@sha256:{short_hash(image, 16)}",
                "ready": True, "restartCount": 0, "started": False,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts(started - 20),
                                         "finishedAt": ts(started - 2),
                                         "containerID": f"containerd://{short_hash(name + 'init', 32)}"}},
                "lastState": {}}
    not_ready = [c["name"] for c in containers if not c["ready"]]
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {**_meta(world, "kube-system", name,
                             {"app": "terway-eniip", "controller-revision-hash": "6c7d9f8b5d",
                              "pod-template-generation": "2"},
                             float(state.get("age_seconds", 7 * 86400)) + 30, ("DaemonSet", "terway-eniip")),
                     "annotations": {"kubernetes.io/psp": "ack.privileged"}},
        "spec": {
            "nodeName": node.name, "hostNetwork": True, "serviceAccountName": "terway", "restartPolicy": "Always",
            "priorityClassName": "system-node-critical", "priority": 2000001000, "schedulerName": "default-scheduler",
            "tolerations": [{"operator": "Exists"}], "dnsPolicy": "ClusterFirstWithHostNet",
            "initContainers": [{"name": "terway-init", "image": image, "command": ["/usr/bin/init.sh"]}],
            "containers": [
                {"name": "terway", "image": image,
                 "command": ["/usr/bin/terwayd", "-log-level", "info", "-daemon-mode", "ENIMultiIP",
                             "-config", "/etc/eni/eni_conf"]},
                {"name": "policy", "image": image, "command": ["/usr/bin/policyinit.sh"],
                 "readinessProbe": {"tcpSocket": {"host": "127.0.0.1", "port": 9099}, "periodSeconds": 10}},
            ],
        },
        "status": {
            "phase": "Pending" if init_reason else "Running",
            "conditions": _conditions(world, not not_ready, started, not_ready,
                                      initialized=not init_reason),
            "hostIP": node.primary_ip, "hostIPs": [{"ip": node.primary_ip}],
            "podIP": node.primary_ip, "podIPs": [{"ip": node.primary_ip}],
            "startTime": ts(started - 25), "qosClass": "Burstable",
            "initContainerStatuses": [init], "containerStatuses": containers,
        },
    }


def daemon_pods(world: World) -> list[dict]:
    names = daemon_pod_names(world)
    return [p for p in (daemon_pod(world, n, names[n.name]) for n in world.nodes.values()) if p is not None]


# --------------------------------------------------------------------------- Deployments' pods


def _deployment_pods(world: World, name: str, labels: dict[str, str], spec: dict[str, Any], container: str,
                     image: str) -> list[dict]:
    replicas, available = int(spec.get("replicas", 1)), int(spec.get("available", spec.get("replicas", 1)))
    nodes = [n for n in world.nodes.values() if n.ready] or list(world.nodes.values())
    out = []
    for index in range(replicas):
        pod_name = f"{name}-{rs_hash(name)}-{short_hash(f'{name}/{index}')}"
        node = nodes[index % len(nodes)] if nodes else None
        started = world.started_at - 3 * 86400
        ok = index < available
        if ok:
            statuses = [_running(container, image, started)]
        else:
            reason = spec.get("waiting_reason", "CrashLoopBackOff")
            restarts = int(spec.get("restarts", 9))
            last = {"exitCode": 1, "reason": "Error", "startedAt": ts(world.started_at - 70),
                    "finishedAt": ts(world.started_at - 60),
                    "containerID": f"containerd://{short_hash(pod_name, 32)}"} if restarts else None
            statuses = [_waiting(container, image, reason, spec.get("waiting_message", ""), restarts, last)]
        out.append({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {**_meta(world, "kube-system", pod_name, {**labels, "pod-template-hash": rs_hash(name)},
                                 3 * 86400 + 10, ("ReplicaSet", f"{name}-{rs_hash(name)}"))},
            "spec": {"nodeName": node.name if node else "", "containers": [{"name": container, "image": image}],
                     "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "hostNetwork": name == "terway-controlplane", "priorityClassName": "system-cluster-critical"},
            "status": {"phase": "Running", "conditions": _conditions(world, ok, started, [] if ok else [container]),
                       "hostIP": node.primary_ip if node else "", "startTime": ts(started), "qosClass": "Burstable",
                       "containerStatuses": statuses},
        })
    return out


def controlplane_pods(world: World) -> list[dict]:
    cp = controlplane_spec(world)
    if cp is None or cp.get("hosted"):
        return []
    return _deployment_pods(world, "terway-controlplane", {"k8s-app": "terway-controlplane",
                                                           "app.kubernetes.io/name": "terway-controlplane"},
                            cp, "terway-controlplane", f"{TERWAY_IMAGE}-controlplane:{TERWAY_TAG}")


def coredns_pods(world: World) -> list[dict]:
    dns = coredns_spec(world)
    if dns is None:
        return []
    return _deployment_pods(world, "coredns", {"k8s-app": "kube-dns"}, dns, "coredns",
                            "registry-cn-hangzhou-vpc.ack.aliyuncs.com/acs/coredns:v1.11.3.2-f57ea7ed6-aliyun")


def controlplane_leader(world: World) -> str:
    pods = controlplane_pods(world)
    return pods[0]["metadata"]["name"] if pods else "terway-controlplane"


# --------------------------------------------------------------------------- pods waiting for their network


# What a pending pod waits for (`nodes[].kube.waiting_pods[].cause`), as the kubelet shows it: every container
# waits as ContainerCreating in all three; PodReadyToStartContainers tells them apart.
WAIT_CAUSES = frozenset({"network", "image_pull", "volume"})
SANDBOX_FAILURE = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
                   '"{sandbox}": plugin type="terway" failed (add): cmdAdd: error alloc ip rpc error: code = Unknown '
                   'desc = error get allocated ip for: {namespace}/{name}')
VOLUME_FAILURE = ('Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data '
                  'kube-api-access-{suffix}]: timed out waiting for the condition')


def waiting_pod_specs(node: WorldNode) -> list[dict[str, Any]]:
    """`nodes[].kube.waiting_pods`: one mapping or a list of them."""
    spec = node.kube.get("waiting_pods") or []
    return [s for s in (spec if isinstance(spec, list) else [spec]) if s]


def _waiting_names(node: WorldNode, spec: dict[str, Any]) -> list[str]:
    prefix = spec.get("name_prefix", "web")
    salt = "" if prefix == "web" else f"{prefix}/"  # the first scenarios' names stay as they were
    return [f"{prefix}-{short_hash('wait/' + salt + node.name, 8)}-{short_hash(f'{node.name}/{salt}{index}')}"
            for index in range(int(spec.get("count", 0)))]


def waiting_pods(world: World, node: WorldNode) -> list[dict]:
    """Scheduled pods whose containers all wait as ContainerCreating, from `nodes[].kube.waiting_pods`:
    `{count, for_seconds (60), namespace (default), name_prefix (web), cause (network), host_network (false),
    sandbox_event}`. `cause: network`: no sandbox yet (PodReadyToStartContainers False); `image_pull`: the sandbox
    and its network are up (True), the image is still being pulled; `volume`: no sandbox yet because a volume is
    not mounted (False, with a FailedMount event). `host_network: true` makes them hostNetwork pods."""
    out = []
    for spec in waiting_pod_specs(node):
        cause = spec.get("cause", "network")
        if cause not in WAIT_CAUSES:
            raise ValueError(f"node {node.name}: waiting_pods cause {cause!r} is not one of {sorted(WAIT_CAUSES)}")
        since = float(spec["since_at"]) if spec.get("since_at") is not None else (
            world.started_at - float(spec.get("for_seconds", 60)))
        namespace = spec.get("namespace", "default")
        for name in _waiting_names(node, spec):
            pod = _app_shell(world, namespace, name, node, since - 1, [
                _waiting("app", "nginx:1.27", "ContainerCreating", "", 0, None)], phase="Pending", ready=False, ip="",
                sandbox=cause == "image_pull")
            if spec.get("host_network"):
                pod["spec"]["hostNetwork"] = True
                pod["spec"]["dnsPolicy"] = "ClusterFirstWithHostNet"
            out.append(pod)
    return out


def waiting_pod_events(world: World, now: float | None = None) -> list[dict]:
    """The kubelet's Warning events on waiting pods: `sandbox_event` on a `waiting_pods` spec (a message, or
    `{message, count (3), last_seen_ago (30), repeat_seconds}`) gives each pod a FailedCreatePodSandBox event
    (default message: the terway plugin failing); `cause: volume` gives each a FailedMount event.
    `repeat_seconds`: the failure goes on, as the kubelet keeps retrying the sandbox: one more occurrence (count
    and lastTimestamp) every that many seconds of `now` (the simulator's clock) after the last one."""
    out = []
    for node in world.nodes.values():
        for spec in waiting_pod_specs(node):
            sandbox = spec.get("sandbox_event")
            if isinstance(sandbox, str):
                sandbox = {"message": sandbox}
            namespace = spec.get("namespace", "default")
            for name in _waiting_names(node, spec):
                involved = {"kind": "Pod", "namespace": namespace, "name": name, "node": node.name}
                if sandbox:
                    message = sandbox.get("message") or SANDBOX_FAILURE
                    count = int(sandbox.get("count", 3))
                    last = ko.relative_at(sandbox, "last_seen", world, 30.0)
                    assert last is not None, "a default age is given, so a time is always found"
                    first = last - 3600.0
                    repeat = float(sandbox.get("repeat_seconds") or 0)
                    if repeat > 0 and now is not None and now > last:
                        more = int((now - last) // repeat)
                        count, last = count + more, last + more * repeat
                    out.append(ko.event(world, {
                        "first_seen_at": first, "last_seen_at": last, "count": count,
                        "reason": "FailedCreatePodSandBox", "source": "kubelet", "involved": involved,
                        "message": message.replace("{sandbox}", uid("sandbox", name).replace("-", "")[:12])
                                          .replace("{namespace}", namespace).replace("{name}", name)}))
                if spec.get("cause") == "volume":
                    out.append(ko.event(world, {
                        "reason": "FailedMount", "source": "kubelet", "involved": involved, "count": 4,
                        "message": VOLUME_FAILURE.replace("{suffix}", short_hash(name, 5))}))
    return out


def has_repeating_events(world: World) -> bool:
    """Whether some waiting pods' sandbox failures go on (`sandbox_event.repeat_seconds`)."""
    return any(isinstance(spec.get("sandbox_event"), dict) and spec["sandbox_event"].get("repeat_seconds")
               for node in world.nodes.values() for spec in waiting_pod_specs(node))


def unscheduled_pods(world: World) -> list[dict]:
    """`kubernetes.unscheduled_pods: N`: Pending pods the scheduler could not place (not a network problem)."""
    out = []
    for index in range(int(kube(world).get("unscheduled_pods", 0))):
        name = f"batch-{short_hash('unsched', 8)}-{short_hash(f'unsched/{index}')}"
        pod = _app_shell(world, "default", name, None, world.started_at - 900, [], phase="Pending", ready=False, ip="")
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                        "lastTransitionTime": ts(world.started_at - 900), "reason": "Unschedulable",
                                        "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes "
                                                   "are available: 3 No preemption victims found for incoming pod."}]
        out.append(pod)
    return out


# --------------------------------------------------------------------------- application pods (lazy)


def app_pod(world: World, node: WorldNode, pod_id: str, ip: str, churn: int = 0) -> dict:
    namespace, _, name = pod_id.partition("/")
    pod = _app_shell(world, namespace, name, node, world.started_at - 86400,
                     [_running("app", "nginx:1.27", world.started_at - 86400 + 5)], phase="Running", ready=True, ip=ip)
    pod["metadata"]["annotations"] = {"k8s.aliyun.com/pod-ips": ip}
    if churn:
        pod["metadata"]["annotations"]["sim.terway-exporter.io/churn"] = str(churn)
    return pod


def shell_labels(name: str) -> dict[str, str]:
    """The labels of an application pod named `name` (a Deployment's: app and pod-template-hash)."""
    app = name.rsplit("-", 2)[0] if name.count("-") >= 2 else name
    return {"app": app, "pod-template-hash": short_hash(app, 10)}


def _app_shell(world: World, namespace: str, name: str, node: WorldNode | None, created: float, statuses: list,
               phase: str, ready: bool, ip: str, sandbox: bool = True) -> dict:
    labels = shell_labels(name)
    app = labels["app"]
    status: dict[str, Any] = {"phase": phase, "qosClass": "BestEffort"}
    if node is not None:
        status.update({
            "conditions": _conditions(world, ready, created + 1, [] if ready else ["app"], sandbox=sandbox),
            "hostIP": node.primary_ip, "hostIPs": [{"ip": node.primary_ip}], "startTime": ts(created + 1),
            "containerStatuses": statuses,
        })
        if ip:
            status.update({"podIP": ip, "podIPs": [{"ip": ip}]})
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.27"}], "restartPolicy": "Always",
                            "schedulerName": "default-scheduler", "serviceAccountName": "default",
                            "dnsPolicy": "ClusterFirst"}
    if node is not None:
        spec["nodeName"] = node.name
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": _meta(world, namespace, name, labels, world.started_at - created,
                          ("ReplicaSet", f"{app}-{labels['pod-template-hash']}")),
        "spec": spec, "status": status,
    }


# --------------------------------------------------------------------------- logs


def pod_log(world: World, pod: dict, container: str | None, previous: bool) -> str:
    """The text `GET .../pods/{name}/log` returns, or LogError with the real API server message."""
    name = pod["metadata"]["name"]
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    init_names = [c["name"] for c in pod["spec"].get("initContainers", [])]
    if container is None:
        if len(names) != 1:
            raise LogError(400, f"a container name must be specified for pod {name}, choose one of: "
                                f"[{' '.join(names)}] or one of the init containers: [{' '.join(init_names)}]")
        container = names[0]
    statuses = {s["name"]: s for s in
                pod["status"].get("containerStatuses", []) + pod["status"].get("initContainerStatuses", [])}
    if container not in names + init_names:
        raise LogError(400, f"container {container} is not valid for pod {name}")
    status = statuses.get(container) or {}
    node = world.nodes.get(pod["spec"].get("nodeName", ""))
    state = daemon_state(node) if node is not None and pod["metadata"]["labels"].get("app") == "terway-eniip" else {}
    if previous:
        if not (status.get("lastState") or {}).get("terminated"):
            raise LogError(400, f'previous terminated container "{container}" in pod "{name}" not found')
        return state.get("previous_log", "") if container == "terway" else ""
    waiting = (status.get("state") or {}).get("waiting")
    if waiting and waiting.get("reason") != "CrashLoopBackOff":
        raise LogError(400, f'container "{container}" in pod "{name}" is waiting to start: {waiting.get("reason")}')
    if waiting:  # a crash-looping container's current log is that of its last run
        return state.get("previous_log", "") if container == "terway" else ""
    if container == "terway":
        return state.get("log") or DEFAULT_DAEMON_LOG.format(t=ts(world.started_at), tag=TERWAY_TAG)
    return ""


def tail(text: str, lines: int | None, limit_bytes: int | None) -> str:
    if lines is not None:
        parts = text.splitlines(keepends=True)
        text = "".join(parts[-lines:]) if lines > 0 else ""
    if limit_bytes is not None:
        text = text.encode()[:limit_bytes].decode(errors="ignore")
    return text
