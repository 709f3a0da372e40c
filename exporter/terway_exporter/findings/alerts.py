"""Every alert of alerts/terway-exporter.rules.yaml: its severity and `for` as the rule file has them
(tests/test_findings.py holds this table to the file), the area `check` reports it under, and, for
the alerts a single look cannot judge, why.

Adding an alert to the rule file without adding it here (and a judge in the area's module) fails the
tests, and so does changing a severity or a `for` in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import CRITICAL, WARNING

RUNBOOK_BASE = "https://github.com/terway-exporter/terway-exporter/blob/main/docs/runbooks/"


@dataclass(frozen=True, slots=True)
class AlertSpec:
    name: str
    severity: str
    alert_for: str
    area: str
    title: str  # what the finding says, in a few words
    not_judged: str = ""  # why one look cannot judge it; empty when `check` judges it

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE}{self.name}.md"


_HISTORY = "needs history: "

ALERTS: tuple[AlertSpec, ...] = (
    # ---------------------------------------------------------------- IP capacity
    AlertSpec("TerwayVSwitchIPsExhausted", CRITICAL, "2m", "ip_capacity",
              "a vSwitch Terway uses has no free IP address"),
    AlertSpec("TerwayVSwitchIPsLow", WARNING, "15m", "ip_capacity",
              "a vSwitch Terway uses has less than 10% of its IP addresses free"),
    AlertSpec("TerwayVSwitchIPsExhaustionForecast", WARNING, "20m", "ip_capacity",
              "a vSwitch runs out within 12 hours at its current rate",
              _HISTORY + "the free-IP trend of 6 hours"),
    AlertSpec("TerwayZoneWithoutIPs", CRITICAL, "2m", "ip_capacity",
              "a zone with nodes has no configured vSwitch with a free IP address"),
    AlertSpec("TerwayZoneWithoutVSwitch", WARNING, "10m", "ip_capacity",
              "a zone with nodes has no vSwitch configured; Terway uses the nodes' own vSwitches"),
    AlertSpec("TerwayNodeInsufficientIP", WARNING, "10m", "ip_capacity",
              "a node keeps reporting SufficientIP=False",
              _HISTORY + "SufficientIP=False minutes counted over 30 minutes"),
    AlertSpec("TerwayIPPoolBelowMinimum", WARNING, "15m", "ip_capacity",
              "a node keeps fewer idle IPs than its min_pool_size"),
    # ---------------------------------------------------------------- ENIs and quota
    AlertSpec("TerwayENIQuotaNearLimit", WARNING, "15m", "enis",
              "the region's ENI quota is nearly used up"),
    AlertSpec("TerwayENIQuotaExhaustionForecast", WARNING, "1h", "enis",
              "the region's ENI quota is used up within a week at the current rate",
              _HISTORY + "the quota usage trend of 5 days"),
    AlertSpec("TerwayNodeENILimitReached", WARNING, "15m", "enis",
              "a node uses all the ENIs its instance type allows and has no idle IP"),
    AlertSpec("TerwayLeakedENIs", WARNING, "15m", "enis",
              "ENIs created by Terway stay detached"),
    # ---------------------------------------------------------------- credentials and RAM
    AlertSpec("TerwayCloudCredentialsInvalid", CRITICAL, "5m", "credentials",
              "Alibaba Cloud rejects an access key Terway uses"),
    AlertSpec("TerwayExporterCredentialsInvalid", WARNING, "5m", "credentials",
              "Alibaba Cloud rejects the exporter's access key"),
    AlertSpec("TerwayRAMPermissionDenied", WARNING, "5m", "credentials",
              "Alibaba Cloud denies an API call for lack of a RAM permission"),
    AlertSpec("TerwayCloudAPIThrottled", WARNING, "15m", "credentials",
              "Alibaba Cloud throttles the exporter's or Terway's API calls"),
    # ---------------------------------------------------------------- configuration
    AlertSpec("TerwayConfigInvalidReference", WARNING, "10m", "configuration",
              "the configuration names a vSwitch or security group that does not exist or is in another VPC"),
    AlertSpec("TerwayConfigInvalid", WARNING, "10m", "configuration",
              "Terway's configuration fails a check"),
    AlertSpec("TerwayServiceCIDRMismatch", WARNING, "10m", "configuration",
              "Terway's service_cidr does not contain the cluster's Service range"),
    # ---------------------------------------------------------------- daemon
    AlertSpec("TerwayDaemonCrashLooping", CRITICAL, "5m", "daemon",
              "a terway-eniip container keeps restarting"),
    AlertSpec("TerwayCNIConfigMissing", CRITICAL, "5m", "daemon",
              "the CNI configuration is missing or the network plugin is not ready"),
    # ---------------------------------------------------------------- controlplane
    AlertSpec("TerwayControlplaneUnavailable", CRITICAL, "5m", "controlplane",
              "the in-cluster terway-controlplane has no available replica or a stale leader Lease"),
    AlertSpec("TerwayControlplaneDegraded", WARNING, "10m", "controlplane",
              "the terway-controlplane runs in a degradation mode"),
    AlertSpec("TerwayOpenAPISyncStale", WARNING, "10m", "controlplane",
              "a Node CR has not synced with the cloud for over a day"),
    # ---------------------------------------------------------------- pods
    AlertSpec("TerwayPodsCannotGetIP", CRITICAL, "1m", "pods",
              "pods wait for their network on a node where Terway cannot allocate IPs"),
    AlertSpec("TerwayPodsStuckContainerCreating", WARNING, "5m", "pods",
              "pods wait for their network longer than 5 minutes"),
    # ---------------------------------------------------------------- cluster DNS
    AlertSpec("TerwayClusterDNSUnavailable", CRITICAL, "5m", "dns",
              "CoreDNS has no available replica"),
    # ---------------------------------------------------------------- the exporter
    AlertSpec("TerwayExporterSourceFailing", WARNING, "15m", "exporter",
              "a source of the exporter keeps failing, so its metrics are stale"),
    AlertSpec("TerwayExporterDown", WARNING, "10m", "exporter",
              "Prometheus cannot scrape terway-exporter",
              "needs Prometheus: whether it can scrape the exporter"),
)

BY_NAME: dict[str, AlertSpec] = {spec.name: spec for spec in ALERTS}
