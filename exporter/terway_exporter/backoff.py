"""The one retry delay: exponential backoff with "equal jitter".

Used by the cloud client between attempts of a call, by the Kubernetes reflectors between list or
watch failures, and by the Kubernetes source when its client cannot even be configured. The delay
doubles per failure from `initial`, is capped at `maximum`, and is then drawn from [delay/2, delay):
retries of many parallel calls or watches spread out instead of arriving together, and the wait
never exceeds the cap ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015:
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 30  # 2**30 times any initial delay is past every cap; avoids huge floats


def backoff_delay(failures: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
    delay = min(maximum, initial * 2 ** min(max(failures, 1) - 1, _MAX_DOUBLINGS))
    return delay / 2 + (rng or random).random() * delay / 2
