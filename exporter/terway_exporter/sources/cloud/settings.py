"""What the cloud source needs to know, built by the CLI from flags (see spec/cli.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """Settings of the Alibaba Cloud source.

    IDs given here (the flags) are merged with what the cluster names (terway/targets.py); region
    and VPC from here win over the cluster's. `instance_types` are looked up even when no node has
    them (`capacity`'s what-ifs). Endpoints are
    `host[:port]` (HTTPS) or a URL with a scheme; `None` means the public endpoint
    of the region.
    """

    region_id: str | None = None
    vpc_id: str | None = None
    vswitch_ids: frozenset[str] = frozenset()
    security_group_ids: frozenset[str] = frozenset()
    instance_types: frozenset[str] = frozenset()
    ecs_endpoint: str | None = None
    vpc_endpoint: str | None = None
    quotas_endpoint: str | None = None
    poll_interval: float = 60.0  # seconds between regular polls
    census_interval: float = 900.0  # seconds between full ENI listings
    api_rate: float = 5.0  # requests per second, all APIs together
    instance_type_ttl: float = 6 * 3600.0  # instance type limits change only with new types
    # a configured vSwitch outside the listed VPC is asked for by ID; its answer is reused this long
    vswitch_lookup_ttl: float = 900.0
    max_workers: int = 4  # threads running blocking SDK calls
    max_attempts: int = 4  # attempts per API call (first try included)
    retry_base_delay: float = 0.5  # seconds; doubled per retry, with jitter
    retry_max_delay: float = 10.0
    request_timeout: float = 10.0  # read timeout per HTTP request, seconds
    connect_timeout: float = 5.0
    throttle_cooldown: float = 60.0  # ECS throttles per minute: slow down for a minute

    def __post_init__(self) -> None:
        if self.api_rate <= 0:
            raise ValueError("api_rate must be positive")
        if self.max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.poll_interval <= 0 or self.census_interval <= 0:
            raise ValueError("poll and census intervals must be positive")
