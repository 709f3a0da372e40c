"""The one retry delay (backoff.py): doubles per failure, capped, equal jitter."""

import random

import pytest

from terway_exporter.backoff import backoff_delay


@pytest.mark.parametrize(("failures", "cap_reached"), [(1, False), (2, False), (4, False), (5, True), (60, True)])
def test_delay_doubles_from_the_initial_one_and_never_passes_the_cap(failures, cap_reached):
    rng = random.Random(7)
    delays = [backoff_delay(failures, 0.5, 8.0, rng) for _ in range(500)]
    full = 8.0 if cap_reached else 0.5 * 2 ** (failures - 1)
    assert all(full / 2 <= d < full for d in delays)
    assert max(delays) - min(delays) > full / 4  # jittered, not one value for every caller


def test_zero_failures_waits_like_the_first():
    assert backoff_delay(0, 1.0, 10.0, random.Random(1)) == backoff_delay(1, 1.0, 10.0, random.Random(1))
