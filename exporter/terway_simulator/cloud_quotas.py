"""Quota Center (quotas, 2020-05-10) GetProductQuota for the ECS ENI quota.

The legacy SDK sends it as a POST with a form body: ProductCode=ecs,
QuotaActionCode=q_elastic-network-interfaces, Dimensions.1.Key=regionId, Dimensions.1.Value=<region>.
The reference
(https://www.alibabacloud.com/help/id/quota-center/developer-reference/api-quotas-2020-05-10-getproductquota)
says ECS quotas take dimensions and that `Dimensions.N.Key` and `Dimensions.N.Value` must be set
together: a Key without its Value is refused like a missing dimension. TotalQuota and TotalUsage
are numbers (floats) here, unlike DescribeAccountAttributes' string Value. Error codes are Quota
Center's own upper-case ones (QUOTA.NOT.FOUND, QUOTA.DIMENSION.MISS, MissingProductCode); their
exact wording and HTTP statuses are **unverified**.
"""

from __future__ import annotations

import re
from typing import Any

from .cloud_http import ApiError
from .cloud_vpc import OWNER_ID
from .world import World

ENI_QUOTA = ("ecs", "q_elastic-network-interfaces")


def dimensions(params: dict[str, str]) -> dict[str, str]:
    keys = {int(m.group(1)): v for k, v in params.items() if (m := re.match(r"Dimensions\.(\d+)\.Key$", k))}
    return {key: params.get(f"Dimensions.{n}.Value", "") for n, key in sorted(keys.items())}


def get_product_quota(world: World, params: dict[str, str]) -> dict[str, Any]:
    product = params.get("ProductCode", "")
    if not product:
        raise ApiError("MissingProductCode")
    if (product, params.get("QuotaActionCode", "")) != ENI_QUOTA:
        raise ApiError("QUOTA.NOT.FOUND")
    dims = dimensions(params)
    region = dims.get("regionId")
    if not region or not all(dims.values()):
        raise ApiError("QUOTA.DIMENSION.MISS")
    usage = world.quota_usage() if region == world.region_id else 0
    return {"Quota": {
        "ProductCode": "ecs", "QuotaActionCode": ENI_QUOTA[1], "QuotaName": "Maximum number of ENIs",
        "QuotaDescription": "The maximum number of elastic network interfaces (ENIs) in a region.",
        "QuotaArn": f"acs:quotas:{region}:{OWNER_ID}:quota/ecs/{ENI_QUOTA[1]}",
        "QuotaType": "CommonQuota", "QuotaUnit": "", "Dimensions": {"regionId": region},
        "TotalQuota": float(world.eni_quota), "TotalUsage": float(usage),
        "Adjustable": True, "Consumable": True, "GlobalQuota": False, "ApplicableType": "continuous",
        "ApplicableRange": [], "UnadjustableDetail": "", "QuotaItems": [], "Period": None,
        "UsageMetric": {}, "EffectiveTime": None, "ExpireTime": None, "QuotaCategory": "CommonQuota",
    }}
