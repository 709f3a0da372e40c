"""Configuration checks: what in Terway's configuration is wrong, and where.

`run_checks(state)` is pure: a ClusterState in, a list of `Problem(check, object, message)` out.
Every check in `CHECK_NAMES` is always evaluated, so `terway_config_problems{check}` can say 0.
Objects name the place to fix: `<ConfigMap>/<key>` for a config, a vSwitch / security group ID, a
zone, or a node. vSwitch and security-group checks judge every configuration Terway creates ENIs from:
eni-config, the per-node dynamic configs, and PodNetworkings (`podnetworking/<name>` in messages).
Checks that need cloud data say nothing until the cloud source has answered.

A dynamic config (node label `terway-config`) is merge-patched over `eni-config`; a problem it
only inherits is reported once, under `eni-config`.

Each check's docstring says what Terway does with the faulty setting, naming the file of
AliyunContainerService/terway (at tag v1.17.5 unless it says otherwise) where it does so; the
runbooks quote them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model.state import ClusterState
from ..terway.eniconf import (
    CNI_CONF_KEY,
    CTRL_CONFIG_KEY,
    ENI_CONF_KEY,
    ENI_CONFIG_NAME,
    IGNORED_FIELDS,
    ConfigError,
    Degradation,
    EniConf,
    conf_for_node,
    effective_confs,
    load_json_object,
    parse_cni_conf,
    plaintext_credential_keys,
    service_cidr_contains,
    validate,
)
from ..terway.node import (
    NodeView,
    cached_node_views,
    degradation_level,
    degradation_setting,
    managed_nodes,
)


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    object: str
    message: str


@dataclass(frozen=True, slots=True)
class _Context:
    """What several checks share, computed once per run."""

    state: ClusterState
    confs: Mapping[str, EniConf | ConfigError]  # ConfigMap name -> config in force (merged)
    raw: Mapping[str, Mapping[str, Any]]  # ConfigMap name -> its own decoded eni_conf

    @property
    def parsed(self) -> dict[str, EniConf]:
        return {name: c for name, c in self.confs.items() if isinstance(c, EniConf)}

    def introduced(self, name: str, key: Callable[[EniConf], Any]) -> bool:
        """Whether config `name` is where `key`'s value comes from (not inherited from eni-config)."""
        base = self.confs.get(ENI_CONFIG_NAME)
        if name == ENI_CONFIG_NAME or not isinstance(base, EniConf):
            return True
        return key(self.parsed[name]) != key(base)


def _where(name: str) -> str:
    return f"{name}/{ENI_CONF_KEY}"


# ------------------------------------------------------------------------------------ the checks


def eni_conf_unparsable(ctx: _Context) -> Iterable[Problem]:
    """A Terway configuration that does not parse.

    `terwayd` decodes `eni_conf` with Go's json.Unmarshal at start and exits on any error (bad JSON
    or a field of the wrong type, e.g. `"max_pool_size": "5"`), so its pod crash-loops; a broken
    dynamic config breaks only the nodes labelled with it. `terway-init` fails when `10-terway.conf`
    is missing or unreadable, and a broken `ctrl-config.yaml` stops the controlplane.
    """
    kube = ctx.state.kube
    if kube.eni_config is None:
        return
    if ENI_CONF_KEY not in kube.eni_config:
        yield Problem("eni_conf_unparsable", _where(ENI_CONFIG_NAME), "eni-config has no eni_conf key")
    for name, conf in ctx.confs.items():
        if isinstance(conf, ConfigError):
            yield Problem("eni_conf_unparsable", _where(name), conf.message)
    cni = parse_cni_conf(kube.eni_config)
    if cni is None:
        yield Problem("eni_conf_unparsable", f"{ENI_CONFIG_NAME}/{CNI_CONF_KEY}",
                      "eni-config has neither 10-terway.conf nor 10-terway.conflist")
    elif isinstance(cni, ConfigError):
        yield Problem("eni_conf_unparsable", f"{ENI_CONFIG_NAME}/{CNI_CONF_KEY}", cni.message)
    level = degradation_level(kube)
    if isinstance(level, ConfigError):
        yield Problem("eni_conf_unparsable", f"terway-controlplane/{CTRL_CONFIG_KEY}", level.message)


