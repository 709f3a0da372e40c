"""Credentials, RAM permissions and throttling: Terway's events and crash logs, the exporter's own calls.

Each alert here is an `or` of signals, and the `signal` label says which fired; the evidence carries the
same value in `label`. `exporter_api_calls` are the calls of whoever evaluates: for `check`, this run's
own calls, so a key or policy that fails for this run fails for the exporter that runs with it.
"""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .model import Evidence

KEY_REJECTED = r"InvalidAccessKeyId\..*|SignatureDoesNotMatch"
RAM_DENIED_EXPORTER = r"Forbidden\.RAM|Forbidden\.SubUser|Forbidden\.NotSupportRAM"
RAM_DENIED_TERWAY = r"Forbidden\.RAM"
THROTTLED = r"Throttling.*"

EXPORTER_CALLS, TERWAY_EVENTS, CRASH_LOGS = "exporter_api_calls", "terway_events", "terway_crash_logs"


def _exporter_calls(ctx: Context, pattern: str) -> list[Evidence]:
    found = []
    for code, by_api in ctx.exporter_errors(pattern).items():
        calls = sum(by_api.values())
        apis = ", ".join(f"{api} x{n}" for api, n in sorted(by_api.items()))
        found.append(Evidence(f"exporter/{code}", f"{calls} of the exporter's own API calls got {code} ({apis})",
                              label=EXPORTER_CALLS, values={"calls": calls, "code": code}))
    return found


def _terway_events(ctx: Context, pattern: str, more_than: int = 0) -> list[Evidence]:
    """Codes whose event occurrences (all reasons) are more than `more_than`, as the rule's `> N` on the sum."""
    return [Evidence(f"events/{code}", f"{count} Terway Warning event occurrence(s) name {code}",
                     label=TERWAY_EVENTS, values={"events": count, "code": code})
            for code, count in sorted(ctx.network_error_codes(pattern).items()) if count > more_than]


def _crash_logs(ctx: Context, pattern: str) -> list[Evidence]:
    return [Evidence(f"crash-logs/{code}",
                     f"the terway container crashes with {code} on {len(nodes)} node(s): {', '.join(nodes[:3])}"
                     + (", ..." if len(nodes) > 3 else ""),
                     label=CRASH_LOGS, values={"nodes": len(nodes), "code": code})
            for code, nodes in sorted(ctx.crash_causes(pattern).items())]


def cloud_credentials(ctx: Context) -> list[Evidence]:
    # More than one rejection: a credential rotation that races one of Terway's calls does not page (the rule).
    return _terway_events(ctx, KEY_REJECTED, more_than=1) + _crash_logs(ctx, KEY_REJECTED)


def exporter_credentials(ctx: Context) -> list[Evidence]:
    return _exporter_calls(ctx, KEY_REJECTED)


def ram_denied(ctx: Context) -> list[Evidence]:
    return (_exporter_calls(ctx, RAM_DENIED_EXPORTER) + _terway_events(ctx, RAM_DENIED_TERWAY)
            + _crash_logs(ctx, RAM_DENIED_TERWAY))


def throttled(ctx: Context) -> list[Evidence]:
    return _exporter_calls(ctx, THROTTLED) + _terway_events(ctx, THROTTLED)


JUDGES: dict[str, Callable[[Context], list[Evidence]]] = {
    "TerwayCloudCredentialsInvalid": cloud_credentials,
    "TerwayExporterCredentialsInvalid": exporter_credentials,
    "TerwayRAMPermissionDenied": ram_denied,
    "TerwayCloudAPIThrottled": throttled,
}
