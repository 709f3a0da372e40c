"""Fault injection for the simulated cloud APIs, from a scenario's `cloud.faults` mapping.

    cloud:
      faults:
        DescribeVSwitches: {code: Throttling.User, every: 2}      # every 2nd call fails
        DescribeNetworkInterfaces: {delay_seconds: 2}             # slow but successful
        GetProductQuota: {code: Forbidden.RAM}                    # every call fails
        "*": {max_rate: 5}                                        # all actions: 5 requests/s, then Throttling.User

A rule applies to one action, or to every action under the key `"*"` (an action's own rule
wins). Which calls fail is deterministic, so tests can assert exact sequences:

- `first_calls: N` only the first N calls; `after_calls: N` only calls after the Nth;
- `every: K` every Kth call (1 = all); `ratio: r` a fraction r, spread evenly (0.75 fails
  3 calls of every 4);
- with a `code` and no selector, every call fails;
- `max_rate: R`: more than R admitted requests within one second are answered with
  `rate_code` (default Throttling.User), like a real flow-control limit; under `"*"` the
  budget is shared by all actions (an account-wide limit), otherwise it is the action's own;
- `delay_seconds` delays each call the rule selects (every call when no code is set);
- `status` / `message` override the real HTTP status and Message of `code`.

Counting is per action and starts at 1 with the first call after the app starts or
after `POST /_sim/cloud/reset`.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from .cloud_http import ApiError, forbidden_ram

ALL_ACTIONS = "*"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaultRule:
    code: str = ""
    status: int = 0
    message: str = ""
    every: int = 0
    ratio: float = 0.0
    first_calls: int = 0
    after_calls: int = 0
    delay_seconds: float = 0.0
    max_rate: float = 0.0
    rate_code: str = "Throttling.User"

    def selects(self, n: int) -> bool:
        """Whether the nth call (1-based) is one this rule acts on."""
        if self.first_calls and n > self.first_calls:
            return False
        if self.after_calls and n <= self.after_calls:
            return False
        if self.every and n % self.every != 0:
            return False
        if self.ratio and math.floor(n * self.ratio) == math.floor((n - 1) * self.ratio):
            return False
        return True


@dataclass(frozen=True)
class FaultDecision:
    delay_seconds: float = 0.0
    error: ApiError | None = None


def parse_faults(cloud: dict[str, Any]) -> dict[str, FaultRule]:
    """Rules by action name from `cloud.faults`; raises ValueError naming the bad entry."""
    rules: dict[str, FaultRule] = {}
    for action, spec in (cloud.get("faults") or {}).items():
        if not isinstance(spec, dict):
            raise ValueError(f"cloud.faults.{action}: expected a mapping, got {spec!r}")
        unknown = set(spec) - set(FaultRule.__dataclass_fields__)
        if unknown:
            raise ValueError(f"cloud.faults.{action}: unknown keys {sorted(unknown)}")
        rules[str(action)] = FaultRule(**spec)
    return rules


class FaultInjector:
    """Per-app fault state: call numbers and recent admissions per action.

    The rules follow `cloud.faults` live: a scenario step may change them while the
    simulator runs (`follow`), and call numbering carries on across the change.
    """

    def __init__(self, rules: dict[str, FaultRule], source: Any = None) -> None:
        self.rules = rules
        self.source = copy.deepcopy(source)  # the `cloud.faults` value the rules were parsed from
        self.calls: dict[str, int] = {}
        self.admitted: dict[str, deque[float]] = {}

    def follow(self, cloud: dict[str, Any]) -> None:
        """Re-parse when `cloud.faults` changed; a bad change is logged once and ignored."""
        current = cloud.get("faults")
        if current == self.source:
            return
        self.source = copy.deepcopy(current)
        try:
            self.rules = parse_faults(cloud)
        except (TypeError, ValueError) as err:
            log.error("cloud.faults changed to something invalid, keeping the previous rules: %s", err)

    def reset(self) -> None:
        self.calls.clear()
        self.admitted.clear()

    def decide(self, action: str, ram_action: str, now: float) -> FaultDecision:
        own = self.rules.get(action)
        rule = own or self.rules.get(ALL_ACTIONS)
        if rule is None:
            return FaultDecision()
        n = self.calls.get(action, 0) + 1
        self.calls[action] = n
        budget_key = action if own else ALL_ACTIONS
        if rule.max_rate and not self._admit(budget_key, rule.max_rate, now):
            return FaultDecision(error=ApiError(rule.rate_code))
        if not rule.code:
            return FaultDecision(delay_seconds=rule.delay_seconds if rule.selects(n) else 0.0)
        if not rule.selects(n):
            return FaultDecision()
        return FaultDecision(delay_seconds=rule.delay_seconds, error=_error(rule, ram_action))

    def _admit(self, budget_key: str, max_rate: float, now: float) -> bool:
        window = self.admitted.setdefault(budget_key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= max_rate:
            return False
        window.append(now)
        return True


def _error(rule: FaultRule, ram_action: str) -> ApiError:
    if rule.code == "Forbidden.RAM" and not rule.message:
        err = forbidden_ram(ram_action)
        err.status = rule.status or err.status
        return err
    return ApiError(rule.code, status=rule.status, message=rule.message)
