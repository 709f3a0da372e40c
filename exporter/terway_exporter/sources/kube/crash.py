"""Why a terway daemon crash-loops: the error code in its previous container log.

When the `terway` container of a terway-eniip pod waits in CrashLoopBackOff, the log
of its previous (crashed) run usually names the cause (`InvalidAccessKeyId.NotFound`,
`Forbidden.RAM`, a missing vSwitch...). The log is read at most once per restart count,
and only the code is kept: log text can carry anything, including credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ...model.kube import PodSummary
from ...terway.errors import classify
from .reflector import one_line

log = logging.getLogger(__name__)

TERWAY_CONTAINER = "terway"
CRASH_LOOP = "CrashLoopBackOff"
LOG_TAIL_LINES = 200

# (namespace, pod name) -> the previous log of its terway container; raises on failure.
ReadLog = Callable[[str, str], Awaitable[str]]


def crash_code(log_text: str) -> str | None:
    """The known code named closest to the end of the log (the error that ended the run)."""
    for line in reversed(log_text.splitlines()):
        code = classify(line)
        if code is not None:
            return code
    return None


def crash_looping_restarts(pod: PodSummary) -> int | None:
    """The terway container's restart count while it waits in CrashLoopBackOff, else None."""
    for container in pod.containers:
        if container.name == TERWAY_CONTAINER and container.waiting_reason == CRASH_LOOP:
            return container.restarts
    return None


class CrashCauses:
    """Remembers, per daemon pod, the restart count whose log was read and the code found."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[int, str | None]] = {}  # pod key -> (restarts, code)
        self.generation = 0  # bumped whenever what `causes` returns may have changed

    def pending(self, pods: dict[str, PodSummary]) -> list[tuple[str, PodSummary, int]]:
        """Crash-looping pods whose log for the current restart count was not read yet."""
        wanted = []
        for key, pod in pods.items():
            restarts = crash_looping_restarts(pod)
            if restarts is not None and self._read.get(key, (None,))[0] != restarts:
                wanted.append((key, pod, restarts))
        return wanted

    async def refresh(self, pods: dict[str, PodSummary], read_log: ReadLog) -> bool:
        """Read the logs `pending` names; forget pods that are gone. True when anything changed."""
        changed = False
        for key in self._read.keys() - pods.keys():
            del self._read[key]
            changed = True
        for key, pod, restarts in self.pending(pods):
            code = None
            try:
                code = crash_code(await read_log(pod.namespace, pod.name))
            except Exception as err:  # any failure: record the attempt, never retry this restart
                log.warning("kubernetes pods/log: could not read the previous log of %s/%s container %s: %s",
                            pod.namespace, pod.name, TERWAY_CONTAINER, one_line(err))
            self._read[key] = (restarts, code)
            changed = True
        if changed:
            self.generation += 1
        return changed

    def causes(self, pods: dict[str, PodSummary]) -> dict[str, str]:
        """node -> code, for pods crash-looping now whose previous log named a known code."""
        found = {}
        for key, pod in pods.items():
            read = self._read.get(key)
            if read is not None and read[1] is not None and crash_looping_restarts(pod) is not None:
                found[pod.node or pod.name] = read[1]
        return found
