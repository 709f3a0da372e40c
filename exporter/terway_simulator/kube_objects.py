"""Kubernetes objects derived from the World: Nodes, Node CRs, workloads, ConfigMaps, events...

Pure functions from a `World` (and a clock value) to plain JSON-ready dicts in the shape a
real API server returns, without `metadata.resourceVersion` (the store adds it). Pods live
in `kube_pods.py`. The scenario keys read here are documented in docs/scenarios.md
(`## kubernetes`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from . import kube_events
from .merge_patch import merge_patch
from .world import World, WorldNode

CRD_GROUP = "network.alibabacloud.com"
CRD_API_VERSION = f"{CRD_GROUP}/v1beta1"
TERWAY_IMAGE = "registry-cn-hangzhou-vpc.ack.aliyuncs.com/acs/terway"
TERWAY_TAG = "v1.16.7"
KUBELET_VERSION = "v1.33.3-aliyun.1"
IGNORE_LABEL = "k8s.aliyun.com/ignore-by-terway"


# --------------------------------------------------------------------------- small helpers


# Memoised: the same few timestamps and names recur across thousands of objects (scale scenario).
@lru_cache(maxsize=65536)
def ts(t: float) -> str:
    """RFC 3339 with seconds, as metav1.Time serialises."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def micro_ts(t: float) -> str:
    """metav1.MicroTime (Lease renewTime, Event eventTime)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uid(*parts: str) -> str:
    """A stable name-based UID (version-5 layout), so the same scenario always yields the same objects."""
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@lru_cache(maxsize=65536)
def short_hash(text: str, length: int = 5) -> str:
    """The random-looking suffixes controllers append to generated names (no vowels, as k8s does)."""
    digest = hashlib.sha1(text.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def kube(world: World) -> dict[str, Any]:
    return world.kubernetes


def crds_enabled(world: World) -> bool:
    return bool(kube(world).get("crds", True))


def relative_at(cfg: dict[str, Any], stem: str, world: World, default_ago: float | None = None) -> float | None:
    """A time a scenario gives as `<stem>_ago` seconds (or already resolved as `<stem>_at` by a step)."""
    if cfg.get(f"{stem}_at") is not None:
        return float(cfg[f"{stem}_at"])
    ago = cfg.get(f"{stem}_ago", default_ago)
    return None if ago is None else world.started_at - float(ago)


def is_ignored(node: WorldNode) -> bool:
    return node.labels.get(IGNORE_LABEL) == "true" or node.labels.get("type") == "virtual-kubelet"


# --------------------------------------------------------------------------- eni-config


def default_eni_conf(world: World) -> dict[str, Any]:
    vswitches: dict[str, list[str]] = {}
    for vsw in world.vswitches.values():
        vswitches.setdefault(vsw.zone_id, []).append(vsw.vswitch_id)
    return {
        "version": "1", "max_pool_size": 5, "min_pool_size": 0, "ipam_type": "crd",
        "vswitch_selection_policy": "ordered", "service_cidr": "172.16.0.0/16",
        "security_groups": sorted(world.security_groups), "vswitches": vswitches,
    }


def eni_config_spec(world: World) -> dict[str, Any] | None:
    """The scenario's `eni_config` (None: the ConfigMap does not exist); absent key: defaults."""
    if "eni_config" not in kube(world):
        return {"eni_conf": default_eni_conf(world)}
    return kube(world)["eni_config"]


def parse_conf(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def node_eni_conf(world: World, node: WorldNode) -> dict[str, Any]:
    """eni_conf merged with the node's dynamic config, as terwayd computes it (empty if unparsable)."""
    spec = eni_config_spec(world) or {}
    conf = parse_conf(spec.get("eni_conf")) or {}
    dynamic = (kube(world).get("dynamic_configs") or {}).get(node.labels.get("terway-config", ""))
    if dynamic:
        # Terway applies per-node dynamic config as an RFC 7396 merge patch; steps use the same rule.
        conf = merge_patch(conf, parse_conf(dynamic.get("eni_conf")) or {})
    return conf


def _conf_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def default_cni_conf() -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0", "name": "terway", "type": "terway",
        "capabilities": {"bandwidth": True}, "network_policy_provider": "ebpf", "eniip_virtual_type": "veth",
    }


