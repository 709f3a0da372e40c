"""eni_conf, dynamic configs, the CNI config and ctrl-config.yaml, parsed as Terway reads them."""

from __future__ import annotations

import json

import pytest

from terway_exporter.model.kube import KubeNode, KubeSnapshot
from terway_exporter.terway.eniconf import (
    CniConf,
    ConfigError,
    Degradation,
    EniConf,
    conf_for_node,
    effective_conf,
    effective_confs,
    merge_patch,
    network_policy_enabled,
    parse_cni_conf,
    parse_degradation,
    parse_eni_conf,
    read_degradation,
    service_cidr_contains,
)

# The chart's eni_conf (charts/terway/templates/terwayd/configmap.yaml), rendered.
CHART_ENI_CONF = """{
  "version": "1",
  "max_pool_size": 5,
  "min_pool_size": 0,
  "credential_path": "/var/addon/token-config",
  "vswitches": {"cn-hangzhou-h": ["vsw-h1", "vsw-h2"], "cn-hangzhou-i": ["vsw-i1"]},
  "eni_tags": {"team": "net"},
  "service_cidr": "10.96.0.0/12,fd00::/120",
  "security_groups": ["sg-a", "sg-b"],
  "ip_stack": "ipv4",
  "vswitch_selection_policy": "ordered",
  "ipam_type": "crd",
  "enable_eni_trunking": true
}"""


def test_chart_config_parses_every_field_a_check_uses():
    conf = parse_eni_conf(CHART_ENI_CONF)
    assert isinstance(conf, EniConf)
    assert conf.vswitches == {"cn-hangzhou-h": ("vsw-h1", "vsw-h2"), "cn-hangzhou-i": ("vsw-i1",)}
    assert conf.vswitch_ids == {"vsw-h1", "vsw-h2", "vsw-i1"}
    assert conf.security_groups == ("sg-a", "sg-b")
    assert conf.service_cidrs == ("10.96.0.0/12", "fd00::/120")
    assert (conf.min_pool_size, conf.max_pool_size) == (0, 5)
    assert conf.ipam_type == "crd" and conf.centralized_ipam
    assert conf.vswitch_selection_policy == "ordered"
    assert conf.enable_eni_trunking and not conf.enable_ip_prefix
    assert conf.credential_path == "/var/addon/token-config"
    assert conf.eni_tags == {"team": "net"}
    assert not conf.plaintext_credentials
    assert conf.ignored_fields == ()


def test_defaults_follow_terway():
    conf = parse_eni_conf("{}")
    assert conf == EniConf()
    assert conf.ip_stack == "ipv4" and conf.vswitch_selection_policy == "random"
    assert conf.eni_cap_ratio == 1.0 and conf.ipam_type == ""


def test_security_group_and_security_groups_merge_without_duplicates():
    conf = parse_eni_conf('{"security_group": "sg-a", "security_groups": ["sg-a", "sg-c"]}')
    assert conf.security_groups == ("sg-a", "sg-c")


def test_credentials_are_kept_as_presence_only():
    conf = parse_eni_conf('{"access_key": "LTAI5tSECRETKEYID", "access_secret": "s3cr3tValue"}')
    assert conf.has_access_key and conf.has_access_secret and conf.plaintext_credentials
    assert "LTAI5t" not in repr(conf) and "s3cr3t" not in repr(conf)
    assert not parse_eni_conf('{"access_key": "", "access_secret": null}').plaintext_credentials


def test_invalid_json_names_the_position_never_the_secret():
    error = parse_eni_conf('{"access_key": "LTAI5tSECRETKEYID",\n "max_pool_size": 5,,}')
    assert isinstance(error, ConfigError)
    assert "line 2 column" in error.message
    assert "LTAI5t" not in error.message


@pytest.mark.parametrize(
    "text, field",
    [
        ('{"max_pool_size": "5"}', "max_pool_size"),  # Go: cannot unmarshal string into int
        ('{"min_pool_size": 1.5}', "min_pool_size"),
        ('{"enable_eni_trunking": "true"}', "enable_eni_trunking"),
        ('{"vswitches": ["vsw-1"]}', "vswitches"),
        ('{"vswitches": {"cn-hangzhou-h": "vsw-1"}}', "vswitches"),
        ('{"security_groups": "sg-1"}', "security_groups"),
        ('{"security_group": ["sg-1"]}', "security_group"),
        ('{"access_key": 12345}', None),  # presence only: any non-empty value counts as set
    ],
)
def test_wrong_json_types_are_errors_like_go_unmarshal(text, field):
    result = parse_eni_conf(text)
    if field is None:
        assert isinstance(result, EniConf) and result.has_access_key
    else:
        assert isinstance(result, ConfigError) and repr(field) in result.message


def test_non_object_documents_are_errors():
    assert isinstance(parse_eni_conf("[1, 2]"), ConfigError)
    assert isinstance(parse_eni_conf(""), ConfigError)


def test_common_issues_guide_fields_that_terway_never_reads_are_noted():
    conf = parse_eni_conf('{"enable_ebpf": true, "eniip_virtual_type": "IPVlan", "enable_datapath_v2": true,'
                          ' "degradation": {"enable": true}}')
    assert set(conf.ignored_fields) == {"enable_ebpf", "eniip_virtual_type", "enable_datapath_v2", "degradation"}


def test_merge_patch_follows_rfc7396_examples():
    # RFC 7396 appendix A, a few rows.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}


