"""Error codes recognised in real Terway, kubelet and SDK messages; which events are network-related."""

from __future__ import annotations

import pytest

from terway_exporter.terway.errors import (
    KNOWN_CODES,
    TERWAY_REASONS,
    classify,
    is_network_event,
    is_terway_component,
    network_error_code,
)


@pytest.mark.parametrize(
    "message, code",
    [
        # Terway daemon log line quoted in the reference.
        ('Status Code: 403 Code: InvalidVSwitchId.IpNotEnough Message: The specified VSwitch "vsw-AAA" '
         "has not enough IpAddress.", "InvalidVSwitchId.IpNotEnough"),
        # Node CR Nic condition InsufficientIP message.
        ("vsw-bp1h0000000000000001 ip is not enough", "InvalidVSwitchId.IpNotEnough"),
        # Controlplane event CreateENIFailed ("Failed to create ENI type=%s vsw=%s: %v").
        ("Failed to create ENI type=Secondary vsw=vsw-bp1x: SDK.ServerError\nErrorCode: "
         "QuotaExceeded.PrivateIpAddress\nRecommend: ...", "QuotaExceeded.PrivateIpAddress"),
        ("ErrorCode: EniPerInstanceLimitExceeded Message: The maximum number of ENIs per instance is "
         "exceeded.", "EniPerInstanceLimitExceeded"),
        ("HTTP Status: 403 Error:MaxEniCountExceeded The number of ENI exceeds the limit per region.",
         "MaxEniCountExceeded"),
        ("HTTP Status: 403 Error:Forbidden.RAM User not authorized to operate on the specified resource, "
         "or this API doesn't support RAM. RequestID: 7A3B", "Forbidden.RAM"),
        ("Error:Forbidden.NotSupportRAM This action does not support accessed by RAM mode.", "Forbidden.RAM"),
        ("HTTP Status: 404 Error:InvalidAccessKeyId.NotFound Specified access key is not found.",
         "InvalidAccessKeyId.NotFound"),
        ("HTTP Status: 400 Error:SignatureDoesNotMatch Specified signature is not matched with our "
         "calculation. server string to sign is:POST&%2F&AccessKeyId", "SignatureDoesNotMatch"),
        # A disabled key is its own code, not NotFound: the alert names it, the runbook tells them apart.
        ("ErrorCode: InvalidAccessKeyId.Inactive Message: Specified access key is disabled.",
         "InvalidAccessKeyId.Inactive"),
        ("ErrorCode: InvalidVSwitchId.NotFound Message: The specified VSwitchId does not exist.",
         "InvalidVSwitchId.NotFound"),
        ("ErrorCode: InvalidSecurityGroupId.NotFound Message: The specified SecurityGroupId does not exist.",
         "InvalidSecurityGroupId.NotFound"),
        ("HTTP Status: 400 Error:Throttling Request was denied due to request throttling.", "Throttling"),
        ("Error:Throttling.User Request was denied due to user flow control.", "Throttling"),
        ("Error:Throttling.Api Request was denied due to api flow control.", "Throttling"),
        # Kubelet / containerd when the CNI config is not there yet.
        ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
         "message:Network plugin returns error: cni plugin not initialized", "CNIConfigMissing"),
        ("network plugin is not ready: cni config uninitialized", "CNIConfigMissing"),
        ("no networks found in /etc/cni/net.d", "CNIConfigMissing"),
    ],
)
def test_real_codes(message, code):
    assert classify(message) == code


@pytest.mark.parametrize(
    "message, code",
    [
        ("QuotaExceeded.Eni: ENI quota exceeded", "MaxEniCountExceeded"),
        ("Forbidden.Ram.User: User not authorized to operate on the specified resource", "Forbidden.RAM"),
        ('Look for errors like "InvalidAccessKeyId"', "InvalidAccessKeyId.NotFound"),
        ("InvalidAccessKeySecret", "SignatureDoesNotMatch"),
        ("InvalidSecurityGroup.NotFound", "InvalidSecurityGroupId.NotFound"),
        # Terway's troubleshooting notes (.claude/skills/terway-troubleshooting/ at v1.17.5).
        ("InvalidVSwitchID.IPNotEnough", "InvalidVSwitchId.IpNotEnough"),
        ("failed to find CNI configuration file", "CNIConfigMissing"),
    ],
)
def test_guide_spellings_map_onto_real_codes(message, code):
    assert classify(message) == code
    assert code in KNOWN_CODES