def _configmap(world: World, namespace: str, name: str, data: dict[str, str], age: float = 30 * 86400) -> dict:
    return {
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid("configmap", namespace, name),
                     "creationTimestamp": ts(world.started_at - age)},
        "data": data,
    }


def configmaps(world: World) -> list[dict]:
    out = []
    spec = eni_config_spec(world)
    if spec is not None:
        data = {"disable_network_policy": "false", "in_cluster_loadbalance": "false"}
        spec = dict(spec)
        spec.setdefault("10-terway.conf", default_cni_conf())
        for key, value in spec.items():
            if value is not None:
                data[key] = _conf_text(value)
        out.append(_configmap(world, "kube-system", "eni-config", data))
    for name, dyn in (kube(world).get("dynamic_configs") or {}).items():
        out.append(_configmap(world, "kube-system", name, {k: _conf_text(v) for k, v in (dyn or {}).items()}))
    cp = controlplane_spec(world)
    if cp is not None and not cp.get("hosted"):
        out.append(_configmap(world, "kube-system", "terway-controlplane", {
            "ctrl-config.yaml": controlplane_config_yaml(world, cp),
            "cilium-config.yaml": "cilium-endpoint-gc-interval: 0s\ncilium-pprof: \"false\"\n",
        }))
    out.append(_configmap(world, "kube-system", "coredns", {
        "Corefile": ".:53 {\n    errors\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n"
                    "    forward . /etc/resolv.conf\n}\n"}))
    return out


