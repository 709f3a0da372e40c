"""Returning freed heap to the OS after large, short-lived allocations (glibc's malloc_trim)."""

from __future__ import annotations

import re

from terway_exporter.memory import release_freed_memory


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


def test_freed_pages_held_by_glibc_go_back_to_the_os():
    # Objects over 512 bytes come from malloc, not pymalloc: sized like a parsed list page's strings.
    kept = [bytes(2000) + str(i).encode() for i in range(40_000)]
    pin = bytes(4000)  # a live block above them, so free() alone cannot shrink the heap
    before = rss_mb()
    kept.clear()
    freed = rss_mb()
    assert release_freed_memory() is True  # the test image runs glibc
    after = rss_mb()
    assert before - freed < 20, "free() alone should keep the pages: nothing to test otherwise"
    assert freed - after > 50
    assert len(pin) == 4000
