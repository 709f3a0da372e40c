"""Is a string shaped like the Alibaba Cloud ID it claims to be? Checked before it goes into a request.

IDs reach the cloud source from the cluster (eni-config, dynamic configs, Node CRs, PodNetworkings),
which anyone with write access can fill with anything: a 70 KB "vSwitch ID" once pushed a request
URL past 8 KB and made every vSwitch stale. An ID that is not shaped like one cannot exist, so it is
answered as missing without a call (the configuration checks then name it), and never sent.

Shapes, from the IDs the official API references show (`vsw-bp1s5fnvk4gn2tws03****`,
`sg-bp67acfmxazb4ph****`, `vpc-bp15zckdt37pq72zv****`, `ecs.g7.large`, region `cn-hangzhou`):
a prefix and up to 64 letters and digits; instance types `ecs.` then letters, digits, dots and
dashes. The bounds are generous on purpose: only what cannot be an ID is refused. The references
show lowercase only, but nothing documents that as a rule, and calling a real vSwitch "not found"
would page, so uppercase letters are let through.
"""

from __future__ import annotations

import re

_PATTERNS = {
    "vswitch": re.compile(r"vsw-[0-9a-zA-Z]{1,64}"),
    "security_group": re.compile(r"sg-[0-9a-zA-Z]{1,64}"),
    "vpc": re.compile(r"vpc-[0-9a-zA-Z]{1,64}"),
    "instance_type": re.compile(r"ecs\.[0-9a-z][0-9a-z.\-]{0,63}"),
    "region": re.compile(r"[a-z]{2,10}(?:-[a-z0-9]{1,20}){1,4}"),
}


def well_formed(kind: str, value: str) -> bool:
    """Whether `value` can be an ID of `kind` (vswitch, security_group, vpc, instance_type, region)."""
    return _PATTERNS[kind].fullmatch(value) is not None


def shown(value: str) -> str:
    """A malformed ID as a log line may show it: its start and its length."""
    return f"{value[:40]!r}{'...' if len(value) > 40 else ''} ({len(value)} characters)"