def controlplane_config_yaml(world: World, cp: dict[str, Any]) -> str:
    lines = [
        "leaderElection: true", "controllerNamespace: kube-system", "controllerName: terway-controlplane",
        'healthzBindAddress: "0.0.0.0:8080"', 'metricsBindAddress: "0"', "webhookPort: 4443",
        f"clusterID: {world.cluster_id}", f"vpcID: {world.vpc_id}", f"regionID: {world.region_id}",
        "centralizedIPAM: true",
        "controllers:", "  - pod-eni", "  - pod", "  - pod-networking", "  - node", "  - multi-ip-node",
        "  - multi-ip-pod",
    ]
    if cp.get("degradation"):
        lines.append(f"degradation: {cp['degradation']}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- nodes


_SIZES = {"large": (2, 8), "xlarge": (4, 16), "2xlarge": (8, 32), "3xlarge": (12, 48), "4xlarge": (16, 64),
          "8xlarge": (32, 128)}


def node_capacity_ips(world: World, node: WorldNode) -> int:
    """k8s.aliyun.com/max-available-ip as Terway's node controller computes it (`pkg/controller/node/node.go`,
    v1.17.5): (EniQuantity - 1) x IPs per ENI; prefix mode (ipv4PerAdapter - 1) x 16 x (totalAdapters - 1)."""
    limits = world.instance_types.get(node.instance_type)
    if limits is None:
        return 0
    if node.ip_prefix:
        return max(limits.ips_per_eni - 1, 0) * 16 * max(limits.eni_total_quantity - 1, 0)
    return max(limits.eni_quantity - 1, 0) * limits.ips_per_eni


def core_node(world: World, node: WorldNode) -> dict:
    cpu, mem = _SIZES.get(node.instance_type.rsplit(".", 1)[-1], (4, 16))
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/instance-type": node.instance_type,
        "failure-domain.beta.kubernetes.io/region": world.region_id,
        "failure-domain.beta.kubernetes.io/zone": node.zone_id,
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": node.instance_type,
        "topology.kubernetes.io/region": world.region_id, "topology.kubernetes.io/zone": node.zone_id,
        **node.labels,
    }
    annotations = {
        "k8s.aliyun.com/max-available-ip": str(node_capacity_ips(world, node)),
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        **node.annotations,
    }
    since = node.created_at if node.created_at is not None else world.started_at - 30 * 86400
    spec: dict[str, Any] = {"providerID": f"{world.region_id}.{node.instance_id}"}
    if not node.ready:
        spec["taints"] = [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": ts(world.started_at)},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": ts(world.started_at)},
        ]
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": node.name, "uid": uid("node", node.name), "creationTimestamp": ts(since),
                     "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "capacity": {"cpu": str(cpu), "memory": f"{mem * 1024 * 1024 - 500000}Ki", "pods": "256",
                         "ephemeral-storage": "123722704Ki"},
            "allocatable": {"cpu": f"{cpu * 1000 - 100}m", "memory": f"{mem * 1024 * 1024 - 2000000}Ki",
                            "pods": "256", "ephemeral-storage": "114022843818"},
            "conditions": node_conditions(world, node, since),
            "addresses": [{"type": "InternalIP", "address": node.primary_ip},
                          {"type": "Hostname", "address": node.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uid("machine", node.name).replace("-", ""), "systemUUID": uid("sys", node.name),
                "bootID": uid("boot", node.name), "kernelVersion": "5.10.134-18.al8.x86_64",
                "osImage": "Alibaba Cloud Linux 3.2104 U11 (OpenAnolis Edition)",
                "containerRuntimeVersion": "containerd://1.6.39", "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    }


def node_conditions(world: World, node: WorldNode, since: float) -> list[dict]:
    beat = ts(world.started_at)

    def cond(type_: str, status: str, reason: str, message: str, changed: float = since) -> dict:
        return {"type": type_, "status": status, "lastHeartbeatTime": beat, "lastTransitionTime": ts(changed),
                "reason": reason, "message": message}

    out = [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", node.ready_message) if node.ready
        else cond("Ready", "False", "KubeletNotReady", node.ready_message, world.started_at - 300),
    ]
    if node.sufficient_ip is not None:
        ok = bool(node.sufficient_ip)
        out.append(cond("SufficientIP", "True" if ok else "False", "SufficientIP" if ok else "InsufficientIP",
                        "node has sufficient IP" if ok else "node has insufficient IP"))
    return out


def node_cr(world: World, node: WorldNode) -> dict:
    """The nodes.network.alibabacloud.com object, as controlplane and daemon together write it."""
    limits = world.instance_types[node.instance_type]
    conf = node_eni_conf(world, node)
    vswitches = list((conf.get("vswitches") or {}).get(node.zone_id) or [node.vswitch_id])
    groups = list(conf.get("security_groups") or [])
    if conf.get("security_group") and conf["security_group"] not in groups:
        groups.insert(0, conf["security_group"])
    trunk = bool(conf.get("enable_eni_trunking")) and limits.trunk_supported
    member = limits.eni_total_quantity - limits.eni_quantity if limits.trunk_supported else 0
    eni_spec: dict[str, Any] = {
        "vSwitchOptions": vswitches, "securityGroupIDs": groups,
        "vSwitchSelectPolicy": "most" if conf.get("vswitch_selection_policy") == "ordered" else "random",
        "enableIPv4": True, "enableIPv6": conf.get("ip_stack") == "dual", "enableTrunk": trunk,
        "enableERDMA": bool(conf.get("enable_erdma")),
    }
    if node.ip_prefix:  # pkg/eni/node_reconcile.go (v1.17.5) copies enable_ip_prefix and ipv4_prefix_count
        eni_spec["enableIPPrefix"] = True
        eni_spec["ipv4PrefixCount"] = int(conf.get("ipv4_prefix_count")
                                          or sum(len(e.ipv4_prefixes) for e in node.enis))
    for key, field_ in (("eni_tags", "tag"), ("eni_tag_filter", "tagFilter"), ("resource_group_id", "resourceGroupID")):
        if conf.get(key):
            eni_spec[field_] = conf[key]
    pool: dict[str, Any] = {"maxPoolSize": node.max_pool_size, "minPoolSize": node.min_pool_size}
    if node.ip_prefix:  # the same code zeroes the pool in prefix mode (omitempty drops the zeros)
        pool = {}
    if conf.get("ip_pool_sync_period"):
        pool["poolSyncPeriod"] = conf["ip_pool_sync_period"]
    if conf.get("idle_ip_reclaim_after"):
        pool["reclaim"] = {"after": conf["idle_ip_reclaim_after"],
                           "interval": conf.get("idle_ip_reclaim_interval", "10m"),
                           "batchSize": int(conf.get("idle_ip_reclaim_batch_size", 5)),
                           "jitterFactor": str(conf.get("idle_ip_reclaim_jitter_factor", "0.1"))}
    last_sync = node.last_sync_openapi or world.started_at
    transitional = any(e.status != "InUse" for e in node.enis)
    return {
        "apiVersion": CRD_API_VERSION, "kind": "Node",
        "metadata": {
            "name": node.name, "uid": uid("nodecr", node.name), "generation": 1,
            "creationTimestamp": ts(world.started_at - 30 * 86400 + 60), "labels": {"name": node.name},
            "finalizers": ["network.alibabacloud.com/node-controller"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": uid("node", node.name),
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "nodeMetadata": {"regionID": world.region_id, "instanceType": node.instance_type,
                             "instanceID": node.instance_id, "zoneID": node.zone_id},
            "nodeCap": {"adapters": limits.eni_quantity, "totalAdapters": limits.eni_total_quantity,
                        "ipv4PerAdapter": limits.ips_per_eni, "ipv6PerAdapter": limits.ipv6_per_eni,
                        "memberAdapterLimit": member,
                        "maxMemberAdapterLimit": limits.eni_total_quantity - 2 if limits.trunk_supported else 0,
                        "eriQuantity": limits.eri_quantity},
            "eni": eni_spec,
            "pool": pool,
            "flavor": [{"networkInterfaceType": "Secondary", "networkInterfaceTrafficMode": "Standard",
                        "count": max(limits.eni_quantity - 1 - (1 if trunk else 0), 0)}]
                      + ([{"networkInterfaceType": "Trunk", "networkInterfaceTrafficMode": "Standard", "count": 1}]
                         if trunk else []),
            "datapath": {"type": "veth"},
        },
        "status": {
            "networkInterfaces": {eni.eni_id: _nic(world, node, eni, groups) for eni in node.enis},
            "lastSyncOpenAPITime": ts(last_sync),
            "nextSyncOpenAPITime": ts(last_sync + (30 if transitional else 12 * 3600)),
            "lastModifiedTime": ts(last_sync),
        },
    }


def _nic(world: World, node: WorldNode, eni, groups: list[str]) -> dict:
    vsw = world.vswitches.get(eni.vswitch_id)
    nic: dict[str, Any] = {
        "id": eni.eni_id, "status": eni.status, "macAddress": eni.mac, "vSwitchID": eni.vswitch_id,
        "securityGroupIDs": groups, "primaryIPAddress": eni.ips[0].ip if eni.ips else "",
        "ipv4CIDR": vsw.cidr_block if vsw else "",
        "networkInterfaceType": eni.type if eni.type in ("Secondary", "Trunk", "Member") else "Secondary",
        "networkInterfaceTrafficMode": "Standard",
        "ipv4": {},
    }
    for index, ip in enumerate(eni.ips):
        entry: dict[str, Any] = {"ip": ip.ip, "primary": index == 0, "status": ip.status}
        if ip.pod_id:
            entry["podID"] = ip.pod_id
            entry["podUID"] = uid("pod", ip.pod_id)
        nic["ipv4"][ip.ip] = entry
    if eni.ipv4_prefixes:
        nic["ipv4Prefix"] = [{"prefix": prefix, "status": "Valid"} for prefix in eni.ipv4_prefixes]
    if node.sufficient_ip is False and vsw is not None and world.available_ips(vsw) == 0:
        nic["conditions"] = {"InsufficientIP": {"observedTime": ts(world.started_at),
                                                "message": f"{eni.vswitch_id} ip is not enough"}}
    return nic


# --------------------------------------------------------------------------- workloads


def controlplane_spec(world: World) -> dict[str, Any] | None:
    """`kubernetes.controlplane`: None when not deployed at all; defaults to one healthy replica."""
    if "controlplane" not in kube(world):
        return {"replicas": 1, "available": 1}
    return kube(world)["controlplane"]


def coredns_spec(world: World) -> dict[str, Any]:
    return kube(world).get("coredns") or {"replicas": 2, "available": 2}


def deployment(world: World, name: str, replicas: int, available: int, labels: dict[str, str]) -> dict:
    status: dict[str, Any] = {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas}
    # Zero counts are omitted on the wire (omitempty), as a real server does.
    if available:
        status["readyReplicas"] = available
        status["availableReplicas"] = available
    if replicas - available > 0:
        status["unavailableReplicas"] = replicas - available
    changed = ts(world.started_at - 600)
    status["conditions"] = [
        {"type": "Available", "status": "True" if available >= min(replicas, 1) else "False",
         "reason": "MinimumReplicasAvailable" if available >= min(replicas, 1) else "MinimumReplicasUnavailable",
         "message": "Deployment has minimum availability." if available >= min(replicas, 1)
         else "Deployment does not have minimum availability.",
         "lastUpdateTime": changed, "lastTransitionTime": changed},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
         "message": f'ReplicaSet "{name}-{rs_hash(name)}" has successfully progressed.',
         "lastUpdateTime": changed, "lastTransitionTime": changed},
    ]
    return {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": "kube-system", "uid": uid("deploy", name), "generation": 3,
                     "creationTimestamp": ts(world.started_at - 30 * 86400), "labels": dict(labels),
                     "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": name}]}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}},
        "status": status,
    }


