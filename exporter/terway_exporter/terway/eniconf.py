"""Terway's configuration files, parsed the way Terway itself reads them.

* `eni_conf` (ConfigMap `eni-config`, read by `terwayd -config /etc/eni/eni_conf`): JSON decoded
  into Go's `types/daemon/config.go Config`. A field of the wrong JSON type makes Go's
  `json.Unmarshal` fail and `terwayd` exits, so we report it as a `ConfigError` too.
* Per-node dynamic config: a node labelled `terway-config=<name>` gets the ConfigMap `<name>`'s
  `eni_conf` RFC 7396 JSON-merge-patched over `eni-config` (`types/daemon/dynamicconfig.go`).
* `10-terway.conf` (or `10-terway.conflist`, which wins when present): the CNI plugin config,
  where `eniip_virtual_type` and `network_policy_provider` really live.
* `ctrl-config.yaml` (ConfigMap `terway-controlplane`): the controlplane's `degradation` level, which
  the controlplane reads through viper (`types/controlplane/config.go` InitViper) and compares as a raw
  string (`pkg/controller/multi-ip/node/pool.go` getDegradation, Terway v1.17.5).

Secrets: `access_key`/`access_secret` are read only to record that they are set; their values are
never stored, logged or put in an error message.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..memo import reuse_while_same
from ..model.kube import KubeNode, KubeSnapshot

ENI_CONF_KEY = "eni_conf"
CNI_CONF_KEY = "10-terway.conf"
CNI_CONFLIST_KEY = "10-terway.conflist"
CTRL_CONFIG_KEY = "ctrl-config.yaml"
ENI_CONFIG_NAME = "eni-config"

# Names the Terway common issues guide (and old releases) put in eni_conf that Terway does not read
# (`types/daemon/config.go` Config has no such field): setting them changes nothing. Name -> what to do instead.
IGNORED_FIELDS: Mapping[str, str] = {
    "enable_ebpf": "not a Terway setting; eBPF comes from network_policy_provider/datapath in 10-terway.conf",
    "enable_datapath_v2": "not a Terway setting; set eniip_virtual_type=datapathv2 in 10-terway.conf",
    "eniip_virtual_type": "belongs in the CNI config 10-terway.conf, not in eni_conf",
    "degradation": "belongs in ctrl-config.yaml of ConfigMap terway-controlplane (l0|l1)",
    "enable_eip_pool": "removed in Terway v1.7 (EIP support dropped)",
    "allow_eip_rob": "removed in Terway v1.7 (EIP support dropped)",
    "eni_cap_policy": "removed after release-1.9",
}

DEGRADATION_LEVELS = ("none", "l0", "l1")


@dataclass(frozen=True, slots=True)
class ConfigError:
    """A configuration Terway would refuse; `message` names the place, never a value."""

    message: str


@dataclass(frozen=True, slots=True)
class EniConf:
    """The fields of `eni_conf` that a check, a metric or target discovery uses."""

    version: str = ""
    region_id: str = ""
    vswitches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # zone -> vSwitch IDs
    security_groups: tuple[str, ...] = ()  # security_group merged with security_groups
    service_cidr: str = ""  # as written: comma-separated CIDRs
    min_pool_size: int = 0
    max_pool_size: int = 0
    min_eni: int = 0
    max_eni: int = 0
    eni_cap_ratio: float = 1.0
    eni_cap_shift: int = 0
    ipam_type: str = ""  # "crd" = centralised IPAM, "" = legacy node-local IPAM
    ip_stack: str = "ipv4"
    vswitch_selection_policy: str = "random"  # as written; Terway maps "ordered" to "most"
    has_access_key: bool = False  # presence only: the value is never kept
    has_access_secret: bool = False
    credential_path: str = ""
    enable_eni_trunking: bool = False
    enable_ip_prefix: bool = False
    enable_erdma: bool = False
    eni_tags: Mapping[str, str] = field(default_factory=dict)
    eni_tag_filter: Mapping[str, str] = field(default_factory=dict)
    ignored_fields: tuple[str, ...] = ()  # keys from IGNORED_FIELDS present in the JSON

    @property
    def service_cidrs(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.service_cidr.split(",") if c.strip())

    @property
    def vswitch_ids(self) -> frozenset[str]:
        return frozenset(v for ids in self.vswitches.values() for v in ids)

    @property
    def plaintext_credentials(self) -> bool:
        return self.has_access_key or self.has_access_secret

    @property
    def centralized_ipam(self) -> bool:
        return self.ipam_type == "crd"


@dataclass(frozen=True, slots=True)
class CniConf:
    """The `terway` plugin entry of the CNI config."""

    eniip_virtual_type: str = "veth"
    network_policy_provider: str = "iptables"  # terway-cli runs Calico/Felix unless it is "ebpf"


# --------------------------------------------------------------------------- JSON typing
# Each reader mirrors the Go type of the field: it returns the value or raises _FieldError.


class _FieldError(ValueError):
    pass


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise _FieldError("a string")


def _int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _FieldError("an integer")


def _float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise _FieldError("a number")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise _FieldError("true or false")


def _str_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, list) and all(isinstance(s, str) for s in v):
        return tuple(v)
    raise _FieldError("a list of strings")


def _str_map(v: Any) -> dict[str, str]:
    if isinstance(v, dict) and all(isinstance(s, str) for s in v.values()):
        return dict(v)
    raise _FieldError("an object of strings")


def _vswitch_map(v: Any) -> dict[str, tuple[str, ...]]:
    if isinstance(v, dict):
        return {zone: _str_list(ids) for zone, ids in v.items()}
    raise _FieldError("an object of zone -> list of vSwitch IDs")


def _present(v: Any) -> bool:
    # Only "set or not" survives parsing; a non-string still means "someone put a secret here".
    if v is None or v == "":
        return False
    return True


# JSON key -> (EniConf attribute, reader). JSON null leaves the Go zero value, as encoding/json does.
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "version": ("version", _str),
    "region_id": ("region_id", _str),
    "vswitches": ("vswitches", _vswitch_map),
    "service_cidr": ("service_cidr", _str),
    "min_pool_size": ("min_pool_size", _int),
    "max_pool_size": ("max_pool_size", _int),
    "min_eni": ("min_eni", _int),
    "max_eni": ("max_eni", _int),
    "eni_cap_ratio": ("eni_cap_ratio", _float),
    "eni_cap_shift": ("eni_cap_shift", _int),
    "ipam_type": ("ipam_type", _str),
    "ip_stack": ("ip_stack", _str),
    "vswitch_selection_policy": ("vswitch_selection_policy", _str),
    "security_group": ("security_group", _str),  # merged into security_groups below
    "security_groups": ("security_groups", _str_list),
    "access_key": ("has_access_key", _present),
    "access_secret": ("has_access_secret", _present),
    "credential_path": ("credential_path", _str),
    "enable_eni_trunking": ("enable_eni_trunking", _bool),
    "enable_ip_prefix": ("enable_ip_prefix", _bool),
    "enable_erdma": ("enable_erdma", _bool),
    "eni_tags": ("eni_tags", _str_map),
    "eni_tag_filter": ("eni_tag_filter", _str_map),
}


def load_json_object(text: str, what: str) -> dict[str, Any] | ConfigError:
    """Decode a JSON object; the error names the position, never the document's content."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return ConfigError(f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    except (TypeError, ValueError):
        return ConfigError(f"{what} is not valid JSON")
    if not isinstance(doc, dict):
        return ConfigError(f"{what} must be a JSON object, not {type(doc).__name__}")
    return doc


