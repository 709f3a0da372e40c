"""Memory: freed heap returned to the OS (glibc), malloc arenas, and what importing the exporter costs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from terway_exporter.memory import limit_malloc_arenas, release_freed_memory


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


ARENAS_PROGRAM = """
import ctypes, sys, threading
from terway_exporter.memory import limit_malloc_arenas

if sys.argv[1] == "limited":
    assert limit_malloc_arenas(env={}) is True
barrier = threading.Barrier(6)

def allocate():
    barrier.wait()  # all six threads allocate at once, so each would want an arena of its own
    blocks = [bytearray(1000 + i % 7) for i in range(20_000)]  # above pymalloc's 512 bytes: malloc's
    barrier.wait()
    del blocks

threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()  # glibc prints one "Arena N:" block per arena on stderr
"""


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run([sys.executable, "-c", ARENAS_PROGRAM, mode], capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return len(re.findall(r"^Arena \d+:", run.stderr, re.M))


def test_two_malloc_arenas_however_many_threads_allocate():
    assert arenas("default") > 2  # glibc's default: an arena per thread that contends (up to 8 per core)
    assert arenas("limited") <= 2


def test_an_arena_limit_from_the_environment_is_left_to_glibc():
    assert limit_malloc_arenas(env={"MALLOC_ARENA_MAX": "4"}) is False


def test_the_kubernetes_source_loads_no_generated_api_or_model_module():
    # The typed CoreV1Api and AppsV1Api import every model of their group (290 pydantic modules, 30 MB of RSS
    # with kubernetes 37); the source reads raw JSON through the ApiClient instead. A fresh interpreter, so
    # that no other test's import counts.
    code = """
import sys
from kubernetes.aio import client
from terway_exporter.runtime import Runtime  # everything serve imports
from terway_exporter.sources.kube.resources import RESOURCES, resource_specs
specs = resource_specs(client.ApiClient(client.Configuration()), "kube-system")
assert len(specs) == len(RESOURCES)
print("\\n".join(m for m in sys.modules if ".client.api." in m or ".client.models." in m))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == []


FREEZE_CHECK = """
import gc, weakref
from terway_exporter.memory import freeze_survivors

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

garbage = weakref.ref(cycle())  # a cycle nobody holds: only the cyclic collector frees it
kept = cycle()
freeze_survivors()
assert garbage() is None, "a garbage cycle is collected, not frozen"
frozen = gc.get_freeze_count()
assert frozen > 0, "the survivors are frozen"
gc.collect()
assert kept.other.other is kept, "a frozen object is not collected while it lives"
held = weakref.ref(kept)
del kept  # a frozen cycle that turns into garbage: the automatic runs skip it, the next freeze collects it
gc.collect()
assert held() is not None, "frozen: skipped by gc.collect"
freeze_survivors()
assert held() is None, "collected at the next freeze (unfreeze first), so nothing leaks across freezes"
print("ok", frozen)
"""


def test_survivors_are_frozen_and_a_cycle_frozen_then_dropped_is_collected_at_the_next_freeze():
    # A fresh interpreter: freezing pytest's own heap would change what other tests see.
    result = subprocess.run([sys.executable, "-c", FREEZE_CHECK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


GC_PAUSE_CHECK = """
import asyncio, gc, os, socket, time
from terway_exporter.config import resolve
from terway_exporter.runtime import Runtime

async def until(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)

async def serve(endpoint, env):
    flags = {"no_kubernetes": True, "region": "cn-hangzhou", "ecs_endpoint": endpoint, "vpc_endpoint": endpoint,
             "quotas_endpoint": endpoint, "log_level": "error"}
    runtime, stop = Runtime(resolve("serve", flags, env)), asyncio.Event()
    task = asyncio.create_task(runtime.serve("127.0.0.1", 0, stop=stop))
    return runtime, stop, task

async def main():
    # A cloud endpoint that accepts and never answers: the first sync stays incomplete.
    silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen(16)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIexample", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "example"}
    runtime, stop, task = await serve(f"127.0.0.1:{silent.getsockname()[1]}", env)
    await until(lambda: runtime.holder.current is not None, "a first render")
    assert not runtime.holder.current.complete and not gc.isenabled(), "paused while the first sync runs"
    stop.set(); await task
    assert gc.isenabled(), "a stop before the first sync was complete switches it back on"
    # No credentials: the cloud source fails at once, which completes the first sync.
    runtime, stop, task = await serve("127.0.0.1:9", {})
    await until(lambda: runtime.holder.current is not None and runtime.holder.current.complete, "a complete render")
    await until(gc.isenabled, "the collector back on after the complete render")
    assert gc.get_freeze_count() > 0, "the survivors frozen when it came back"
    stop.set(); await task
    print("ok")

asyncio.run(main())
"""


def test_the_cyclic_gc_is_paused_for_the_first_sync_only():
    result = subprocess.run([sys.executable, "-c", GC_PAUSE_CHECK], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_", "TERWAY_"))})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
