"""One token bucket for every cloud API call the exporter makes.

Terway's own daemons and controlplane share the account's per-API throttling
quota with us, so the exporter paces itself: at most `rate` requests per second,
all APIs together, with a burst of one (requests are spread evenly, never
bunched). After a throttling error the rate halves for a cool-down and then
recovers by doubling once per cool-down, so a throttled account sees less of the
exporter exactly when it matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """An asyncio token bucket with multiplicative back-off on throttling.

    Waiters are served in arrival order (one asyncio.Lock); `acquire` returns the
    seconds the caller waited, which the client adds to the wait counter.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        cooldown: float = 60.0,
        min_fraction: float = 1 / 16,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.base_rate = rate
        self.rate = rate
        self._burst = max(burst, 1.0)
        self._cooldown = cooldown
        self._min_rate = rate * min_fraction
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._burst
        self._updated = clock()
        self._slow_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for one token; return the seconds spent waiting."""
        start = self._clock()
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return self._clock() - start
                await self._sleep((1.0 - self._tokens) / self.rate)

    def penalize(self) -> None:
        """The cloud throttled us: halve the rate (down to a floor) for a cool-down."""
        self._refill()
        self.rate = max(self.rate / 2, self._min_rate)
        self._tokens = min(self._tokens, 0.0)  # no burst right after a throttle
        self._slow_until = self._clock() + self._cooldown

    def _refill(self) -> None:
        now = self._clock()
        if self.rate < self.base_rate and now >= self._slow_until:
            # Recover gradually: double once per quiet cool-down.
            self.rate = min(self.base_rate, self.rate * 2)
            self._slow_until = now + self._cooldown
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
