"""Error codes Terway surfaces in events and logs, mapped onto a closed list; which events are Terway's.

The codes are Alibaba Cloud's real spellings, the ones Terway itself tests errors against
(`pkg/aliyun/client/errors/errors.go` in AliyunContainerService/terway at v1.17.5, which cites
the ECS error code reference https://help.aliyun.com/document_detail/85917.html). The Terway
common issues guide, and in one case Terway's own troubleshooting notes in its repository
(`.claude/skills/terway-troubleshooting/` at v1.17.5), use spellings that do not exist; they are
recognised here and mapped onto the real code, so a runbook written from them still lands on
the right series:

| wrong spelling (where)                                    | real code                         |
|-----------------------------------------------------------|-----------------------------------|
| `QuotaExceeded.Eni` (the Terway common issues guide)      | `MaxEniCountExceeded`             |
| `Forbidden.Ram.User` (the Terway common issues guide)     | `Forbidden.RAM`                   |
| `InvalidAccessKeyId` without a suffix (the Terway common issues guide) | `InvalidAccessKeyId.NotFound` |
| `InvalidAccessKeySecret` (the Terway common issues guide) | `SignatureDoesNotMatch` (1) |
| `InvalidSecurityGroup.NotFound` (the Terway common issues guide) (2) | `InvalidSecurityGroupId.NotFound` |
| `InvalidVSwitchID.IPNotEnough` (Terway's troubleshooting notes, above) | `InvalidVSwitchId.IpNotEnough` |
| "failed to find CNI configuration file" (the Terway common issues guide) | `CNIConfigMissing` |

(1) a wrong secret fails the signature. (2) a real code only for DeleteSecurityGroup.

Terway's own words for an exhausted vSwitch also map onto `InvalidVSwitchId.IpNotEnough`. After
a call fails with `InvalidVSwitchId.IpNotEnough` (or `QuotaExceeded.PrivateIpAddress`), Terway
marks the vSwitch as having no free IP in its vSwitch cache (`SwitchPool.Block`,
`pkg/vswitch/vswitch.go` at v1.17.5) and, until the cache entry expires, answers from the cache
without calling the cloud: `vsw-... no ip left` (`ErrIPNotEnough`) and `no available vSwitch
for zone ...` (`ErrNoAvailableVSwitch`), e.g. inside `PodCreateFailed` "Pod create error: can not
found available vSwitch for zone ..." (`pkg/controller/pod/pod_controller.go`). Terway itself
counts `ErrNoAvailableVSwitch` as IP shortage (`isIPNotEnough`,
`pkg/controller/multi-ip/node/pool.go` at v1.17.5). These are matched after every real code, so
a vSwitch lookup that failed for another reason (`InvalidVSwitchId.NotFound`, `Throttling`)
keeps that code.
"""

from __future__ import annotations

import re

IP_NOT_ENOUGH = "InvalidVSwitchId.IpNotEnough"
PRIVATE_IP_QUOTA = "QuotaExceeded.PrivateIpAddress"
ENI_PER_INSTANCE = "EniPerInstanceLimitExceeded"
MAX_ENI_COUNT = "MaxEniCountExceeded"
THROTTLING = "Throttling"
FORBIDDEN_RAM = "Forbidden.RAM"
ACCESS_KEY_NOT_FOUND = "InvalidAccessKeyId.NotFound"
ACCESS_KEY_INACTIVE = "InvalidAccessKeyId.Inactive"  # the key exists but is disabled
SIGNATURE_MISMATCH = "SignatureDoesNotMatch"
VSWITCH_NOT_FOUND = "InvalidVSwitchId.NotFound"
SECURITY_GROUP_NOT_FOUND = "InvalidSecurityGroupId.NotFound"
CNI_CONFIG_MISSING = "CNIConfigMissing"
OTHER = "other"

# The closed label set of terway_network_errors_total{code} and terway_daemon_crash_cause{code}.
KNOWN_CODES: tuple[str, ...] = (
    IP_NOT_ENOUGH,
    PRIVATE_IP_QUOTA,
    ENI_PER_INSTANCE,
    MAX_ENI_COUNT,
    THROTTLING,
    FORBIDDEN_RAM,
    ACCESS_KEY_NOT_FOUND,
    ACCESS_KEY_INACTIVE,
    SIGNATURE_MISMATCH,
    VSWITCH_NOT_FOUND,
    SECURITY_GROUP_NOT_FOUND,
    CNI_CONFIG_MISSING,
    OTHER,
)