@pytest.mark.parametrize(
    "message",
    [
        "",
        'pods "web-1" is forbidden: User "system:serviceaccount:default:x" cannot get resource "pods"',
        "Back-off restarting failed container",
        "0/3 nodes are available: 3 Insufficient aliyun/eni.",
    ],
)
def test_messages_without_a_known_code(message):
    assert classify(message) is None


def test_known_codes_is_closed_and_ends_with_other():
    assert KNOWN_CODES[-1] == "other"
    assert len(set(KNOWN_CODES)) == len(KNOWN_CODES) == 13


SANDBOX = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
           '"4b1f": plugin type="terway" name="terway" failed (add): cmdAdd: error alloc ip rpc error: '
           "code = DeadlineExceeded desc = context deadline exceeded")


@pytest.mark.parametrize(
    "reason, message, component, expected",
    [
        ("FailedCreatePodSandBox", SANDBOX, "kubelet", "other"),
        ("FailedCreatePodSandBox", SANDBOX.replace("DeadlineExceeded", "InvalidVSwitchId.IpNotEnough"),
         "kubelet", "InvalidVSwitchId.IpNotEnough"),
        ("AllocIPFailed", "alloc IP failed: ErrorCode: Throttling", "terway-daemon", "Throttling"),
        ("CreateENIFailed", "Failed to create ENI type=Secondary vsw=vsw-1: Forbidden.RAM", "multi-ip-node",
         "Forbidden.RAM"),
        ("SyncOpenAPIFailed", "context deadline exceeded", "multi-ip-node", "other"),
        ("ConfigError", "dual stack is not supported, fallback to ipv4", "terway-daemon", "other"),
        ("CniPodCreateError", "cmdAdd failed", "", "other"),
        ("NetworkNotReady", "network is not ready: container runtime network not ready: NetworkReady=false "
         "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
         "kubelet", "CNIConfigMissing"),
        # Generic codes from other components are not Terway's.
        ("FailedMount", "rpc error: code = Internal desc = Throttling.User", "kubelet", None),
        ("FailedAttachVolume", "Forbidden.RAM", "attachdetach-controller", None),
        ("FailedCreatePodSandBox", "failed to pull image registry/pause:3.9: not found", "kubelet", None),
        ("BackOff", "Back-off restarting failed container", "kubelet", None),
        # ENI-specific codes are network errors whoever reports them.
        ("ProvisioningFailed", "ErrorCode: EniPerInstanceLimitExceeded", "some-operator",
         "EniPerInstanceLimitExceeded"),
    ],
)
def test_network_events(reason, message, component, expected):
    assert network_error_code(reason, message, component) == expected
    assert is_network_event(reason, message, component) is (expected is not None)


# Terway's vSwitch cache after a first IpNotEnough (pkg/vswitch/vswitch.go, pkg/controller/pod/pod_controller.go
# and pkg/controller/multi-ip/node/pool.go at v1.17.5), as the event messages read.
CACHE_EXHAUSTED = ("Pod create error: can not found available vSwitch for zone cn-hangzhou-h, [vsw-bp1a no ip left, "
                   "vsw-bp1b no ip left, no available vSwitch for zone cn-hangzhou-h, vswList [vsw-bp1a vsw-bp1b]], "
                   "elapsedTime: 3.2ms")


@pytest.mark.parametrize(
    "message, code",
    [
        (CACHE_EXHAUSTED, "InvalidVSwitchId.IpNotEnough"),
        ("PodCreateError: can not found available vSwitch for zone cn-hangzhou-h, vsw-bp1a no ip left",
         "InvalidVSwitchId.IpNotEnough"),
        ("no available vSwitch", "InvalidVSwitchId.IpNotEnough"),  # AllocIPFailed from the Node pool
        # A vSwitch lookup that failed for a real reason keeps that reason.
        ("Pod create error: can not found available vSwitch for zone cn-hangzhou-h, [SDK.ServerError ErrorCode: "
         "InvalidVSwitchId.NotFound, no available vSwitch for zone cn-hangzhou-h, vswList [vsw-bp1a]]",
         "InvalidVSwitchId.NotFound"),
        ("can not found available vSwitch for zone cn-hangzhou-h, [ErrorCode: Throttling.User, no available vSwitch "
         "for zone cn-hangzhou-h, vswList [vsw-bp1a]]", "Throttling"),
        # Not Terway's cache words.
        ("no ipleft", None),
        ("there is no available vSwitches tab in the console", None),
    ],
)
def test_vswitch_cache_answers_are_ip_exhaustion(message, code):
    assert classify(message) == code


