"""Cloud targets derived from the cluster: region, VPC, vSwitches, security groups, instance types."""

from __future__ import annotations

import json

from terway_exporter.model.cloud import CloudTargets
from terway_exporter.model.kube import KubeNode, KubeSnapshot, NodeCRNic, PodNetworkingRefs, TerwayNodeCR
from terway_exporter.terway.targets import derive_targets

ENI_CONF = {"region_id": "cn-beijing", "security_group": "sg-base", "vswitches": {"z1": ["vsw-base"]}}


def kube(**kw) -> KubeSnapshot:
    defaults = dict(
        nodes={
            "a": KubeNode("a", instance_type="ecs.g7.xlarge", region_id="cn-hangzhou"),
            "b": KubeNode("b", instance_type="ecs.g7.2xlarge", region_id="cn-hangzhou"),
            "c": KubeNode("c", instance_type="ecs.c7.large", region_id="cn-shanghai"),
            "vk": KubeNode("vk", instance_type="eci", region_id="cn-hangzhou", ignored=True),
        },
        terway_nodes={
            "a": TerwayNodeCR("a", instance_type="ecs.g8.large", vswitch_ids=("vsw-cr",),
                              security_group_ids=("sg-cr",), nics=(NodeCRNic("eni-1", "InUse", vswitch_id="vsw-nic"),)),
        },
        eni_config={"eni_conf": json.dumps(ENI_CONF)},
        dynamic_configs={"gpu": {"eni_conf": '{"vswitches": {"z2": ["vsw-dyn"]}, "security_groups": ["sg-dyn"]}'}},
        pod_networking_vswitches=frozenset({"vsw-pn"}),
        pod_networkings={"pn-a": PodNetworkingRefs(vswitch_ids=("vsw-pn",), security_group_ids=("sg-pn",))},
        controlplane_config={"ctrl-config.yaml": "regionID: cn-beijing\nvpcID: vpc-cp\nclusterID: c1\n"},
    )
    defaults.update(kw)
    return KubeSnapshot(**defaults)


def test_everything_the_cluster_names():
    targets = derive_targets(kube(), CloudTargets())
    assert targets == CloudTargets(
        region_id="cn-beijing",
        vpc_id="vpc-cp",
        vswitch_ids=frozenset({"vsw-base", "vsw-dyn", "vsw-cr", "vsw-nic", "vsw-pn"}),
        security_group_ids=frozenset({"sg-base", "sg-dyn", "sg-cr", "sg-pn"}),
        instance_types=frozenset({"ecs.g7.xlarge", "ecs.g7.2xlarge", "ecs.c7.large", "ecs.g8.large"}),
    )


def test_flags_win_for_region_and_vpc_and_widen_the_sets():
    explicit = CloudTargets(region_id="cn-shenzhen", vpc_id="vpc-flag", vswitch_ids=frozenset({"vsw-flag"}),
                            security_group_ids=frozenset({"sg-flag"}), instance_types=frozenset({"ecs.x"}))
    targets = derive_targets(kube(), explicit)
    assert (targets.region_id, targets.vpc_id) == ("cn-shenzhen", "vpc-flag")
    assert {"vsw-flag", "vsw-base"} <= targets.vswitch_ids
    assert {"sg-flag", "sg-base"} <= targets.security_group_ids
    assert "ecs.x" in targets.instance_types


def test_region_falls_back_to_the_most_common_node_label():
    no_region = kube(eni_config={"eni_conf": "{}"})
    assert derive_targets(no_region, CloudTargets()).region_id == "cn-hangzhou"
    assert derive_targets(kube(eni_config=None, nodes={}), CloudTargets()).region_id is None


def test_broken_inputs_are_skipped_not_fatal():
    broken = kube(eni_config={"eni_conf": "{"}, controlplane_config={"ctrl-config.yaml": "vpcID: [\n"},
                  terway_nodes=None, dynamic_configs={})
    targets = derive_targets(broken, CloudTargets())
    assert targets.vpc_id is None
    assert targets.vswitch_ids == frozenset({"vsw-pn"})
    assert targets.region_id == "cn-hangzhou"
