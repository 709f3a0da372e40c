"""A clock the test moves: for code that takes a `clock` (and a `sleep`), so that expiries, TTLs and
rate windows pass without the test waiting for them."""

from __future__ import annotations

import asyncio


class ManualClock:
    """Time that moves only when told (`advance`) or when the code under test sleeps through `sleep`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Let the other tasks run (as a real sleep does), then move on by `seconds`. Tests pick durations
        exact in binary (1/4, 1/16 s): a sum of inexact ones may never reach what the code waits for."""
        await asyncio.sleep(0)
        self.now += seconds