@pytest.mark.parametrize(
    "component, terway",
    [
        ("terway-daemon", True),
        ("terway-controlplane", True),
        ("terway-controlplane/pod", True),  # v1.17.1+ (utils.EventName)
        ("terway-controlplane/multi-ip-node", True),
        ("multi-ip-node", True),  # v1.16: the controller names themselves
        ("TerwayPodController", True),
        ("TerwayPodENIController", True),
        ("TerwayENetworkInterfaceontroller", True),  # sic, pkg/controller/eni/eni.go up to v1.16.6
        ("PodNetworking", True),
        ("node", False),  # Terway's node controller before v1.17.1, but too generic to claim
        ("kubelet", False),
        ("terway-controlplane-operator", False),
        ("", False),
    ],
)
def test_terway_components(component, terway):
    assert is_terway_component(component) is terway


@pytest.mark.parametrize(
    "reason, message, component, expected",
    [
        # v1.17.2+: reportingComponent is all the core/v1 view names (source is empty).
        ("PodCreateFailed", "Pod create error: ErrorCode: Forbidden.RAM, elapsedTime: 1s", "terway-controlplane/pod",
         "Forbidden.RAM"),
        ("UpdatePodENIFailed", "ErrorCode: Throttling.User", "terway-controlplane/pod-eni", "Throttling"),
        ("DetachENIFailed", "ErrorCode: InvalidAccessKeyId.NotFound", "terway-controlplane/pod-eni",
         "InvalidAccessKeyId.NotFound"),
        ("DetachENIFailed", "ErrorCode: InvalidAccessKeyId.Inactive", "terway-controlplane/pod-eni",
         "InvalidAccessKeyId.Inactive"),
        ("PodCreateFailed", CACHE_EXHAUSTED, "terway-controlplane/pod", "InvalidVSwitchId.IpNotEnough"),
        # The reason alone is enough when the component is unknown (or empty).
        ("PodCreateFailed", "ErrorCode: Forbidden.RAM", "", "Forbidden.RAM"),
        ("UpdatePodENIFailed", "ErrorCode: Throttling", "", "Throttling"),
        ("DetachENIFailed", "ErrorCode: InvalidAccessKeyId.NotFound", "", "InvalidAccessKeyId.NotFound"),
        # v1.16: the old reasons and controller names.
        ("CniPodCreateError", "PodCreateError: ErrorCode: Forbidden.RAM, elapsedTime: 2s", "TerwayPodController",
         "Forbidden.RAM"),
        ("CniCreateENIError", "CniCreateENIError: Throttling.User", "TerwayPodENIController", "Throttling"),
        ("ENIAttachFailed", "ENI eni-1 attach failed: ErrorCode: InvalidAccessKeyId.NotFound", "multi-ip-node",
         "InvalidAccessKeyId.NotFound"),
        # Generic daemon words count through the daemon's component only.
        ("ParseFailed", "Parse ingress bandwidth 10X failed.", "terway-daemon", "other"),
        ("ParseFailed", "cannot parse the manifest", "helm-controller", None),
    ],
)
def test_terway_events_of_v116_and_v117(reason, message, component, expected):
    assert network_error_code(reason, message, component) == expected


def test_reasons_are_ones_terway_records():
    # Condition reasons are not event reasons (InsufficientIP is a Node/Nic condition reason in Terway).
    assert "InsufficientIP" not in TERWAY_REASONS
    assert {"PodCreateFailed", "CniPodCreateError", "UpdatePodENIFailed", "DetachENIFailed",
            "DeletePodENIFailed", "CniCreateENIError", "PrefixModeImmutable"} <= TERWAY_REASONS