def rs_hash(name: str) -> str:
    return short_hash("rs/" + name, 10)


def deployments(world: World) -> list[dict]:
    out = []
    cp = controlplane_spec(world)
    if cp is not None and not cp.get("hosted"):
        replicas = int(cp.get("replicas", 1))
        out.append(deployment(world, "terway-controlplane", replicas, int(cp.get("available", replicas)),
                              {"k8s-app": "terway-controlplane"}))
    dns = coredns_spec(world)
    if dns is not None:
        replicas = int(dns.get("replicas", 2))
        out.append(deployment(world, "coredns", replicas, int(dns.get("available", replicas)), {"k8s-app": "kube-dns"}))
    return out


def daemonset(world: World, daemon_pods: list[dict]) -> dict:
    """DaemonSet terway-eniip; its status counts are those of the daemon pods the world has."""
    desired = sum(1 for n in world.nodes.values() if not is_ignored(n))
    ready = sum(1 for p in daemon_pods if _pod_ready(p))
    status: dict[str, Any] = {
        "currentNumberScheduled": len(daemon_pods), "desiredNumberScheduled": desired,
        "numberMisscheduled": 0, "observedGeneration": 2, "updatedNumberScheduled": len(daemon_pods),
    }
    if ready:
        status["numberReady"] = ready
        status["numberAvailable"] = ready
    if desired - ready > 0:
        status["numberUnavailable"] = desired - ready
    labels = {"app": "terway-eniip"}
    tag = (kube(world).get("daemonset") or {}).get("image_tag", TERWAY_TAG)
    return {
        "kind": "DaemonSet", "apiVersion": "apps/v1",
        "metadata": {"name": "terway-eniip", "namespace": "kube-system", "uid": uid("ds", "terway-eniip"),
                     "generation": 2, "creationTimestamp": ts(world.started_at - 30 * 86400), "labels": labels,
                     "annotations": {"deprecated.daemonset.template.generation": "2"}},
        "spec": {"selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "hostNetwork": True, "serviceAccountName": "terway", "priorityClassName": "system-node-critical",
                     "initContainers": [{"name": "terway-init", "image": f"{TERWAY_IMAGE}:{tag}"}],
                     "containers": [{"name": "terway", "image": f"{TERWAY_IMAGE}:{tag}"},
                                    {"name": "policy", "image": f"{TERWAY_IMAGE}:{tag}"}]}},
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0}}},
        "status": status,
    }


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions", []))


