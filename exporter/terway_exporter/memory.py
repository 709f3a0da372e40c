"""Give the heap that large, short-lived allocations freed back to the operating system, keep glibc
from spreading it over many arenas, and keep the cyclic garbage collector off the long-lived heap
(`pause_cyclic_gc`, `resume_cyclic_gc`, `freeze_survivors`: see their docstrings).

The first full list of the cluster and each ENI census parse hundreds of MB of JSON that is
freed moments later; glibc keeps most of those pages (in the main heap and in the arenas of
the threads that parsed) for reuse, so the process would sit at its start-up peak for good.
`malloc_trim(0)` returns every free page of every arena. Other C libraries (musl) lack it:
then this does nothing.

glibc gives each thread that allocates its own arena, up to 8 per core: the render thread, the cloud
SDK's worker and asyncio's default executor each kept a heap of their own, whose freed pages are
fragmented apart from the main one. At 5,000 nodes two arenas instead of one per thread lowered the
exporter's steady RSS from 215 to 188 MB and its peak from 225 to 195 MB (bench/run.py's scale scenario,
MALLOC_ARENA_MAX=2, one run each, docs/performance.md). `limit_malloc_arenas` sets the same limit with
mallopt(M_ARENA_MAX) at start, before any thread; the environment variable, when set, wins (glibc reads
it itself).
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable, Mapping


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()  # looked up once; a constant, not state
M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS, env: Mapping[str, str] | None = None) -> bool:
    """Limit glibc to `arenas` malloc arenas (call before starting threads); False when not glibc, or when
    MALLOC_ARENA_MAX in the environment already says how many (the operator's choice stays)."""
    if (os.environ if env is None else env).get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1


def release_freed_memory() -> bool:
    """Return free heap pages to the OS; False when the C library cannot (not glibc).

    ctypes releases the GIL for the call, so run it in a worker thread: it walks the whole heap.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def freeze_survivors() -> None:
    """Collect every garbage cycle, then move every live object to the collector's permanent generation, which
    its automatic runs skip (`gc.freeze`).

    After a first list or a census most of the heap is long-lived projections, and each automatic run of the
    oldest generation walked all of it: at 10,000 nodes 28 such runs of about 0.2 s each in the first minute,
    6 s of CPU that starved the lists and renders (docs/performance.md). Objects created after a freeze are
    collected as usual, and frozen ones are still freed by reference counting when dropped. `gc.unfreeze` first:
    a cycle that was alive at the last freeze and is garbage now is collected here, so nothing leaks across
    freezes. One full collection per large change (the callers'), holding the GIL for its duration.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def pause_cyclic_gc() -> bool:
    """Switch the cyclic collector's automatic runs off for the first sync; True when this switched them off
    (False when they already were: the embedding program's choice stays).

    The first lists parse the whole cluster into long-lived projections: JSON is acyclic and freed by reference
    counting, but every list page triggers the collector, and each run of its oldest generation walks the growing
    heap again (at 10,000 nodes about 3 s of the start's 10 s of CPU, most of it for nothing). The caller
    resumes them with `resume_cyclic_gc` once the first sync is complete, or after a bounded wait.
    """
    if not gc.isenabled():
        return False
    gc.disable()
    return True


def resume_cyclic_gc() -> None:
    """Collect what the pause left and freeze the survivors (`freeze_survivors`), then switch the automatic
    runs back on."""
    freeze_survivors()
    gc.enable()
