"""Which cloud resources to watch, derived from the cluster (and widened by explicit flags).

Region: the flag, else `eni_conf.region_id`, else the nodes' `topology.kubernetes.io/region` label
(the most common one). VPC: the flag, else `vpcID` from the controlplane's `ctrl-config.yaml`.
Sets (vSwitches, security groups, instance types) are the union of the flags and of everything the
cluster's configuration, Node CRs and PodNetworkings name, so an explicit list never hides a configured vSwitch.
"""

from __future__ import annotations

from collections import Counter

import yaml

from ..model.cloud import CloudTargets
from ..model.kube import KubeSnapshot
from .eniconf import CTRL_CONFIG_KEY, EniConf, effective_confs


def derive_targets(kube: KubeSnapshot, explicit: CloudTargets) -> CloudTargets:
    confs = [c for c in effective_confs(kube).values() if isinstance(c, EniConf)]
    crs = list((kube.terway_nodes or {}).values())
    nodes = [n for n in kube.nodes.values() if not n.ignored]

    vswitches = set(explicit.vswitch_ids) | kube.pod_networking_vswitches
    security_groups = set(explicit.security_group_ids)
    for refs in kube.pod_networkings.values():
        security_groups.update(refs.security_group_ids)
    for conf in confs:
        vswitches |= conf.vswitch_ids
        security_groups.update(conf.security_groups)
    for cr in crs:
        vswitches.update(cr.vswitch_ids)
        vswitches.update(nic.vswitch_id for nic in cr.nics if nic.vswitch_id)
        security_groups.update(cr.security_group_ids)
    instance_types = set(explicit.instance_types)
    instance_types.update(n.instance_type for n in nodes if n.instance_type)
    instance_types.update(cr.instance_type for cr in crs if cr.instance_type)

    return CloudTargets(
        region_id=explicit.region_id or _region(kube, confs),
        vpc_id=explicit.vpc_id or _controlplane_vpc(kube),
        vswitch_ids=frozenset(vswitches),
        security_group_ids=frozenset(security_groups),
        instance_types=frozenset(instance_types),
    )


def _region(kube: KubeSnapshot, confs: list[EniConf]) -> str | None:
    for conf in confs:  # eni-config first: effective_confs puts it first
        if conf.region_id:
            return conf.region_id
    regions = Counter(n.region_id for n in kube.nodes.values() if n.region_id)
    if not regions:
        return None
    # Most common; ties broken by name so the answer does not depend on dict order.
    return min(regions, key=lambda r: (-regions[r], r))


def _controlplane_vpc(kube: KubeSnapshot) -> str | None:
    text = (kube.controlplane_config or {}).get(CTRL_CONFIG_KEY)
    if not text:
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # reported by the eni_conf_unparsable check
    vpc = doc.get("vpcID") if isinstance(doc, dict) else None
    return vpc if isinstance(vpc, str) and vpc else None
