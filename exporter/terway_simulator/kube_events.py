"""Events written through events.k8s.io/v1, as the core/v1 API (what the exporter lists) shows them.

Terway's controlplane records through controller-runtime's `GetEventRecorder` since v1.17.2
(`pkg/controller/*/`, AliyunContainerService/terway v1.17.2 and v1.17.5), which writes
events.k8s.io/v1 Events through client-go's `k8s.io/client-go/tools/events` recorder:

- `reportingController` is the recorder's name (`terway-controlplane/<controller>`, from
  `utils.EventName` in `pkg/utils/k8s.go`), `reportingInstance` that name, `-` and the host name;
- `regarding` is the object, `related` an optional second one (the PodENI of a Pod event),
  `note` the message, `action` one of Terway's `Action*` constants (`types/k8s.go`);
- the first occurrence has no `series`; the second is written at once with `series.count` 2,
  later ones when the recorder flushes the series (every 30 minutes, and once the series has
  gone 6 minutes without a repeat, checked every 6 minutes): `event_broadcaster.go` in client-go;
- the `deprecated*` fields (source, count, first/last timestamps) stay empty.

The API server converts such an Event for core/v1 readers (`Convert_v1_Event_To_core_Event`,
kubernetes `pkg/apis/events/v1/conversion.go`): `involvedObject` from `regarding`, `message` from
`note`, `reportingComponent` from `reportingController`, and `source`, `count`,
`firstTimestamp`, `lastTimestamp` from the empty `deprecated*` fields: `"source": {}`, no `count`,
null timestamps. Only `eventTime` and `series` date and count it.
"""

from __future__ import annotations

from typing import Any

# Terway's action for each of its Warning reasons (types/k8s.go and pool.go at v1.17.5).
ACTIONS = {
    "CreateENIFailed": "CreateENI", "AttachENIFailed": "AttachENI", "DetachENIFailed": "DetachENI",
    "DeleteENIFailed": "DeleteENI", "UpdatePodENIFailed": "UpdatePodENI",
    "SyncPodNetworkingFailed": "SyncPodNetworking", "ConfigError": "Config", "PrefixModeImmutable": "Config",
    "AllocIPFailed": "AllocIP", "SyncOpenAPIFailed": "SyncOpenAPI", "PodCreateFailed": "CreatePod",
    "PodDeleteFailed": "DeletePod", "DeletePodENIFailed": "DeletePod", "FailedScheduling": "Scheduling",
}
STYLES = frozenset({"series", "events.k8s.io"})


def as_core_v1(obj: dict[str, Any], item: dict[str, Any], reporting: str, host: str, first: str, last: str,
               count: int) -> None:
    """Rewrite a core/v1 Event dict (built for `item`) into the converted events.k8s.io/v1 shape.

    `first`/`last` are MicroTime strings of the first and latest occurrence; `host` names the
    recording process's host (the controlplane pod, the node...).
    """
    obj.pop("count", None)
    obj.update({
        "source": {}, "firstTimestamp": None, "lastTimestamp": None,
        # A single occurrence is dated by eventTime alone.
        "eventTime": first if count > 1 else last,
        "action": item.get("action") or ACTIONS.get(str(item.get("reason", "")), "Unknown"),
        "reportingComponent": reporting,
        "reportingInstance": item.get("reporting_instance") or f"{reporting}-{host}",
    })
    related = item.get("related")
    if related:
        obj["related"] = {key: related[key] for key in ("kind", "namespace", "name", "apiVersion", "uid")
                          if related.get(key)}
    if count > 1:
        obj["series"] = {"count": count, "lastObservedTime": last}