def eni_conf_from_object(doc: Mapping[str, Any], what: str = ENI_CONF_KEY) -> EniConf | ConfigError:
    """Build an EniConf from decoded JSON, rejecting what Go's json.Unmarshal would reject."""
    values: dict[str, Any] = {}
    for key, (attr, read) in _FIELDS.items():
        raw = doc.get(key)
        if raw is None and read is not _present:
            continue
        try:
            values[attr] = read(raw)
        except _FieldError as e:
            return ConfigError(f"{what}: field {key!r} must be {e}")
    if values.get("ip_stack") == "":
        values["ip_stack"] = "ipv4"
    if values.get("vswitch_selection_policy") == "":
        values["vswitch_selection_policy"] = "random"
    # Terway merges the single `security_group` into `security_groups`; order kept, duplicates dropped.
    single = values.pop("security_group", "")
    groups = ((single,) if single else ()) + values.get("security_groups", ())
    values["security_groups"] = tuple(dict.fromkeys(groups))
    values["ignored_fields"] = tuple(k for k in IGNORED_FIELDS if k in doc)
    return EniConf(**values)


MAX_SECURITY_GROUPS = 10


def validate(conf: EniConf) -> list[str]:
    """What `Config.Validate()` rejects when terwayd starts (it then exits): an `ip_stack` other than
    "", ipv4 or dual (ipv6 passes the struct tag but not Validate), more than 10 security groups."""
    reasons = []
    if conf.ip_stack not in ("ipv4", "dual"):
        reasons.append(f"ip_stack {conf.ip_stack!r} is not accepted by terwayd (ipv4 or dual)")
    if len(conf.security_groups) > MAX_SECURITY_GROUPS:
        reasons.append(f"{len(conf.security_groups)} security groups, terwayd accepts at most {MAX_SECURITY_GROUPS}")
    return reasons


