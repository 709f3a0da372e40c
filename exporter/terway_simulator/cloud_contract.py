"""Which request parameters the simulated cloud accepts, per action: only those the official API
reference documents (see docs/api-contract.md for the sources, one per action).

Every parameter of a request falls in one of four groups:

- common: the RPC signature parameters every call carries (the "common request parameters" of
  https://www.alibabacloud.com/help/en/elastic-compute-service/latest/common-parameters), the STS
  `SecurityToken`, and two the legacy Python SDK (aliyun-python-sdk-core) adds by itself: `RegionId`
  (aliyunsdkcore/request.py, on every RPC request) and `SignatureType` (aliyunsdkcore/auth/composer/
  rpc_signature_composer.py);
- simulated: documented, and the simulator's answer honours it;
- ignored: documented, but without effect on the simulated answer (the account-identity parameters
  `OwnerId`, `OwnerAccount`, `ResourceOwnerId`, `ResourceOwnerAccount`; parameters the reference calls
  deprecated);
- unsupported: documented, but the simulator does not model it. Answered with
  `Simulator.UnsupportedParameter` (HTTP 400), a code of the simulator's own: answering as if the
  filter were not there would be a wrong answer, not the real one.

Anything else is not documented for that action, and is refused with `InvalidParameter` (HTTP 400)
naming the parameter. Whether the real gateway refuses or ignores unknown parameter names is
**unverified**; the simulator refuses so that a client relying on an undocumented form fails in tests.

Repeated parameters are checked by name and index: `InstanceTypes.N` with N from 1 to the documented
maximum, `Tag.N.Key`/`Tag.N.Value`, `Dimensions.N.Key`/`Dimensions.N.Value`. An index above the
documented maximum is refused with `InvalidParameter` (the exact code is **unverified**).

An action without a contract here (e.g. DescribeInstances, which the exporter does not call) is not
checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .cloud_http import ApiError

# Signature and credential parameters (common request parameters, plus the STS token).
COMMON = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
    "SignatureNonce", "Timestamp", "SecurityToken",
    # Added by the SDK, not by the caller: aliyunsdkcore/request.py sets RegionId on every RPC request
    # (also where an action's reference does not list it); auth/composer/rpc_signature_composer.py sets
    # SignatureType.
    "RegionId", "SignatureType",
})
ACCOUNT_IDENTITY = frozenset({"OwnerId", "OwnerAccount", "ResourceOwnerId", "ResourceOwnerAccount"})
UNSUPPORTED = "Simulator.UnsupportedParameter"

_INDEXED = re.compile(r"^([A-Za-z0-9]+)\.(\d+)(?:\.([A-Za-z0-9]+))?$")


@dataclass(frozen=True)
class Contract:
    """The documented parameters of one action, split by what the simulator does with them.

    `lists` and `maps` hold repeated parameters: name -> documented maximum N (None: the reference
    gives no maximum). `maps` entries also name their fields (`Tag.N.Key`, `Tag.N.Value`).
    """

    simulated: frozenset[str] = frozenset()
    ignored: frozenset[str] = ACCOUNT_IDENTITY
    unsupported: frozenset[str] = frozenset()
    lists: dict[str, int | None] = field(default_factory=dict)
    maps: dict[str, tuple[int | None, frozenset[str]]] = field(default_factory=dict)
    unsupported_repeated: frozenset[str] = frozenset()  # names in lists/maps the simulator does not model

    def check(self, params: dict[str, str]) -> None:
        """Raise the error the simulator answers for the first undocumented or unsupported parameter."""
        for name in sorted(params):
            if name in COMMON or name in self.simulated or name in self.ignored:
                continue
            if name in self.unsupported:
                raise _unsupported(name)
            match = _INDEXED.match(name)
            if match is None:
                raise _undocumented(name)
            base, index, sub = match.group(1), int(match.group(2)), match.group(3)
            if sub is None and base in self.lists:
                limit = self.lists[base]
            elif sub is not None and base in self.maps and sub in self.maps[base][1]:
                limit = self.maps[base][0]
            else:
                raise _undocumented(name)
            if index < 1 or (limit is not None and index > limit):
                raise ApiError("InvalidParameter", message=(
                    f"The specified parameter {name} is not valid: {base}.N takes N from 1 to {limit}."))
            if base in self.unsupported_repeated:
                raise _unsupported(name)


def _undocumented(name: str) -> ApiError:
    return ApiError("InvalidParameter", message=(
        f"The specified parameter {name} is not valid: the API reference does not document it for this action."))


def _unsupported(name: str) -> ApiError:
    return ApiError(UNSUPPORTED, message=(
        f"The parameter {name} is documented for this action but the simulated cloud does not model it."))


_TAG = (20, frozenset({"Key", "Value"}))

# VPC 2016-04-28 DescribeVSwitches.
VPC_DESCRIBE_VSWITCHES = Contract(
    simulated=frozenset({"RegionId", "VpcId", "VSwitchId", "ZoneId", "VSwitchName", "PageNumber", "PageSize"}),
    unsupported=frozenset({"DryRun", "EnableIpv6", "IsDefault", "ResourceGroupId", "RouteTableId",
                           "VSwitchOwnerId"}),
    maps={"Tag": _TAG}, unsupported_repeated=frozenset({"Tag"}),
)
# ECS 2014-05-26 DescribeVSwitches: the deprecated twin; documents fewer parameters (no VSwitchName).
ECS_DESCRIBE_VSWITCHES = Contract(
    simulated=frozenset({"RegionId", "VpcId", "VSwitchId", "ZoneId", "PageNumber", "PageSize"}),
    unsupported=frozenset({"IsDefault"}),
)
DESCRIBE_NETWORK_INTERFACES = Contract(
    simulated=frozenset({"RegionId", "VpcId", "VSwitchId", "InstanceId", "Status", "Type", "PrimaryIpAddress",
                         "SecurityGroupId", "MaxResults", "NextToken", "PageNumber", "PageSize"}),
    unsupported=frozenset({"NetworkInterfaceName", "ResourceGroupId", "ServiceManaged"}),
    lists={"NetworkInterfaceId": 100, "PrivateIpAddress": 100, "Ipv6Address": 100},
    maps={"Tag": _TAG}, unsupported_repeated=frozenset({"Ipv6Address"}),
)
DESCRIBE_INSTANCE_TYPES = Contract(
    simulated=frozenset({"InstanceTypeFamily", "MaxResults", "NextToken"}),
    unsupported=frozenset({
        "CpuArchitecture", "GPUSpec", "InstanceCategory", "InstanceFamilyLevel", "LocalStorageCategory",
        "MaximumCpuCoreCount", "MaximumCpuSpeedFrequency", "MaximumCpuTurboFrequency", "MaximumGPUAmount",
        "MaximumMemorySize", "MinimumBaselineCredit", "MinimumCpuCoreCount", "MinimumCpuSpeedFrequency",
        "MinimumCpuTurboFrequency", "MinimumDiskQuantity", "MinimumEniIpv6AddressQuantity",
        "MinimumEniPrivateIpAddressQuantity", "MinimumEniQuantity", "MinimumEriQuantity", "MinimumGPUAmount",
        "MinimumInitialCredit", "MinimumInstanceBandwidthRx", "MinimumInstanceBandwidthTx",
        "MinimumInstancePpsRx", "MinimumInstancePpsTx", "MinimumLocalStorageAmount",
        "MinimumLocalStorageCapacity", "MinimumMemorySize", "MinimumPrimaryEniQueueNumber",
        "MinimumQueuePairNumber", "MinimumSecondaryEniQueueNumber", "NvmeSupport", "PhysicalProcessorModel",
    }),
    lists={"InstanceTypes": 10, "AdditionalAttributes": None, "CpuArchitectures": 2, "GpuSpecs": 10,
           "InstanceCategories": 10, "InstanceTypeFamilies": 10, "LocalStorageCategories": 2,
           "PhysicalProcessorModels": 10},
    unsupported_repeated=frozenset({"AdditionalAttributes", "CpuArchitectures", "GpuSpecs", "InstanceCategories",
                                    "InstanceTypeFamilies", "LocalStorageCategories", "PhysicalProcessorModels"}),
)
DESCRIBE_SECURITY_GROUPS = Contract(
    simulated=frozenset({"RegionId", "SecurityGroupIds", "SecurityGroupId", "VpcId", "SecurityGroupName",
                         "MaxResults", "NextToken", "PageNumber", "PageSize"}),
    ignored=ACCOUNT_IDENTITY | {"FuzzyQuery", "IsQueryEcsCount"},  # both deprecated per the reference
    unsupported=frozenset({"DryRun", "NetworkType", "ResourceGroupId", "SecurityGroupType", "ServiceManaged"}),
    maps={"Tag": _TAG}, unsupported_repeated=frozenset({"Tag"}),
)
DESCRIBE_ACCOUNT_ATTRIBUTES = Contract(
    simulated=frozenset({"RegionId", "ZoneId"}),
    lists={"AttributeName": 8},
)
GET_PRODUCT_QUOTA = Contract(
    simulated=frozenset({"ProductCode", "QuotaActionCode"}),
    ignored=frozenset(),
    # "The value range of N varies based on the number of dimensions" the service supports: no fixed maximum.
    maps={"Dimensions": (None, frozenset({"Key", "Value"}))},
)

# (Version, Action) -> contract.
CONTRACTS: dict[tuple[str, str], Contract] = {
    ("2016-04-28", "DescribeVSwitches"): VPC_DESCRIBE_VSWITCHES,
    ("2014-05-26", "DescribeVSwitches"): ECS_DESCRIBE_VSWITCHES,
    ("2014-05-26", "DescribeNetworkInterfaces"): DESCRIBE_NETWORK_INTERFACES,
    ("2014-05-26", "DescribeInstanceTypes"): DESCRIBE_INSTANCE_TYPES,
    ("2014-05-26", "DescribeSecurityGroups"): DESCRIBE_SECURITY_GROUPS,
    ("2014-05-26", "DescribeAccountAttributes"): DESCRIBE_ACCOUNT_ATTRIBUTES,
    ("2020-05-10", "GetProductQuota"): GET_PRODUCT_QUOTA,
}


def check_documented(params: dict[str, str]) -> None:
    """Refuse a request whose parameters its action's reference does not document (see the module doc)."""
    contract = CONTRACTS.get((params.get("Version", ""), params.get("Action", "")))
    if contract is not None:
        contract.check(params)
