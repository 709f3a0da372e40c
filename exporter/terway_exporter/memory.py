"""Give the heap that large, short-lived allocations freed back to the operating system.

The first full list of the cluster and each ENI census parse hundreds of MB of JSON that is
freed moments later; glibc keeps most of those pages (in the main heap and in the arenas of
the threads that parsed) for reuse, so the process would sit at its start-up peak for good.
`malloc_trim(0)` returns every free page of every arena. Other C libraries (musl) lack it:
then this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()  # looked up once; a constant, not state


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; False when the C library cannot (not glibc).

    ctypes releases the GIL for the call, so run it in a worker thread: it walks the whole heap.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