def degradation_ignored(ctx: _Context) -> Iterable[Problem]:
    """`ctrl-config.yaml` sets `degradation` to a value Terway does not recognise, such as `L0`.

    The controlplane compares the string it reads with `l0` and `l1` exactly
    (`pkg/controller/multi-ip/node/pool.go` getDegradation, `types/controlplane/config_default.go`,
    Terway v1.17.5), so `L0`, `L1` or `"l0 "` match neither and it runs without degradation: it keeps
    syncing, allocating and releasing IPs through the cloud API while whoever wrote it believes that
    is switched off. `terway_controlplane_degradation` reports what Terway does (`none`).
    """
    setting = degradation_setting(ctx.state.kube)
    if isinstance(setting, Degradation) and setting.ignored:
        shown = setting.written if len(setting.written) <= 32 else setting.written[:32] + "..."
        yield Problem("degradation_ignored", f"terway-controlplane/{CTRL_CONFIG_KEY}",
                      f"degradation {shown!r} is neither l0 nor l1 (Terway compares the exact, lower-case "
                      "string), so the controlplane runs without degradation")


def eni_conf_invalid(ctx: _Context) -> Iterable[Problem]:
    """`eni_conf` parses but `terwayd`'s `Config.Validate()` refuses it at start, so the daemon exits
    (crash loop) on the nodes it applies to: `ip_stack` must be ipv4 or dual (`ipv6` is rejected),
    and at most 10 security groups are allowed."""
    for name, conf in sorted(ctx.parsed.items()):
        reasons = validate(conf)
        if reasons and ctx.introduced(name, validate):
            yield Problem("eni_conf_invalid", _where(name), "; ".join(reasons))


def eni_conf_ignored_field(ctx: _Context) -> Iterable[Problem]:
    """`eni_conf` sets a field Terway does not read (e.g. `enable_ebpf`, `enable_datapath_v2`,
    `degradation`, `eniip_virtual_type`): the setting has no effect. These names come from the
    Terway common issues guide or removed releases; `types/daemon/config.go` has no such field."""
    for name, doc in sorted(ctx.raw.items()):
        for field in IGNORED_FIELDS:
            if field in doc:
                yield Problem("eni_conf_ignored_field", f"{_where(name)}.{field}",
                              f"{field} has no effect: {IGNORED_FIELDS[field]}")


def _configured(ctx: _Context, ids_of: Callable[[EniConf], Iterable[str]]) -> dict[str, list[str]]:
    """ID -> configs naming it (a dynamic config only for the IDs it adds to eni-config's)."""
    base = ctx.parsed.get(ENI_CONFIG_NAME)
    inherited = set(ids_of(base)) if base else set()
    found: dict[str, list[str]] = {}
    for name, conf in sorted(ctx.parsed.items()):
        for an_id in sorted(set(ids_of(conf))):
            if name == ENI_CONFIG_NAME or an_id not in inherited:
                found.setdefault(an_id, []).append(_where(name))
    return found


def _not_found(
    configured: Mapping[str, list[str]],
    found: Mapping[str, object],
    missing: frozenset[str],
    asked: frozenset[str],
) -> Iterable[tuple[str, list[str]]]:
    """Configured IDs the cloud says do not exist. Silent before the cloud answered at all; an ID
    the cloud source was not asked about yet (targets not refreshed) is not judged."""
    if not found and not missing:
        return
    for an_id, where in sorted(configured.items()):
        if an_id in missing or (an_id not in found and (not asked or an_id in asked)):
            yield an_id, where


def _vswitches(conf: EniConf) -> Iterable[str]:
    return conf.vswitch_ids


def _security_groups(conf: EniConf) -> Iterable[str]:
    return conf.security_groups


def _with_pod_networkings(ctx: _Context, found: dict[str, list[str]], attr: str) -> dict[str, list[str]]:
    """Add what each PodNetworking names (`vswitch_ids` or `security_group_ids`) to `found`.

    A PodNetworking gives the pods it selects their own vSwitches and security groups: Terway's
    controlplane creates their ENIs there (`spec.vSwitchOptions`, `spec.securityGroupIDs` of
    `pkg/apis/network.alibabacloud.com/v1beta1/types.go`, Terway v1.17.5), so a wrong ID fails those
    pods just as a wrong eni-config ID fails the node pools."""
    for name, refs in sorted(ctx.state.kube.pod_networkings.items()):
        for an_id in getattr(refs, attr):
            found.setdefault(an_id, []).append(f"podnetworking/{name}")
    return found


def vswitch_not_found(ctx: _Context) -> Iterable[Problem]:
    """A configured vSwitch that DescribeVSwitches does not return (deleted, mistyped, other region).

    Terway cannot use it: creating an ENI in it fails (`InvalidVSwitchId.NotFound`; Node CR event
    `CreateENIFailed`, pod/Node event `AllocIPFailed`), and when it is the zone's only vSwitch no new
    IP can be allocated in that zone. Silent until the cloud source has read vSwitches, and while its
    vSwitch step is down (e.g. every configured vSwitch came back missing at once, which the source
    reports as its own failure): then only its last good answer's missing vSwitches are reported.
    """
    cloud = ctx.state.cloud
    configured = _with_pod_networkings(ctx, _configured(ctx, _vswitches), "vswitch_ids")
    status = ctx.state.sources.get("cloud_vswitches")  # the step's name in sources/cloud/source.py
    if status is not None and not status.up:
        configured = {k: v for k, v in configured.items() if k in cloud.missing_vswitches}
    for vsw, where in _not_found(configured, cloud.vswitches, cloud.missing_vswitches,
                                 ctx.state.targets.vswitch_ids):
        yield Problem("vswitch_not_found", vsw,
                      f"vSwitch {vsw} named in {', '.join(where)} does not exist in the region")