# First match wins: specific codes before the broad families (Forbidden.*, Throttling.*), and every
# real code before Terway's own vSwitch-cache words. Codes are matched case-insensitively because
# the wrong spellings differ only in case.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern, re.IGNORECASE))
    for code, pattern in (
        (IP_NOT_ENOUGH, r"InvalidVSwitchId\.IpNotEnough|has not enough IpAddress|\bip is not enough\b"),
        (PRIVATE_IP_QUOTA, r"QuotaExceeded\.PrivateIpAddress"),
        (ENI_PER_INSTANCE, r"EniPerInstanceLimitExceeded"),
        (
            MAX_ENI_COUNT,
            r"MaxEniCountExceeded|QuotaExceed(?:ed)?\.Eni\b|number of ENI exceeds the limit per region"
            r"|ENI quota exceeded",
        ),
        (VSWITCH_NOT_FOUND, r"InvalidVSwitchId\.NotFound"),
        (SECURITY_GROUP_NOT_FOUND, r"InvalidSecurityGroup(?:Id)?\.NotFound"),
        (ACCESS_KEY_INACTIVE, r"InvalidAccessKeyId\.Inactive"),
        (ACCESS_KEY_NOT_FOUND, r"InvalidAccessKeyId\b"),
        (SIGNATURE_MISMATCH, r"SignatureDoesNotMatch|InvalidAccessKeySecret"),
        # "Forbidden." with a dot: Kubernetes' own `... is forbidden: User ...` must not match.
        (FORBIDDEN_RAM, r"\bForbidden\.[A-Za-z]"),
        (THROTTLING, r"\bThrottling(?:\.[A-Za-z]+)?\b"),
        (
            CNI_CONFIG_MISSING,
            r"cni config uninitiali[sz]ed|network plugin is not ready|NetworkPluginNotReady"
            r"|no networks found in /etc/cni/net\.d|(?:cni )?plugin not initiali[sz]ed"
            r"|failed to find CNI configuration file|no valid networks found",
        ),
        # Terway's vSwitch cache (pkg/vswitch/vswitch.go): ErrIPNotEnough, ErrNoAvailableVSwitch.
        (IP_NOT_ENOUGH, r"\bno ip left\b|\bno available vSwitch\b"),
    )
)


def classify(message: str) -> str | None:
    """The known code a message names, or None (callers decide whether that makes it `other`)."""
    if not message:
        return None
    for code, pattern in _PATTERNS:
        if pattern.search(message):
            return code
    return None


# Warning reasons Terway itself records (AliyunContainerService/terway, pkg/, daemon/ and plugin/
# from v1.13 to v1.17.5). A Warning with one of these is network-related whatever its message.
# The daemon's generic ones (`ParseFailed` in pkg/k8s/k8s.go, `ResourceInvalid` in pkg/eni/local.go,
# `ConfigCheck` from the CNI plugin) are left out: other components use such words, and the
# daemon's events are recognised by their component, `terway-daemon`.
TERWAY_REASONS = frozenset(
    {
        # CNI plugin (plugin/terway/cni_linux.go, sent through the daemon), daemon (pkg/eni/local.go),
        # controlplane (pkg/controller/multi-ip/node/pool.go).
        "AllocIPFailed",
        "VirtualModeChanged",  # plugin/terway/cni_linux.go: IPVLan unavailable, veth used instead
        # types/k8s.go constants, recorded by the controllers and the daemon's node reconciler.
        "ConfigError",
        "SyncOpenAPIFailed",
        "CreateENIFailed",
        "AttachENIFailed",
        "DetachENIFailed",
        "DeleteENIFailed",
        "UpdatePodENIFailed",
        "SyncPodNetworkingFailed",
        "PrefixModeImmutable",  # pkg/eni/node_reconcile.go, since v1.17.1
        # Since v1.17.2 (commit bbe56522, "improve event recording for ENI operations").
        "PodCreateFailed",  # pkg/controller/pod/pod_controller.go recordPodCreate
        "PodDeleteFailed",
        "DeletePodENIFailed",  # pkg/controller/pod-eni/eni_controller.go
        # Up to v1.17.1 (and the release-1.16 branch): the same failures under their old names.
        "CniPodCreateError",
        "CniPodDeleteError",
        "CniCreateENIError",
        "CniPodENIDeleteErr",
        "ENIAttachFailed",  # pkg/controller/multi-ip/node/pool.go, before AttachENIFailed
    }
)