def plaintext_credential_keys(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """Which of access_key/access_secret a decoded eni_conf sets (names only, never values)."""
    return tuple(k for k in ("access_key", "access_secret") if _present(doc.get(k)))


def parse_eni_conf(text: str, what: str = ENI_CONF_KEY) -> EniConf | ConfigError:
    doc = load_json_object(text, what)
    if isinstance(doc, ConfigError):
        return doc
    return eni_conf_from_object(doc, what)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def effective_confs(kube: KubeSnapshot) -> dict[str, EniConf | ConfigError]:
    """Every configuration in force, keyed by the ConfigMap it comes from.

    `eni-config` maps to the base `eni_conf`; each dynamic config name maps to its `eni_conf`
    merge-patched over the base (Terway merges the decoded JSON, so a type error may come from
    either side and is reported under the dynamic config's name). Absent when `eni-config` or its
    `eni_conf` key does not exist. Computed once per snapshot: thousands of nodes share a few configs.
    """
    if kube.eni_config is None or ENI_CONF_KEY not in kube.eni_config:
        return {}
    base_doc = load_json_object(kube.eni_config[ENI_CONF_KEY], f"{ENI_CONFIG_NAME}/{ENI_CONF_KEY}")
    if isinstance(base_doc, ConfigError):
        return {ENI_CONFIG_NAME: base_doc}
    confs: dict[str, EniConf | ConfigError] = {
        ENI_CONFIG_NAME: eni_conf_from_object(base_doc, f"{ENI_CONFIG_NAME}/{ENI_CONF_KEY}")
    }
    for name, data in kube.dynamic_configs.items():
        what = f"{name}/{ENI_CONF_KEY}"
        patch = load_json_object(data.get(ENI_CONF_KEY, "{}"), what)
        if isinstance(patch, ConfigError):
            confs[name] = patch
        else:
            confs[name] = eni_conf_from_object(merge_patch(base_doc, patch), what)
    return confs


def conf_for_node(
    confs: Mapping[str, EniConf | ConfigError], node: KubeNode
) -> EniConf | ConfigError | None:
    """The configuration in force on `node`: its dynamic config if that exists, else eni-config."""
    if node.terway_config and node.terway_config in confs:
        return confs[node.terway_config]
    return confs.get(ENI_CONFIG_NAME)


def effective_conf(kube: KubeSnapshot, node: KubeNode) -> EniConf | ConfigError | None:
    """One node's configuration (for many nodes, call `effective_confs` once and `conf_for_node`)."""
    return conf_for_node(effective_confs(kube), node)


def parse_cni_conf(data: Mapping[str, str]) -> CniConf | ConfigError | None:
    """The `terway` plugin of `10-terway.conflist` if present, else of `10-terway.conf`.

    None when the ConfigMap has neither key (terway-cli then fails in terway-init).
    """
    entry: dict[str, Any] | ConfigError | None
    if CNI_CONFLIST_KEY in data:
        doc = load_json_object(data[CNI_CONFLIST_KEY], CNI_CONFLIST_KEY)
        if isinstance(doc, ConfigError):
            return doc
        plugins = doc.get("plugins")
        entry = next(
            (p for p in plugins if isinstance(p, dict) and p.get("type") == "terway"), None
        ) if isinstance(plugins, list) else None
        if entry is None:
            return ConfigError(f"{CNI_CONFLIST_KEY} has no plugin of type 'terway'")
    elif CNI_CONF_KEY in data:
        entry = load_json_object(data[CNI_CONF_KEY], CNI_CONF_KEY)
        if isinstance(entry, ConfigError):
            return entry
    else:
        return None
    virtual = entry.get("eniip_virtual_type") or "veth"
    provider = entry.get("network_policy_provider") or "iptables"
    if not isinstance(virtual, str) or not isinstance(provider, str):
        return ConfigError("CNI config: eniip_virtual_type and network_policy_provider must be strings")
    return CniConf(eniip_virtual_type=virtual.lower(), network_policy_provider=provider.lower())


def network_policy_enabled(data: Mapping[str, str]) -> bool:
    """`disable_network_policy`: "false", "0" or empty keep policy enabled; anything else disables it."""
    return data.get("disable_network_policy", "").strip().lower() in ("", "false", "0")


@dataclass(frozen=True, slots=True)
class Degradation:
    """The controlplane's `degradation` setting: what Terway does with it, and what is written."""

    level: str  # what the controlplane applies: "none", "l0" or "l1"
    written: str = ""  # the value as viper reads it ("" when the key is absent or empty)

    @property
    def ignored(self) -> bool:
        """A value is written but Terway does not recognise it, so it runs without degradation."""
        return self.written != "" and self.level == "none"


def _viper_string(value: Any) -> str:
    """What viper's GetString returns for a YAML value: scalars as text, anything else ""."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.lru_cache(maxsize=8)  # a YAML parse; the collectors and the findings ask for it several times per render
def read_degradation(text: str) -> Degradation | ConfigError:
    """The controlplane's `degradation` key, judged the way Terway v1.17.5 judges it.

    The controlplane reads ctrl-config.yaml through viper (`types/controlplane/config.go` InitViper;
    viper matches keys case-insensitively) and compares `GetString("degradation")` with the constants
    `l0` and `l1` (`types/controlplane/config_default.go`) as raw strings
    (`pkg/controller/multi-ip/node/pool.go` getDegradation, syncWithAPI, addIP, adjustPool). So `L0`,
    `L1`, a quoted `"l0 "` or `level0` match neither: the controlplane runs without degradation.
    l0: no OpenAPI call (no sync, no new IP, no release); l1: no syncWithAPI and no adjustPool (nothing
    released) but still allocates.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        return ConfigError(f"{CTRL_CONFIG_KEY} is not valid YAML{where}")
    if doc is None:
        return Degradation("none")
    if not isinstance(doc, dict):
        return ConfigError(f"{CTRL_CONFIG_KEY} must be a YAML mapping")
    key = "degradation" if "degradation" in doc else next(
        (k for k in doc if isinstance(k, str) and k.lower() == "degradation"), None)
    written = _viper_string(doc.get(key)) if key is not None else ""
    return Degradation(written if written in ("l0", "l1") else "none", written)


def parse_degradation(text: str) -> str | ConfigError:
    """The degradation level the controlplane applies: "l0", "l1", or "none" (unset or unrecognised)."""
    setting = read_degradation(text)
    return setting if isinstance(setting, ConfigError) else setting.level


def service_cidr_contains(cidrs: tuple[str, ...], ip: str) -> bool | None:
    """Whether any CIDR holds `ip`; None when `ip` is not an address (nothing to compare)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for cidr in cidrs:
        try:
            if addr in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue  # an unparsable entry holds nothing
    return False


def configured_vswitches(kube: KubeSnapshot) -> frozenset[tuple[str, str]]:
    """(vswitch_id, source) for every vSwitch some configuration names.

    A dynamic config counts with the vSwitches its own `eni_conf` patch names (not the
    ones it inherits from eni-config); an unparsable config names none (the config
    checks report it). Computed once per snapshot: it walks every Node CR, and a render asked for it
    three times (collector, capacity, findings), 19 ms each at 5,000 nodes.
    """
    return reuse_while_same("configured_vswitches", (kube,), lambda: frozenset(_configured_vswitches(kube)))


def _configured_vswitches(kube: KubeSnapshot) -> set[tuple[str, str]]:
    pairs = {(v, "eni_config") for v in _named_vswitches(kube.eni_config)}
    for data in kube.dynamic_configs.values():
        pairs |= {(v, "node_config") for v in _named_vswitches(data)}
    for node in (kube.terway_nodes or {}).values():
        pairs |= {(v, "node_cr") for v in node.vswitch_ids if v}
    pairs |= {(v, "pod_networking") for v in kube.pod_networking_vswitches if v}
    return pairs


def _named_vswitches(data: dict[str, str] | None) -> frozenset[str]:
    if not data or ENI_CONF_KEY not in data:
        return frozenset()
    conf = parse_eni_conf(data[ENI_CONF_KEY])
    return frozenset() if isinstance(conf, ConfigError) else conf.vswitch_ids
