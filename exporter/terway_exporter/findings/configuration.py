"""Configuration: the configuration checks (checks/config.py) the alerts group by kind."""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .model import Evidence

REFERENCE_CHECKS = ("vswitch_not_found", "vswitch_other_vpc", "security_group_not_found")
# Checks with an alert of their own, left out of TerwayConfigInvalid.
OWN_ALERT_CHECKS = (*REFERENCE_CHECKS, "zone_without_vswitch", "service_cidr_mismatch")


def _problems(ctx: Context, wanted: Callable[[str], bool]) -> list[Evidence]:
    return [Evidence(p.object, f"{p.check}: {p.message}", label=p.check)
            for p in sorted(ctx.problems, key=lambda p: (p.check, p.object)) if wanted(p.check)]


def invalid_reference(ctx: Context) -> list[Evidence]:
    """terway_config_problems for the reference checks, or terway_security_group_exists == 0."""
    found = _problems(ctx, lambda check: check in REFERENCE_CHECKS)
    listed = {e.object for e in found}
    for sg in sorted(ctx.cloud.missing_security_groups):
        if sg not in listed:
            found.append(Evidence(sg, f"security_group_not_found: security group {sg} does not exist "
                                      "(DescribeSecurityGroups)", label="security_group_not_found"))
    return found


def invalid(ctx: Context) -> list[Evidence]:
    return _problems(ctx, lambda check: check not in OWN_ALERT_CHECKS)


def service_cidr(ctx: Context) -> list[Evidence]:
    return _problems(ctx, lambda check: check == "service_cidr_mismatch")


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayConfigInvalidReference": invalid_reference,
    "TerwayConfigInvalid": invalid,
    "TerwayServiceCIDRMismatch": service_cidr,
}