def lease(world: World, now: float, holder_pod: str) -> dict | None:
    """Lease kube-system/terway-controlplane: renewed every 2 s by a live leader, frozen when it died."""
    cp = controlplane_spec(world)
    if cp is None or cp.get("hosted"):
        return None
    renewed = relative_at(cp, "lease_renew", world)
    if renewed is None:
        renewed = now - (now % 2)  # a live leader renews every retryPeriod (2 s)
    acquired = world.started_at - 7 * 86400
    return {
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "terway-controlplane", "namespace": "kube-system",
                     "uid": uid("lease", "terway-controlplane"),
                     "creationTimestamp": ts(world.started_at - 30 * 86400)},
        "spec": {"holderIdentity": f"{holder_pod}_{uid('leader', holder_pod)}", "leaseDurationSeconds": 15,
                 "acquireTime": micro_ts(acquired), "renewTime": micro_ts(renewed),
                 "leaseTransitions": int(cp.get("lease_transitions", 2))},
    }


def services(world: World) -> list[dict]:
    cluster_ip = str(kube(world).get("service_cluster_ip", "172.16.0.1"))
    dns_ip = str(kube(world).get("dns_cluster_ip") or ipaddress.ip_address(cluster_ip) + 9)

    def svc(ns: str, name: str, ip: str, ports: list[dict], labels: dict[str, str]) -> dict:
        return {"kind": "Service", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "uid": uid("svc", ns, name), "labels": labels,
                             "creationTimestamp": ts(world.started_at - 30 * 86400)},
                "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
                         "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None"},
                "status": {"loadBalancer": {}}}

    out = [
        svc("default", "kubernetes", cluster_ip,
            [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            {"component": "apiserver", "provider": "kubernetes"}),
        svc("kube-system", "kube-dns", dns_ip, [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}],
            {"k8s-app": "kube-dns"}),
    ]
    if controlplane_spec(world) is not None:
        net = ipaddress.ip_network(f"{cluster_ip}/20", strict=False)
        out.append(svc("kube-system", "terway-controlplane", str(net.network_address + 200),
                       [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 4443}],
                       {"app": "terway-controlplane"}))
    return out