def _kube(dynamic: dict[str, str], base: str = CHART_ENI_CONF) -> KubeSnapshot:
    return KubeSnapshot(
        nodes={
            "plain": KubeNode("plain"),
            "gpu": KubeNode("gpu", terway_config="gpu-config"),
            "ghost": KubeNode("ghost", terway_config="does-not-exist"),
        },
        eni_config={"eni_conf": base},
        dynamic_configs={name: {"eni_conf": text} for name, text in dynamic.items()},
    )


def test_dynamic_config_is_merge_patched_over_eni_config():
    kube = _kube({"gpu-config": '{"max_pool_size": 20, "vswitches": {"cn-hangzhou-h": ["vsw-gpu"], '
                                '"cn-hangzhou-i": null}}'})
    gpu = effective_conf(kube, kube.nodes["gpu"])
    assert gpu.max_pool_size == 20 and gpu.min_pool_size == 0
    assert gpu.vswitches == {"cn-hangzhou-h": ("vsw-gpu",)}  # lists replace, null deletes
    assert gpu.security_groups == ("sg-a", "sg-b")
    assert effective_conf(kube, kube.nodes["plain"]).max_pool_size == 5
    # A node naming a ConfigMap that does not exist keeps eni-config.
    assert effective_conf(kube, kube.nodes["ghost"]).max_pool_size == 5


def test_a_broken_dynamic_config_breaks_only_its_nodes():
    kube = _kube({"gpu-config": '{"max_pool_size": "20"}'})
    confs = effective_confs(kube)
    assert isinstance(conf_for_node(confs, kube.nodes["gpu"]), ConfigError)
    assert "gpu-config/eni_conf" in confs["gpu-config"].message
    assert isinstance(conf_for_node(confs, kube.nodes["plain"]), EniConf)


def test_missing_or_broken_eni_config():
    assert effective_confs(KubeSnapshot()) == {}
    assert effective_confs(KubeSnapshot(eni_config={"10-terway.conf": "{}"})) == {}
    broken = effective_confs(_kube({"gpu-config": "{}"}, base="{nope"))
    assert list(broken) == ["eni-config"] and isinstance(broken["eni-config"], ConfigError)


def test_cni_conf_and_conflist():
    conf = {"10-terway.conf": json.dumps({"cniVersion": "0.4.0", "name": "terway", "type": "terway",
                                          "eniip_virtual_type": "IPVlan", "network_policy_provider": "ebpf"})}
    assert parse_cni_conf(conf) == CniConf(eniip_virtual_type="ipvlan", network_policy_provider="ebpf")
    assert parse_cni_conf({"10-terway.conf": '{"type": "terway"}'}) == CniConf("veth", "iptables")
    conflist = {"plugins": [{"type": "terway", "eniip_virtual_type": "datapathv2"}, {"type": "cilium-cni"}]}
    both = {**conf, "10-terway.conflist": json.dumps(conflist)}
    assert parse_cni_conf(both).eniip_virtual_type == "datapathv2"  # the conflist wins
    assert parse_cni_conf({}) is None
    assert isinstance(parse_cni_conf({"10-terway.conf": "{"}), ConfigError)
    assert isinstance(parse_cni_conf({"10-terway.conflist": '{"plugins": []}'}), ConfigError)


@pytest.mark.parametrize("value, enabled", [("", True), ("false", True), ("0", True), ("true", False),
                                            ("yes", False)])
def test_disable_network_policy(value, enabled):
    assert network_policy_enabled({"disable_network_policy": value}) is enabled


def test_degradation_level():
    assert parse_degradation("regionID: cn-hangzhou\ndegradation: l0\n") == "l0"
    assert parse_degradation("degradation: l1") == "l1"
    assert parse_degradation("regionID: cn-hangzhou\n") == "none"
    assert parse_degradation("") == "none"
    assert parse_degradation("degradation: l2") == "none"
    error = parse_degradation("a: [1,\n")
    assert isinstance(error, ConfigError) and "line" in error.message


@pytest.mark.parametrize("text, level, written", [
    # Terway compares the raw string with "l0"/"l1" (pool.go getDegradation): case and spaces matter.
    ("degradation: L0", "none", "L0"),
    ("degradation: L1\n", "none", "L1"),
    ('degradation: "l0 "', "none", "l0 "),
    ("degradation: level0", "none", "level0"),
    ("degradation: true", "none", "true"),
    ("degradation: 0", "none", "0"),
    # viper matches keys case-insensitively, so this key is read.
    ("Degradation: l1", "l1", "l1"),
    ("degradation:", "none", ""),
    ('degradation: ""', "none", ""),
])
def test_degradation_is_the_exact_string_terway_compares(text, level, written):
    setting = read_degradation(text)
    assert isinstance(setting, Degradation)
    assert (setting.level, setting.written) == (level, written)
    assert setting.ignored is (written != "" and level == "none")


def test_service_cidr_contains():
    assert service_cidr_contains(("10.96.0.0/12",), "10.96.0.1") is True
    assert service_cidr_contains(("172.16.0.0/16", "fd00::/120"), "fd00::1") is True
    assert service_cidr_contains(("172.16.0.0/16",), "10.96.0.1") is False
    assert service_cidr_contains(("garbage",), "10.96.0.1") is False
    assert service_cidr_contains(("10.96.0.0/12",), "") is None
