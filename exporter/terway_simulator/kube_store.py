"""The simulated API server's storage: resourceVersions, the watch event log, compaction.

Like etcd behind a real API server there is one global resourceVersion counter; every
change to any object takes the next value. The store keeps each object's content with
the version it was last changed at, and a log of recent changes for watches to replay.
Changes older than the compaction window are dropped; a watch that asks for them gets
410 Gone ("Expired"), which is what makes clients relist.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# A watcher whose queue grows past this is cut off, as the API server drops a watcher whose channel is full.
MAX_WATCH_BACKLOG = 100_000


@dataclass(frozen=True)
class ResourceKind:
    """One REST resource: where it lives in the URL space and what a selector may ask of it."""

    plural: str
    kind: str
    group: str = ""  # "" for the core group
    version: str = "v1"
    namespaced: bool = True
    fields: frozenset[str] = frozenset()  # field selectors beyond metadata.name / metadata.namespace

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def supported_fields(self) -> frozenset[str]:
        base = {"metadata.name"} | ({"metadata.namespace"} if self.namespaced else set())
        return frozenset(base) | self.fields

    @property
    def resource_label(self) -> str:
        """How the real server names the resource in selector errors: "/v1, Resource=pods"."""
        return f"{self.group}/{self.version}, Resource={self.plural}"


@dataclass
class WatchEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]  # with metadata.resourceVersion set
    prev: dict[str, Any] | None = None  # the object before a MODIFIED, for selector transitions
    at: float = field(default_factory=time.monotonic)


def with_rv(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    """A shallow copy of `obj` carrying resourceVersion `rv` (stored contents are never mutated)."""
    out = dict(obj)
    out["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(rv)}
    return out


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


class Expired(Exception):
    """A resourceVersion or continue token older than the compaction window (410 Gone)."""


class VersionedStore:
    """Objects per resource with resourceVersions, a bounded change log, and watch fan-out."""

    def __init__(self, compaction_seconds: float = 300.0, max_log: int = 200_000) -> None:
        # Start from the wall clock in milliseconds: a restarted simulator (new store) never hands out a
        # version an old client already holds, so resuming across a restart yields 410, never silent gaps.
        self.rv = int(time.time() * 1000)
        self.compacted_rv = self.rv
        self.compaction_seconds = compaction_seconds
        self.max_log = max_log
        self._objects: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
        self._sorted: dict[str, list[str] | None] = {}
        self._log: deque[tuple[str, WatchEvent]] = deque()
        self._watchers: dict[str, set[asyncio.Queue]] = {}

    # ------------------------------------------------------------------ writing

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def replace(self, resource: str, objects: Iterable[dict[str, Any]], scope: set[str] | None = None) -> int:
        """Make `objects` the resource's content (only keys in `scope`, if given); emit the differences."""
        current = self._objects.setdefault(resource, {})
        new = {object_key(o): o for o in objects}
        changes = 0
        keys = set(current) | set(new) if scope is None else scope
        for key in sorted(keys):
            old, obj = current.get(key), new.get(key)
            if obj is None and old is not None:
                rv = self.next_rv()
                del current[key]
                self._emit(resource, WatchEvent(rv, "DELETED", with_rv(old[1], rv)))
            elif obj is not None and old is None:
                rv = self.next_rv()
                current[key] = (rv, obj)
                self._emit(resource, WatchEvent(rv, "ADDED", with_rv(obj, rv)))
            elif obj is not None and old is not None and obj != old[1]:
                rv = self.next_rv()
                current[key] = (rv, obj)
                self._emit(resource, WatchEvent(rv, "MODIFIED", with_rv(obj, rv), with_rv(old[1], rv)))
            else:
                continue
            changes += 1
        if changes:
            self._sorted[resource] = None
        return changes

    def emit_external(self, resource: str, type_: str, obj: dict[str, Any], prev: dict[str, Any] | None = None) -> int:
        """Record a change to an object the store does not hold (lazily generated pods); returns its rv."""
        rv = self.next_rv()
        self._emit(resource, WatchEvent(rv, type_, with_rv(obj, rv), prev and with_rv(prev, rv)))
        return rv

    def _emit(self, resource: str, event: WatchEvent) -> None:
        self._log.append((resource, event))
        self._trim()
        for queue in list(self._watchers.get(resource, ())):
            queue.put_nowait(event)

    def _trim(self) -> None:
        horizon = time.monotonic() - self.compaction_seconds
        while self._log and (len(self._log) > self.max_log or self._log[0][1].at < horizon):
            self.compacted_rv = self._log.popleft()[1].rv

    def compact(self) -> int:
        """Drop the whole change log, as etcd compaction does; watches from older versions get 410."""
        self._log.clear()
        self.compacted_rv = self.rv
        return self.compacted_rv

    # ------------------------------------------------------------------ reading

    def has(self, resource: str) -> bool:
        return resource in self._objects

    def items(self, resource: str) -> Iterator[dict[str, Any]]:
        """Objects in key order (as etcd returns them), each with its resourceVersion."""
        current = self._objects.get(resource, {})
        keys = self._sorted.get(resource)
        if keys is None:
            keys = self._sorted[resource] = sorted(current)
        for key in keys:
            entry = current.get(key)
            if entry is not None:
                yield with_rv(entry[1], entry[0])

    def get(self, resource: str, key: str) -> dict[str, Any] | None:
        entry = self._objects.get(resource, {}).get(key)
        return None if entry is None else with_rv(entry[1], entry[0])

    def count(self, resource: str) -> int:
        return len(self._objects.get(resource, {}))

    def events_since(self, resource: str, rv: int) -> list[WatchEvent]:
        self._trim()
        if rv < self.compacted_rv:
            raise Expired(f"too old resource version: {rv} ({self.compacted_rv + 1})")
        return [ev for res, ev in self._log if res == resource and ev.rv > rv]

    def subscribe(self, resource: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.setdefault(resource, set()).add(queue)
        return queue

    def unsubscribe(self, resource: str, queue: asyncio.Queue) -> None:
        self._watchers.get(resource, set()).discard(queue)

    def watcher_count(self) -> int:
        return sum(len(q) for q in self._watchers.values())


# --------------------------------------------------------------------------- continue tokens


def encode_continue(rv: int, start: int) -> str:
    """The real server's token is base64 JSON {"v", "rv", "start"}; ours keeps a position instead of a key."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": str(start)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(raw["rv"]), int(raw["start"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError("continue key is not valid: "
                         "incorrect encoded start resourceVersion (version meta.k8s.io/v1)") from err