def vswitch_other_vpc(ctx: _Context) -> Iterable[Problem]:
    """A configured vSwitch that belongs to another VPC than the cluster's.

    An ENI lives in its vSwitch's VPC and ECS attaches ENIs only to instances of the same VPC, so
    Terway cannot get pod IPs from that vSwitch. Silent until the VPC and vSwitches are known.
    """
    cloud = ctx.state.cloud
    vpc = cloud.vpc_id or ctx.state.targets.vpc_id
    if not vpc:
        return
    for vsw, where in sorted(_with_pod_networkings(ctx, _configured(ctx, _vswitches), "vswitch_ids").items()):
        info = cloud.vswitches.get(vsw)
        if info is not None and info.vpc_id and info.vpc_id != vpc:
            yield Problem("vswitch_other_vpc", vsw,
                          f"vSwitch {vsw} named in {', '.join(where)} is in {info.vpc_id}, "
                          f"the cluster is in {vpc}")


def security_group_not_found(ctx: _Context) -> Iterable[Problem]:
    """A configured security group that does not exist.

    Terway passes the groups to CreateNetworkInterface, which then fails with
    `InvalidSecurityGroupId.NotFound`: no new ENI, no new IPs. Silent until the cloud source has
    read security groups.
    """
    cloud = ctx.state.cloud
    configured = _with_pod_networkings(ctx, _configured(ctx, _security_groups), "security_group_ids")
    for sg, where in _not_found(configured, cloud.security_groups, cloud.missing_security_groups,
                                ctx.state.targets.security_group_ids):
        yield Problem("security_group_not_found", sg,
                      f"security group {sg} named in {', '.join(where)} does not exist")


def zone_without_vswitch(ctx: _Context) -> Iterable[Problem]:
    """A zone that has Terway nodes but no vSwitch in any configuration that applies to them.

    Terway then falls back to the node's own (primary ENI's) vSwitch from instance metadata, which
    usually holds the node IPs: pods compete with nodes for it and its exhaustion blocks both.
    """
    zones: dict[str, bool] = {}  # zone -> some applicable config lists a vSwitch for it
    for node in managed_nodes(ctx.state.kube):
        conf = conf_for_node(ctx.confs, node)
        if not node.zone_id or not isinstance(conf, EniConf):
            continue
        zones[node.zone_id] = zones.get(node.zone_id, False) or bool(conf.vswitches.get(node.zone_id))
    for zone in sorted(z for z, covered in zones.items() if not covered):
        yield Problem("zone_without_vswitch", zone,
                      f"nodes in zone {zone} but no vSwitch configured for it; Terway falls back to "
                      "each node's own vSwitch")


def service_cidr_mismatch(ctx: _Context) -> Iterable[Problem]:
    """`service_cidr` does not contain the ClusterIP of `default/kubernetes`.

    Terway's datapaths (ipvlan, datapathv2, exclusive ENI) route the service CIDR through the host
    stack; with the wrong CIDR, pods on those datapaths cannot reach Services (DNS included).
    """
    ip = ctx.state.kube.kubernetes_service_ip
    if not ip:
        return
    for name, conf in sorted(ctx.parsed.items()):
        if not conf.service_cidrs or not ctx.introduced(name, lambda c: c.service_cidr):
            continue
        if service_cidr_contains(conf.service_cidrs, ip) is False:
            yield Problem("service_cidr_mismatch", _where(name),
                          f"service_cidr {conf.service_cidr} does not contain the kubernetes "
                          f"Service IP {ip}")


