"""Projection of `podenis.network.alibabacloud.com` (v1beta1, namespaced) into `PodEni`.

The shape is Terway's (pkg/apis/network.alibabacloud.com/v1beta1/types.go and the CRD
pkg/apis/crds/network.alibabacloud.com_podenis.yaml, AliyunContainerService/terway v1.17.5):
`spec.allocations[]` each name an ENI (`eni.id`) and an `allocationType` (`type` Elastic or
Fixed, `releaseStrategy` TTL or Never, `releaseAfter`); `status.eniInfos` maps ENI ID to
`{id, type, status}` once attached; `status.phase` is one of Terway's ENIPhase values.

Only the ENI IDs matter for leak accounting; an object whose shape cannot be read raises
`fields.ProjectionError`, and the reflector logs it and skips it.
"""

from __future__ import annotations

import sys
from typing import Any

from ...model.kube import PodEni
from .fields import items, name_of, obj, text

# Terway's allocationType.type of a fixed-IP allocation (IPAllocTypeFixed in types.go).
FIXED = "Fixed"


def project_pod_eni(raw: dict[str, Any]) -> PodEni:
    name = name_of(raw)
    namespace = text(obj(raw, "metadata"), "namespace")
    spec, status = obj(raw, "spec"), obj(raw, "status")
    ids: list[str] = []
    fixed_ip, strategy, release_after = False, "", ""
    for alloc in items(spec, "allocations"):
        eni_id = text(obj(alloc, "eni"), "id")
        if eni_id:
            ids.append(eni_id)
        allocation_type = obj(alloc, "allocationType")
        if text(allocation_type, "type") == FIXED and not fixed_ip:
            fixed_ip = True
            strategy = text(allocation_type, "releaseStrategy")
            release_after = text(allocation_type, "releaseAfter")
    infos = obj(status, "eniInfos")
    for key in infos:
        info = obj(infos, key)
        ids.extend(i for i in (str(key), text(info, "id")) if i)
    eni_ids = tuple(dict.fromkeys(ids))  # de-duplicated, first mention first
    return PodEni(
        namespace=sys.intern(namespace), name=name, eni_ids=eni_ids,
        phase=sys.intern(text(status, "phase")), fixed_ip=fixed_ip,
        release_strategy=sys.intern(strategy), release_after=release_after,
    )
