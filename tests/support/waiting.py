"""Waiting on a condition, never on the clock: the suite's one way to wait for something to happen.

A test that needs a server up, a watch open or a snapshot updated polls the condition until it
holds, with a deadline that is a bound (a hung test fails), not a timing expectation. A predicate
that raises one of `ignore` (by default OSError, as a server not yet listening refuses, and ValueError,
as a half-written answer does not parse) counts as "not yet".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
NOT_YET: tuple[type[BaseException], ...] = (OSError, ValueError)


def _timed_out(what: str | Callable[[], str], timeout: float, last_error: BaseException | None) -> TimeoutError:
    described = what() if callable(what) else what
    return TimeoutError(f"timed out after {timeout:g} s waiting for {described}"
                        + (f" (last error: {last_error!r})" if last_error else ""))


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str],
               interval: float = 0.25, ignore: tuple[type[BaseException], ...] = NOT_YET) -> T:
    """Call `predicate` until it returns something true, and return that; TimeoutError after `timeout` s.
    `what` names the condition (a callable is asked on timeout, to describe the state then)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as err:
            last_error = err
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, last_error)
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], T | Awaitable[T]], timeout: float,
                           what: str | Callable[[], str], interval: float = 0.02,
                           ignore: tuple[type[BaseException], ...] = NOT_YET) -> T:
    """`wait_until` for a test on an event loop: the loop runs between polls; `predicate` may be a coroutine
    function."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value: Any = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except ignore as err:
            last_error = err
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, last_error)
        await asyncio.sleep(interval)