# Event sources (core/v1 `source.component`, or `reportingComponent` where that is empty):
# - the daemon records as `terway-daemon` (pkg/k8s/k8s.go, pkg/eni/crdv2.go);
# - up to v1.16.6 each controlplane controller records under its own name: `multi-ip-node`,
#   `multi-ip-pod` (ControllerName), `TerwayPodController`, `TerwayPodENIController`,
#   `PodNetworking` and `TerwayENetworkInterfaceontroller` (sic) (`GetEventRecorderFor(...)` in
#   pkg/controller/*). The node controller's name, `node`, is too generic to claim; its only
#   Warning, ConfigError, is matched by reason;
# - since v1.17.1 (and on the release-1.16 branch after v1.16.6) they record as
#   `terway-controlplane/<controller>` (`utils.EventName`, pkg/utils/k8s.go). v1.17.1 writes
#   core/v1 events, so the name is in `source.component`; from v1.17.2 controller-runtime's
#   `GetEventRecorder` writes events.k8s.io/v1 events, whose core/v1 view has an empty `source`
#   and the name in `reportingComponent`.
TERWAY_COMPONENTS = frozenset(
    {
        "terway-daemon",
        "terway-controlplane",
        "multi-ip-node",
        "multi-ip-pod",
        "TerwayPodController",
        "TerwayPodENIController",
        "PodNetworking",
        "TerwayENetworkInterfaceontroller",
    }
)
CONTROLPLANE_COMPONENT_PREFIX = "terway-controlplane/"


def is_terway_component(component: str) -> bool:
    """Whether an event's source or reporting component is a Terway daemon or controller."""
    return component in TERWAY_COMPONENTS or component.startswith(CONTROLPLANE_COMPONENT_PREFIX)


# Kubelet reasons that are about networking when their message points at the CNI.
_SANDBOX_REASONS = frozenset({"FailedCreatePodSandBox", "FailedKillPodSandBox", "NetworkNotReady"})
_CNI_HINT = re.compile(r"terway|\bcni\b|network plugin|set ?up network|networkready=false", re.IGNORECASE)

# Codes specific enough to ENI/IP management that any Warning naming them is network-related.
# The generic ones (Throttling, Forbidden.RAM, credentials) also come from CSI or cloud controllers.
_NETWORK_ONLY_CODES = frozenset(
    {
        IP_NOT_ENOUGH,
        PRIVATE_IP_QUOTA,
        ENI_PER_INSTANCE,
        MAX_ENI_COUNT,
        VSWITCH_NOT_FOUND,
        CNI_CONFIG_MISSING,
    }
)


def is_sandbox_network_failure(reason: str, message: str) -> bool:
    """Whether a kubelet Warning on a pod says its sandbox network could not be set up yet.

    `FailedCreatePodSandBox` whose message names the CNI (a pause-image pull failure does not), or
    `NetworkNotReady` (the node's network plugin is not ready, so the kubelet does not even try).
    """
    return reason in ("FailedCreatePodSandBox", "NetworkNotReady") and bool(_CNI_HINT.search(message or ""))


def is_network_event(reason: str, message: str, source_component: str = "") -> bool:
    """Whether a Warning event is about Terway / pod networking."""
    if reason in TERWAY_REASONS or is_terway_component(source_component):
        return True
    if reason in _SANDBOX_REASONS and _CNI_HINT.search(message or ""):
        return True
    return classify(message) in _NETWORK_ONLY_CODES


def network_error_code(reason: str, message: str, source_component: str = "") -> str | None:
    """The `code` label for a Warning event: a known code, `other`, or None when not network-related."""
    if not is_network_event(reason, message, source_component):
        return None
    return classify(message) or OTHER