# --------------------------------------------------------------------------- events, PodNetworking


# Who reports which reason when the scenario does not say: the kubelet, Kubernetes' controllers, and Terway as
# v1.16.6 records core/v1 events (the Node pool controller as `multi-ip-node`, ControllerName in
# pkg/controller/multi-ip/node/pool.go; since v1.17.1 `terway-controlplane/multi-ip-node`, see terway/errors.py).
_DEFAULT_SOURCES = {"FailedCreatePodSandBox": "kubelet", "NetworkNotReady": "kubelet",
                    "NodeNotReady": "node-controller", "CreateENIFailed": "multi-ip-node",
                    "SyncOpenAPIFailed": "multi-ip-node",
                    "AttachENIFailed": "multi-ip-node", "DeleteENIFailed": "multi-ip-node",
                    "FailedScheduling": "default-scheduler", "BackOff": "kubelet", "Unhealthy": "kubelet"}


def event_name(item: dict[str, Any]) -> str:
    inv = item.get("involved") or {}
    digest = hashlib.sha1(json.dumps([inv.get("kind"), inv.get("namespace"), inv.get("name"), item.get("reason"),
                                      item.get("message")]).encode()).hexdigest()
    return item.get("name") or f"{inv.get('name', 'unknown')}.{digest[:16]}"


