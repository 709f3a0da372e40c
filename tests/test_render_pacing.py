"""Render pacing follows the CPU a render took in its thread, not its wall time.

The pause after a render is 30x what the render took (capped at 10 s), to keep rendering near 3% of
a core. Counted in wall time, a render that spent most of its time waiting for a CPU (a pod at its CPU
limit, a busy node; the chaos soak saw 2.1 s of wall time for 0.14 s of CPU at a load of 20 on 2 cores)
paused the loop at the cap: source_up and every metric served up to 10 s late.
"""

from __future__ import annotations

import time

from terway_exporter.runtime import Runtime


class _Waiting:
    def _render(self, state, version, tick):
        time.sleep(0.3)  # off the CPU, as a render starved of one is
        return "exposition", b"page"


class _Computing:
    def _render(self, state, version, tick):
        deadline = time.thread_time() + 0.1
        while time.thread_time() < deadline:
            pass
        return "exposition", None


def test_time_off_the_cpu_does_not_count():
    exposition, page, took = Runtime._timed_render(_Waiting(), None, 1, 0)
    assert (exposition, page) == ("exposition", b"page")
    assert took < 0.05


def test_cpu_spent_rendering_counts():
    _, _, took = Runtime._timed_render(_Computing(), None, 1, 0)
    assert 0.09 <= took < 1.0
