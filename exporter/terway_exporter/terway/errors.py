"""Error codes Terway surfaces in events and logs, mapped onto a closed list.

The codes are Alibaba Cloud's real spellings (reference alicloud-api.md §3.2, terway.md §6.2).
The seed troubleshooting guide and Terway's own SKILL.md use spellings that do not exist;
they are recognised here and mapped onto the real code, so a runbook written from the guide
still lands on the right series:

| wrong spelling (source)                         | real code                         |
|--------------------------------------------------|-----------------------------------|
| `QuotaExceeded.Eni` (seed; a Volcengine code)    | `MaxEniCountExceeded`             |
| `Forbidden.Ram.User` (seed)                      | `Forbidden.RAM`                   |
| `InvalidAccessKeyId` (seed, without `.NotFound`) | `InvalidAccessKeyId.NotFound`     |
| `InvalidAccessKeySecret` (seed)                  | `SignatureDoesNotMatch` (a wrong secret fails the signature) |
| `InvalidSecurityGroup.NotFound` (seed; real only for DeleteSecurityGroup) | `InvalidSecurityGroupId.NotFound` |
| `InvalidVSwitchID.IPNotEnough` (SKILL.md)        | `InvalidVSwitchId.IpNotEnough`    |
| "failed to find CNI configuration file" (seed)   | `CNIConfigMissing`                |
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
    SIGNATURE_MISMATCH,
    VSWITCH_NOT_FOUND,
    SECURITY_GROUP_NOT_FOUND,
    CNI_CONFIG_MISSING,
    OTHER,
)

# First match wins: specific codes before the broad families (Forbidden.*, Throttling.*).
# Codes are matched case-insensitively because the wrong spellings differ only in case.
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
        (ACCESS_KEY_NOT_FOUND, r"InvalidAccessKeyId\b(?!\.Inactive)"),
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


# Reasons Terway itself emits (terway.md §4.3): daemon on the core Node, controlplane on the Node CR,
# both on Pods. A Warning with one of these is network-related whatever its message.
TERWAY_REASONS = frozenset(
    {
        "AllocIPFailed",
        "ConfigError",
        "PrefixModeImmutable",
        "CreateENIFailed",
        "AttachENIFailed",
        "DeleteENIFailed",
        "SyncOpenAPIFailed",
        "CniPodCreateError",
        "CniCreateENIError",
        "InsufficientIP",
    }
)

# Event sources: the daemon reports as `terway-daemon`, the controlplane under its controller names.
TERWAY_COMPONENTS = frozenset(
    {
        "terway-daemon",
        "terway-controlplane",
        "multi-ip-node",
        "multi-ip-pod",
        "pod-eni",
        "pod-networking",
    }
)

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


def is_network_event(reason: str, message: str, source_component: str = "") -> bool:
    """Whether a Warning event is about Terway / pod networking."""
    if reason in TERWAY_REASONS or source_component in TERWAY_COMPONENTS:
        return True
    if reason in _SANDBOX_REASONS and _CNI_HINT.search(message or ""):
        return True
    return classify(message) in _NETWORK_ONLY_CODES


def network_error_code(reason: str, message: str, source_component: str = "") -> str | None:
    """The `code` label for a Warning event: a known code, `other`, or None when not network-related."""
    if not is_network_event(reason, message, source_component):
        return None
    return classify(message) or OTHER