def event(world: World, item: dict[str, Any]) -> dict:
    inv = dict(item.get("involved") or {})
    kind = inv.get("kind", "Node")
    cluster_scoped = kind == "Node"
    namespace = inv.get("namespace") or ("default" if cluster_scoped else "default")
    api_version = inv.get("apiVersion") or ("v1" if kind in ("Node", "Pod") else "apps/v1")
    involved: dict[str, Any] = {"kind": kind, "name": inv.get("name", ""), "apiVersion": api_version,
                                "uid": uid("nodecr" if api_version == CRD_API_VERSION else kind.lower(),
                                           *([] if cluster_scoped else [namespace]), inv.get("name", ""))}
    if not cluster_scoped:
        involved["namespace"] = namespace
    if inv.get("fieldPath"):
        involved["fieldPath"] = inv["fieldPath"]
    last = relative_at(item, "last_seen", world, 30.0)
    first = relative_at(item, "first_seen", world, float(item.get("last_seen_ago", 30)) + 3600)
    count = int(item.get("count", 1))
    component = item.get("source") or _DEFAULT_SOURCES.get(item.get("reason", ""), "terway-daemon")
    source: dict[str, Any] = {"component": component}
    if component == "kubelet" and kind == "Pod" and inv.get("node"):
        source["host"] = inv["node"]
    obj: dict[str, Any] = {
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": event_name(item), "namespace": namespace, "uid": uid("event", event_name(item)),
                     "creationTimestamp": ts(first)},
        "involvedObject": involved, "reason": item.get("reason", ""), "message": item.get("message", ""),
        "source": source, "type": item.get("type", "Warning"),
        "reportingComponent": item.get("reporting_component", component if component != "kubelet" else ""),
        "reportingInstance": "",
    }
    if item.get("style") in kube_events.STYLES:
        # Written through events.k8s.io/v1 (kube-scheduler, Terway's controllers since v1.17.2): see kube_events.
        reporting = item.get("reporting_component") or component
        host = (f"terway-controlplane-{rs_hash('terway-controlplane')}-{short_hash('terway-controlplane/0')}"
                if reporting.startswith("terway-controlplane") else short_hash(reporting))
        kube_events.as_core_v1(obj, item, reporting, host, micro_ts(first), micro_ts(last), count)
    else:
        obj.update({"firstTimestamp": ts(first), "lastTimestamp": ts(last), "count": count, "eventTime": None})
    return obj


def events(world: World) -> list[dict]:
    return [event(world, item) for item in kube(world).get("events") or []]


def pod_networkings(world: World) -> list[dict]:
    """PodNetworkings as Terway's controller leaves them: `status.vSwitches` resolved, or, when one of
    `spec.vSwitchOptions` does not resolve, status Fail and no resolved list (for a new object;
    `pkg/controller/pod-networking/networking.go`, v1.17.5). A scenario's `status` overrides that."""
    out = []
    for item in kube(world).get("pod_networkings") or []:
        vsws = [v if isinstance(v, dict) else {"id": v, "zone": getattr(world.vswitches.get(v), "zone_id", "")}
                for v in item.get("vswitches") or []]
        unresolved = [v["id"] for v in vsws if v["id"] not in world.vswitches]
        if unresolved and "status" not in item:  # the message of pkg/vswitch/vswitch.go GetByID + ErrNotFound
            item = {**item, "status": "Fail", "resolved": [],
                    "message": item.get("message") or f"error get vSwitch {unresolved[0]}, not found"}
        resolved = item.get("resolved", vsws)
        out.append({
            "apiVersion": CRD_API_VERSION, "kind": "PodNetworking",
            "metadata": {"name": item["name"], "uid": uid("podnetworking", item["name"]), "generation": 1,
                         "creationTimestamp": ts(world.started_at - 86400)},
            "spec": {"allocationType": {"type": "Elastic"}, "eniOptions": {"eniType": item.get("eni_type", "Default")},
                     "selector": {"podSelector": {"matchLabels": item.get("pod_labels") or {"network": item["name"]}}},
                     "securityGroupIDs": list(item.get("security_groups") or sorted(world.security_groups)),
                     "vSwitchOptions": [v["id"] for v in vsws]},
            "status": {"status": item.get("status", "Ready"), **({"vSwitches": resolved} if resolved else {}),
                       "updateAt": ts(world.started_at),
                       **({"message": item["message"]} if item.get("message") else {})},
        })
    return out