def pool_min_above_max(ctx: _Context) -> Iterable[Problem]:
    """`min_pool_size` above `max_pool_size`. What Terway does with it depends on the IPAM mode:

    * centralised IPAM (`ipam_type: crd`): the daemon copies both values, uncapped, into the Node CR's
      `spec.pool` (`pkg/eni/node_reconcile.go`, Terway v1.17.5). On every reconcile the controlplane
      allocates until the node has `min_pool_size` idle IPs (`addIP`), and once per pool sync period
      (`ip_pool_sync_period`, else the controlplane's `multiIPGCPeriod`, 2 minutes) releases the idle
      IPs above `max_pool_size` (`adjustPool`/`calculateToDel`), both in
      `pkg/controller/multi-ip/node/pool.go`. The pool never settles: every node assigns and unassigns
      `min - max` IPs each period (AssignPrivateIpAddresses / UnassignPrivateIpAddresses load, throttling
      shared with the rest of the account), and TerwayIPPoolBelowMinimum would flap. A real problem.
    * legacy IPAM: terwayd caps the minimum to the maximum at start (`daemon/config.go`
      getPoolConfig), so the configured floor is simply never kept.

    Nodes in prefix or exclusive-ENI mode have no pool (`spec.pool` zeroed) and are unaffected.
    """
    for name, conf in sorted(ctx.parsed.items()):
        bounds = (conf.min_pool_size, conf.max_pool_size)
        if conf.min_pool_size <= conf.max_pool_size or not ctx.introduced(
            name, lambda c: (c.min_pool_size, c.max_pool_size, c.centralized_ipam)
        ):
            continue
        if conf.centralized_ipam:
            effect = ("in centralised IPAM the controlplane allocates IPs up to min_pool_size and releases "
                      "those above max_pool_size every pool sync period, so each node's pool churns "
                      "(cloud API calls every period)")
        else:
            effect = "terwayd caps min_pool_size to max_pool_size, so the configured minimum is never kept"
        yield Problem("pool_min_above_max", _where(name),
                      "min_pool_size {:d} is above max_pool_size {:d}: ".format(*bounds) + effect)


def pool_min_above_capacity(ctx: _Context, views: list[NodeView]) -> Iterable[Problem]:
    """The node's pool floor exceeds the IPs the node can hold. Terway allocates while idle IPs are
    below the floor and releases only above `max_pool_size`, so the node takes every IP it can hold
    from the vSwitch and keeps them (starving other nodes of the vSwitch), while its pool still never
    reaches the floor. The floor is the node view's `pool_min`: `min_pool_size` as the Node CR carries it
    in centralised IPAM (uncapped), `min(min_pool_size, max_pool_size)` in legacy IPAM, where terwayd caps
    it (`daemon/config.go`, Terway v1.17.5)."""
    for view in views:
        if view.pool_min is None or view.ip_capacity is None:
            continue
        floor = view.pool_min
        if floor > view.ip_capacity:
            yield Problem("pool_min_above_capacity", view.name,
                          f"min_pool_size {floor} is above the node's IP capacity {view.ip_capacity}")


def plaintext_credentials(ctx: _Context) -> Iterable[Problem]:
    """`access_key`/`access_secret` set in a ConfigMap: anyone who can read ConfigMaps in the
    namespace reads the AccessKey. Terway prefers the files in /var/alibaba-addon-secret when they
    exist; the safe setups are the node's RAM role or `credential_path` (the addon token)."""
    for name, doc in sorted(ctx.raw.items()):
        keys = plaintext_credential_keys(doc)
        if keys:
            yield Problem("plaintext_credentials", _where(name),
                          f"{' and '.join(keys)} set in plain text in ConfigMap {name}")


_SIMPLE_CHECKS: tuple[Callable[[_Context], Iterable[Problem]], ...] = (
    eni_conf_unparsable,
    eni_conf_invalid,
    eni_conf_ignored_field,
    degradation_ignored,
    vswitch_not_found,
    vswitch_other_vpc,
    security_group_not_found,
    zone_without_vswitch,
    service_cidr_mismatch,
    pool_min_above_max,
    plaintext_credentials,
)
CHECK_NAMES: tuple[str, ...] = (*(c.__name__ for c in _SIMPLE_CHECKS), "pool_min_above_capacity")


def _raw_docs(kube_configs: Iterable[tuple[str, Mapping[str, str] | None]]) -> dict[str, dict]:
    docs = {}
    for name, data in kube_configs:
        if data is None or ENI_CONF_KEY not in data:
            continue
        doc = load_json_object(data[ENI_CONF_KEY], name)
        if not isinstance(doc, ConfigError):
            docs[name] = doc
    return docs


def make_context(state: ClusterState) -> _Context:
    kube = state.kube
    raw = _raw_docs([(ENI_CONFIG_NAME, kube.eni_config), *kube.dynamic_configs.items()])
    return _Context(state=state, confs=effective_confs(kube), raw=raw)


def run_checks(state: ClusterState, views: list[NodeView] | None = None) -> list[Problem]:
    """Every problem found; pass `views` when the caller already computed the node views."""
    ctx = make_context(state)
    problems = [p for check in _SIMPLE_CHECKS for p in check(ctx)]
    if views is None:
        views = cached_node_views(state)
    problems.extend(pool_min_above_capacity(ctx, views))
    return problems

