"""The health of each source, as the exporter's self metrics and /readyz report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Outcome of a source's latest poll or watch sync.

    `attempted` turns true after the first attempt, successful or not: /readyz waits
    for every source's first attempt so that a pod with broken credentials still
    becomes ready and serves the metrics that say what is broken.
    """

    name: str
    attempted: bool = False
    up: bool = False
    last_success: float | None = None  # unix seconds
    last_duration: float | None = None  # seconds
    error: str = ""  # one line, never a credential
