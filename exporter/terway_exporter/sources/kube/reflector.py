"""A list-then-watch reflector: one resource mirrored into a store of projected objects.

The protocol is client-go's: list (paged with `limit`/`continue`), then watch from the
list's resourceVersion with bookmarks and a server-side timeout, resume from the last
resourceVersion seen when the watch ends, relist when the server says that version is
gone (HTTP 410, or an ERROR event with code 410), and back off with jitter when the API
server fails or is unreachable.

Responses are read raw (`*_without_preload_content`) and parsed with `json.loads`; the
watch stream is split into lines here, so a stream cut mid-line is seen as such: the
partial line is dropped and the watch resumes. Each object goes through the resource's
pure projection; one the projection cannot read is logged and skipped.

Every restart is counted in `terway_exporter_kube_watch_restarts_total{resource, reason}`
with a reason from a closed set (see RESTART_REASONS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp

from ...backoff import backoff_delay
from .fields import ProjectionError, namespaced_key

log = logging.getLogger(__name__)

T = TypeVar("T")

# Why a list or watch was started again (the `reason` label of the restart counter):
#   expired    the resourceVersion is too old (HTTP 410 Gone, or an ERROR event with code 410): full relist
#   not_found  the watch got 404: the resource is no longer served (a CRD deleted): full relist, which
#              finds it absent (legacy fallback for the Node CRD) or served again
#   silent     no event and no bookmark for `silence_timeout`: the API server is hung or the connection
#              is a black hole; the source is marked down and relists after the backoff
#   error      the API server failed, could not be reached, or sent a broken stream: back off, then resume
#   closed     the server ended the watch; normally its timeoutSeconds elapsed: resume at once
RESTART_REASONS = ("expired", "not_found", "silent", "error", "closed")

# A watch event larger than this is not a Kubernetes object (etcd's limit is 1.5 MiB).
MAX_LINE_BYTES = 16 * 1024 * 1024

ListCall = Callable[..., Awaitable[aiohttp.ClientResponse]]


@dataclass(frozen=True, slots=True)
class ResourceSpec(Generic[T]):
    """What to mirror: a raw list/watch call, a projection and a store key."""

    name: str  # e.g. "nodes": the `resource` label and the log prefix
    call: ListCall  # a bound `*_without_preload_content` list method, selectors already applied
    project: Callable[[dict[str, Any]], T | None]  # None: not kept (removed from the store)
    key: Callable[[dict[str, Any]], str] = namespaced_key
    optional: bool = False  # a CRD that may not be installed: 404 means "absent", re-checked later


@dataclass(frozen=True, slots=True)
class ReflectorSettings:
    page_size: int = 500
    watch_timeout: int = 300  # seconds the server keeps a watch open (timeoutSeconds)
    resync: float = 0.0  # seconds between full relists of a healthy watch; 0 = never
    absent_recheck: float = 300.0  # seconds between checks for a missing CRD
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    request_slack: float = 30.0  # client-side timeout of a watch = watch_timeout + this
    # The API server's watch cache sends a bookmark about every minute besides events
    # (defaultBookmarkFrequency in kubernetes staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go):
    # a watch silent for 2.5 of those periods is stale, not quiet.
    silence_timeout: float = 150.0
    list_timeout: float = 60.0  # client-side timeout of one list page


@dataclass(slots=True)
class ReflectorStatus:
    attempted: bool = False  # a first list was tried
    synced: bool = False  # a list succeeded at least once
    up: bool = False
    last_success: float | None = None
    last_duration: float | None = None
    error: str = ""


class Expired(Exception):
    """The resourceVersion (or continue token) is gone: relist from scratch."""


class ApiError(Exception):
    """A failed request or a broken stream; the message is one line, without credentials."""


class NotServed(Exception):
    """A watch got 404: the resource is gone from the server (its CRD was deleted)."""


class Silent(ApiError):
    """A watch sent nothing, not even a bookmark, for longer than the silence timeout."""


@dataclass
class Reflector(Generic[T]):
    """Mirrors one resource into `items` (store key -> projection) until cancelled.

    `on_change` is called after every change of `items` (or of `absent`) and of
    `status`; `observe(key, old, new)` sees every single store change, for consumers
    that need increments rather than state (the event tally).
    """

    spec: ResourceSpec[T]
    settings: ReflectorSettings
    count_restart: Callable[[str, str], None]
    on_change: Callable[[Reflector[T]], None] = lambda r: None
    observe: Callable[[str, T | None, T | None], None] | None = None
    items: dict[str, T] = field(default_factory=dict)
    absent: bool = False  # the resource does not exist on the server (CRD not installed)
    status: ReflectorStatus = field(default_factory=ReflectorStatus)
    resource_version: str = ""
    generation: int = 0  # bumped on every change of `items` or `absent`
    _rng: random.Random = field(default_factory=random.Random)
    _connected_at: float | None = None  # when the current watch was answered (monotonic); None: not yet

    @property
    def name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """List, then watch and resume forever; never raises except CancelledError."""
        failures, expired_streak = 0, 0
        need_list, listed_at = True, 0.0
        delay = 0.0
        while True:
            try:
                if need_list:
                    await self.sync()
                    need_list, listed_at, failures = False, time.monotonic(), 0
                    if self.absent:
                        await asyncio.sleep(self.settings.absent_recheck)
                        need_list = True
                        continue
                await self._watch()
                failures, expired_streak = 0, 0
                self.count_restart(self.name, "closed")
                resync = self.settings.resync
                need_list = bool(resync) and time.monotonic() - listed_at >= resync
            except Expired:
                self.count_restart(self.name, "expired")
                need_list = True
                expired_streak += 1
                if expired_streak > 1:  # a server that keeps answering 410: do not spin
                    await asyncio.sleep(self._backoff(expired_streak - 1))
            except NotServed:
                # Relist now: an optional resource then reads as absent (the store empties, the CRD is
                # re-checked later); a required one fails its list and backs off as any error does.
                self.count_restart(self.name, "not_found")
                log.warning("kubernetes %s: the watch got 404 (resource no longer served); relisting", self.name)
                need_list = True
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                silent = isinstance(err, Silent)
                self.count_restart(self.name, "silent" if silent else "error")
                need_list = need_list or silent  # what happened while the stream was silent is unknown
                if self._held_longer_than(delay):
                    failures = 0  # a watch that held after the last wait ended that run of failures
                self._connected_at = None  # a failing relist next is not a watch that held
                failures += 1
                delay = self._backoff(failures)
                self._failed(one_line(err))
                log.warning("kubernetes %s: %s; retrying in %.1f s", self.name, one_line(err), delay)
                await asyncio.sleep(delay)
            except Exception as err:  # a bug here must not stop the other resources: log it, retry
                self.count_restart(self.name, "error")
                failures += 1
                self._failed(f"internal error: {one_line(err)}")
                log.exception("kubernetes %s: unexpected failure; relisting", self.name)
                need_list = True
                await asyncio.sleep(self._backoff(failures))

    async def sync(self) -> None:
        """One full list into the store (used by `run` and by one-shot collection)."""
        started = time.monotonic()
        try:
            found = await self._list_all()
        except (ApiError, Expired, aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            self.status.last_duration = time.monotonic() - started
            self._failed(one_line(err) if not isinstance(err, Expired) else "list continue token expired")
            raise
        finally:
            # "attempted" once the list ended, not when it began: readiness and the first
            # snapshot wait for it (a 5,000-node list takes seconds).
            self.status.attempted = True
        self.status.last_duration = time.monotonic() - started
        if found is None:
            if not self.absent:
                log.info("kubernetes %s: the resource is not served (CRD not installed); checking again later",
                         self.name)
            self.absent = True
            self._replace({})
        else:
            if self.absent:
                log.info("kubernetes %s: the resource is served now", self.name)
            self.absent = False
            self._replace(found)
        self._succeeded()

    # ------------------------------------------------------------------ list

    async def _list_all(self) -> dict[str, T] | None:
        """Every page of the list, projected; None when the resource is absent (optional 404)."""
        found: dict[str, T] = {}
        token: str | None = None
        while True:
            page = await self._request(limit=self.settings.page_size, _continue=token,
                                       _request_timeout=float(self.settings.list_timeout))
            if page is None:
                return None
            entries = page.get("items")
            if not isinstance(entries, list):
                raise ApiError(f"list response has no items list ({type(entries).__name__})")
            for raw in entries:
                self._project_into(found, raw)
            metadata = page.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            self.resource_version = str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or None
            if not token:
                return found

    async def _request(self, **params: Any) -> dict[str, Any] | None:
        response = await self.spec.call(**params)
        try:
            body = await response.read()
            if response.status == 404 and self.spec.optional:
                return None
            _raise_for_status(response.status, body)
            page = json.loads(body)
        finally:
            response.release()
        if not isinstance(page, dict):
            raise ApiError(f"list response is a {type(page).__name__}, not an object")
        return page

    # ------------------------------------------------------------------ watch

    async def _watch(self) -> None:
        """One watch from `resource_version` until the server ends it; raises on errors.

        The answer and every line after it must come within `silence_timeout` of the previous one
        (bookmarks count): otherwise Silent, and the source shows down instead of stale-but-up.
        """
        silence = self.settings.silence_timeout
        loop = asyncio.get_running_loop()
        self._connected_at = None
        try:
            async with asyncio.timeout(silence) as deadline:
                response = await self.spec.call(
                    watch=True, allow_watch_bookmarks=True, resource_version=self.resource_version or None,
                    timeout_seconds=self.settings.watch_timeout,
                    _request_timeout=float(self.settings.watch_timeout + self.settings.request_slack),
                )
                try:
                    if response.status == 404:
                        raise NotServed()
                    if response.status != 200:
                        _raise_for_status(response.status, await response.read())
                    self._connected_at = time.monotonic()
                    self._succeeded()
                    deadline.reschedule(loop.time() + silence)
                    async with contextlib.aclosing(ndjson_lines(response.content)) as lines:
                        async for line in lines:
                            deadline.reschedule(loop.time() + silence)
                            self._apply(line)
                except aiohttp.ClientPayloadError as err:
                    raise ApiError(f"watch stream broken: {one_line(err)}") from err
                finally:
                    response.release()
        except TimeoutError as err:
            if not deadline.expired():
                raise  # the client's own request timeout, not silence
            raise Silent(f"watch silent for {silence:.0f} s (no event, no bookmark): "
                         "the API server may be hung") from err

    def _apply(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind, raw = event["type"], event["object"]
            if not isinstance(raw, dict):
                raise TypeError("object is not a JSON object")
        except (ValueError, KeyError, TypeError) as err:
            log.warning("kubernetes %s: skipped an unreadable watch event (%s)", self.name, one_line(err))
            return
        if kind == "ERROR":
            code = int(raw.get("code") or 500)
            if code == 404:
                raise NotServed()
            _raise_for_status(code, json.dumps(raw).encode())
        self.status.last_success = time.time()  # a live watch is a successful one (bookmarks included)
        version = (raw.get("metadata") or {}).get("resourceVersion") if isinstance(raw.get("metadata"), dict) else None
        if kind in ("ADDED", "MODIFIED"):
            self._upsert(raw)
        elif kind == "DELETED":
            self._delete(raw)
        elif kind != "BOOKMARK":
            log.warning("kubernetes %s: skipped a watch event of unknown type %r", self.name, str(kind)[:40])
        if version:
            self.resource_version = str(version)

    # ------------------------------------------------------------------ store

    def _project(self, raw: dict[str, Any]) -> tuple[str, T | None] | None:
        """(key, projection) or None when the object cannot be read (logged once, skipped)."""
        try:
            key = self.spec.key(raw)
            return key, self.spec.project(raw)
        except (ProjectionError, ValueError, TypeError, KeyError, AttributeError) as err:
            name = _object_name(raw)
            log.warning("kubernetes %s: skipped malformed object %s: %s", self.name, name, one_line(err))
            return None

    def _project_into(self, found: dict[str, T], raw: Any) -> None:
        if not isinstance(raw, dict):
            log.warning("kubernetes %s: skipped a list item that is a %s", self.name, type(raw).__name__)
            return
        projected = self._project(raw)
        if projected is not None and projected[1] is not None:
            found[projected[0]] = projected[1]

    def _upsert(self, raw: dict[str, Any]) -> None:
        projected = self._project(raw)
        if projected is None:
            return  # keep serving what was known about it
        key, value = projected
        old = self.items.get(key)
        if value is None:
            if key in self.items:
                del self.items[key]
                self._notify(key, old, None)
            return
        if old == value:
            return
        self.items[key] = value
        self._notify(key, old, value)

    def _delete(self, raw: dict[str, Any]) -> None:
        try:
            key = self.spec.key(raw)
        except (ProjectionError, ValueError, TypeError, KeyError, AttributeError):
            log.warning("kubernetes %s: skipped a DELETED event without a usable key", self.name)
            return
        old = self.items.pop(key, None)
        if old is not None:
            self._notify(key, old, None)

    def _replace(self, found: dict[str, T]) -> None:
        old_items, self.items = self.items, found
        self.generation += 1
        if self.observe is not None:
            for key, value in found.items():
                if old_items.get(key) != value:
                    self.observe(key, old_items.get(key), value)
            for key in old_items.keys() - found.keys():
                self.observe(key, old_items[key], None)
        self.on_change(self)

    def _notify(self, key: str, old: T | None, new: T | None) -> None:
        self.generation += 1
        if self.observe is not None:
            self.observe(key, old, new)
        self.on_change(self)

    # ------------------------------------------------------------------ status

    def _succeeded(self) -> None:
        changed = not self.status.up
        self.status.synced = True
        self.status.up, self.status.error = True, ""
        self.status.last_success = time.time()
        if changed:
            self.on_change(self)

    def _failed(self, error: str) -> None:
        self.status.up, self.status.error = False, error
        self.on_change(self)

    def _held_longer_than(self, delay: float) -> bool:
        """Whether the watch that just failed had been answered and stayed open longer than `delay`
        (the wait before it): its failure starts a new run rather than doubling the last wait. A server
        that breaks each watch at once keeps the delay growing."""
        return self._connected_at is not None and time.monotonic() - self._connected_at > delay

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, self.settings.backoff_initial, self.settings.backoff_max, self._rng)


async def ndjson_lines(content: aiohttp.StreamReader) -> AsyncGenerator[bytes, None]:
    """The complete lines of a watch stream; raises ApiError when it ends inside a line."""
    buffer = bytearray()
    async for chunk in content.iter_any():
        buffer += chunk
        if b"\n" not in chunk:
            if len(buffer) > MAX_LINE_BYTES:
                raise ApiError(f"watch event longer than {MAX_LINE_BYTES} bytes")
            continue
        *lines, rest = bytes(buffer).split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        raise ApiError(f"watch stream cut mid-event ({len(buffer)} bytes of a partial line dropped)")


def _raise_for_status(status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    if status == 410:
        raise Expired()
    raise ApiError(f"HTTP {status}: {_status_message(body)}")


def _status_message(body: bytes) -> str:
    """The `message` of a Kubernetes Status body, or the start of whatever else came back."""
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and parsed.get("message"):
            return one_line(str(parsed["message"]))
    except ValueError:
        pass
    return one_line(body[:200].decode("utf-8", "replace")) or "(empty body)"


def _object_name(raw: dict[str, Any]) -> str:
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    name = str(metadata.get("name") or "?")[:120]
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def one_line(err: BaseException | str) -> str:
    """One log-friendly line; an exception without a message is named by its type."""
    text = (str(err) or type(err).__name__) if isinstance(err, BaseException) else err
    return " ".join(text.split())[:300]
