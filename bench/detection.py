"""Alert quality measured end to end: how soon each alert notifies after its fault, how soon it resolves, and
which everyday operations notify at all.

    python bench/detection.py                      # full run, production timing (about 45 minutes)
    python bench/detection.py --quick              # two faults and every near miss, time compressed 10x (CI)
    python bench/detection.py --only vswitch-exhausted,near-miss-scale-out
    python bench/detection.py --json results.json --markdown tables.md

Not a test: it runs in real time. Each fault and each near miss is a lane: its own simulator
(`terway-exporter simulate`) and its own exporter (`terway-exporter serve` with its default poll
intervals), so faults run in parallel without seeing each other. One real Prometheus scrapes every
exporter every 30 s (target label `lane`) and evaluates the shipped rules, unchanged, every minute;
one real Alertmanager (group_wait 30 s, group_interval 1 m, grouping by every label so each alert
notifies on its own) posts to a webhook here, which records when each notification arrives.

A fault lane starts healthy; after a warm-up the harness injects its fault into the running simulator
through the simulator's own control endpoint (`POST /_sim/kube/step`, a scenario step applied now),
waits for the notification of every alert the fault must raise (time to fire), then removes the fault
and waits for each resolved notification (time to resolve). A near-miss lane replays a shipped
`near-miss-*` scenario's steps (the same endpoint, at the steps' times after the warm-up) and counts every
notification it gets: it must get none.

`--scale N` compresses time N-fold for a quick check of the harness itself: the scrape (not under 5 s)
and evaluation intervals, every rule's `for`, Alertmanager's waits, the exporter's poll intervals and the harness's
own timeline are divided by N (the rules' range windows and thresholds are not, so its figures are
not latencies). A process start is not compressed, so TerwayExporterDown's `for` (an exporter that is
not up) is never shortened below UNCOMPRESSED_FOR_SECONDS: on a loaded machine an exporter restart
alone can outlast a tenth of its 10 minutes. `--quick` is `--scale 10` on two faults and every near miss.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from loopback_ports import free_port

REPO = Path(__file__).resolve().parents[1]
RULES_FILE = REPO / "alerts" / "terway-exporter.rules.yaml"
SCENARIOS = REPO / "exporter" / "terway_simulator" / "scenarios"
KUBE_TOKEN = "terway-sim-token"  # the simulated API server's default bearer token (simulator/kube_api.py)

# Production timing, divided by --scale.
SCRAPE_SECONDS = 30.0
EVALUATION_SECONDS = 60.0
GROUP_WAIT_SECONDS = 30.0
GROUP_INTERVAL_SECONDS = 60.0
CLOUD_POLL_SECONDS = 60.0  # the exporter's defaults (config.py)
CENSUS_SECONDS = 900.0
WARMUP_SECONDS = 180.0  # healthy history before the first fault or step
FIRE_DEADLINE = {"critical": 15 * 60.0, "warning": 40 * 60.0, "info": 40 * 60.0}
RESOLVE_DEADLINE = 25 * 60.0
OBSERVE_AFTER_LAST_STEP = 20 * 60.0  # a near miss is watched this long after its last step
RESTART_AFTER = 60.0  # the exporter-restart near miss restarts the exporter this long after the warm-up

# Targets of issue 15, in seconds from the fault.
TARGET_CRITICAL = 10 * 60.0
TARGET_WARNING = 30 * 60.0
TARGET_FAST_PAGE = 5 * 60.0  # a pod that cannot get an IP, a vSwitch at 0 free IPs

SANDBOX_TIMEOUT = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
                   '"{sandbox}": plugin type="terway" failed (add): cmdAdd: error alloc ip rpc error: '
                   'code = DeadlineExceeded desc = context deadline exceeded')
NODE_H, NODE_I, NODE_J = "cn-hangzhou.192.168.0.10", "cn-hangzhou.192.168.16.10", "cn-hangzhou.192.168.32.10"
VSW_H, VSW_I, VSW_J = "vsw-bp1h0000000000000001", "vsw-bp1i0000000000000001", "vsw-bp1j0000000000000001"


def waiting(prefix: str, for_seconds: float = 30) -> dict:
    """Pods scheduled `for_seconds` ago whose sandbox fails now, and again every minute (the kubelet retrying)."""
    return {"count": 2, "for_seconds": for_seconds, "name_prefix": prefix,
            "sandbox_event": {"message": SANDBOX_TIMEOUT, "count": 1, "last_seen_ago": 0, "repeat_seconds": 60}}


@dataclass
class Fault:
    name: str
    what: str  # the "fault" column
    alerts: tuple[str, ...]  # the alerts it must raise
    inject: dict | None = None  # a steps `set:`, applied at injection
    restore: dict | None = None  # applied once every alert has fired (or its deadline passed)
    setup: dict | None = None  # applied when the lane starts, before the exporter (the healthy baseline)
    repeat: Callable[[int, float], dict] | None = None  # (k, seconds since injection) -> `set:`, while it lasts
    every: float = 60.0  # period of `repeat`, production seconds
    action: str = ""  # "stop-exporter": the fault is the exporter process gone


@dataclass
class NearMiss:
    name: str  # a shipped scenario; its steps are replayed after the warm-up
    what: str
    action: str = ""  # "restart-exporter"
    scenario: str = ""  # defaults to `name`


def _terway_key_event(k: int, _elapsed: float) -> dict:
    return {"add_events": [{
        "name": f"web-{k}.bench-credentials", "reason": "AllocIPFailed", "source": "terway-daemon", "count": 2,
        "last_seen_ago": 0, "involved": {"kind": "Pod", "namespace": "default", "name": f"web-{k}"},
        "message": ("Status Code: 404 Code: InvalidAccessKeyId.NotFound Message: Specified access key is not found. "
                    "RequestId: 6C1D2E3F-4A5B-5C6D-7E8F-9A0B1C2D3E4F")}]}


def _crash_restarts(k: int, _elapsed: float) -> dict:
    return {"nodes": {NODE_I: {"kube": {"daemon": {"restarts": 4 + k}}}}}


FAULTS: tuple[Fault, ...] = (
    Fault("vswitch-exhausted", "vSwitch terway-h drained to 0 free IPs (the only one of zone h)",
          ("TerwayVSwitchIPsExhausted", "TerwayZoneWithoutIPs"),
          inject={"vswitches": {VSW_H: {"available": 0}}}, restore={"vswitches": {VSW_H: {"available": None}}}),
    Fault("pods-cannot-get-ip", "vSwitch terway-i exhausted: 2 pods fail their sandbox, SufficientIP False, "
          "Terway's IpNotEnough event",
          ("TerwayPodsCannotGetIP",),
          inject={"vswitches": {VSW_I: {"available": 0}},
                  "nodes": {NODE_I: {"sufficient_ip": False, "idle": 0, "kube": {"waiting_pods": waiting("web")}}},
                  "add_events": [{"name": "web-0.bench-ip", "reason": "AllocIPFailed", "source": "terway-daemon",
                                  "count": 1, "last_seen_ago": 0,
                                  "involved": {"kind": "Pod", "namespace": "default", "name": "web-0"},
                                  "message": "Status Code: 403 Code: InvalidVSwitchId.IpNotEnough Message: The "
                                             f"specified VSwitch \"{VSW_I}\" has not enough IpAddress."}]},
          restore={"vswitches": {VSW_I: {"available": None}},
                   "nodes": {NODE_I: {"sufficient_ip": True, "idle": 3, "kube": {"waiting_pods": None}}}}),
    Fault("eni-limit", "node at its ENI limit (4 of 4) with no idle IP; 2 pods fail their sandbox",
          ("TerwayPodsCannotGetIP", "TerwayNodeENILimitReached"),
          inject={"nodes": {NODE_J: {"pods": 45, "idle": 0, "kube": {"waiting_pods": waiting("api")}}}},
          restore={"nodes": {NODE_J: {"pods": 20, "idle": 4, "kube": {"waiting_pods": None}}}}),
    Fault("eni-quota-full", "regional ENI quota filled (995 of 1,000); MaxEniCountExceeded; 2 pods fail their sandbox",
          ("TerwayENIQuotaNearLimit", "TerwayPodsCannotGetIP"),
          inject={"eni_quota_usage": 995,
                  "nodes": {NODE_H: {"idle": 0, "kube": {"waiting_pods": waiting("cache")}}},
                  "add_events": [{"name": "node-h.bench-quota", "reason": "CreateENIFailed", "source": "multi-ip-node",
                                  "count": 2, "last_seen_ago": 0,
                                  "involved": {"kind": "Node", "name": NODE_H,
                                               "apiVersion": "network.alibabacloud.com/v1beta1"},
                                  "message": f"Failed to create ENI type=Secondary vsw={VSW_H}: SDK.ServerError "
                                             "ErrorCode: MaxEniCountExceeded Message: The number of ENI exceeds the "
                                             "limit per region."}]},
          restore={"eni_quota_usage": None, "nodes": {NODE_H: {"idle": 3, "kube": {"waiting_pods": None}}}}),
    Fault("daemon-crashloop", "terway container crash-looping on one node (a restart a minute)",
          ("TerwayDaemonCrashLooping",),
          inject={"nodes": {NODE_I: {"kube": {"daemon": {
              "waiting_reason": "CrashLoopBackOff", "restarts": 3, "exit_code": 2,
              "previous_log": "panic: runtime error: invalid memory address or nil pointer dereference\n"}}}}},
          repeat=_crash_restarts,
          restore={"nodes": {NODE_I: {"kube": {"daemon": {"waiting_reason": None}}}}}),
    Fault("controlplane-down", "terway-controlplane 0 of 1 available, leader Lease no longer renewed",
          ("TerwayControlplaneUnavailable",),
          inject={"kubernetes": {"controlplane": {"available": 0, "lease_renew_ago": 0,
                                                  "waiting_reason": "CrashLoopBackOff", "restarts": 4}}},
          restore={"kubernetes": {"controlplane": {"available": 1, "lease_renew_ago": None,
                                                   "waiting_reason": None}}}),
    Fault("coredns-down-controlplane-degraded", "CoreDNS 0 of 2 available; controlplane degradation set to l1",
          ("TerwayClusterDNSUnavailable", "TerwayControlplaneDegraded"),
          inject={"kubernetes": {"coredns": {"available": 0, "waiting_reason": "CrashLoopBackOff"},
                                 "controlplane": {"degradation": "l1"}}},
          restore={"kubernetes": {"coredns": {"available": 2, "waiting_reason": None},
                                  "controlplane": {"degradation": None}}}),
    Fault("terway-credentials-revoked", "Terway's AccessKey deleted: an InvalidAccessKeyId.NotFound event a minute",
          ("TerwayCloudCredentialsInvalid",), repeat=_terway_key_event),
    Fault("exporter-credentials-revoked",
          "the exporter's AccessKey deleted (the cloud answers InvalidAccessKeyId.NotFound)",
          ("TerwayExporterCredentialsInvalid", "TerwayExporterSourceFailing"),
          inject={"cloud": {"valid_credentials": False}}, restore={"cloud": {"valid_credentials": None}}),
    Fault("ram-forbidden", "Forbidden.RAM on DescribeNetworkInterfaces and GetProductQuota",
          ("TerwayRAMPermissionDenied",),
          inject={"cloud": {"faults": {"DescribeNetworkInterfaces": {"code": "Forbidden.RAM"},
                                       "GetProductQuota": {"code": "Forbidden.RAM"}}}},
          restore={"cloud": {"faults": None}}),
    Fault("throttled", "half of every cloud call answers Throttling.User",
          ("TerwayCloudAPIThrottled",),
          inject={"cloud": {"faults": {"*": {"code": "Throttling.User", "ratio": 0.5}}}},
          restore={"cloud": {"faults": None}}),
    Fault("eni-config-errors", "eni-config edited: a vSwitch that does not exist, zone j dropped, "
          "min_pool_size 10 over max 5, service_cidr 10.96.0.0/12",
          ("TerwayConfigInvalidReference", "TerwayZoneWithoutVSwitch", "TerwayConfigInvalid",
           "TerwayServiceCIDRMismatch"),
          inject={"kubernetes": {"eni_config": {"eni_conf": {
              "vswitches": {"cn-hangzhou-h": [VSW_H, "vsw-bp1h0000000000000999"], "cn-hangzhou-j": None},
              "min_pool_size": 10, "service_cidr": "10.96.0.0/12"}}}},
          restore={"kubernetes": {"eni_config": {"eni_conf": {
              "vswitches": {"cn-hangzhou-h": [VSW_H], "cn-hangzhou-j": [VSW_J]},
              "min_pool_size": 0, "service_cidr": "172.16.0.0/16"}}}}),
    Fault("cni-config-missing", "a node without its terway-eniip pod: NotReady, cni plugin not initialized",
          ("TerwayCNIConfigMissing",),
          inject={"nodes": {NODE_J: {"ready": False, "kube": {"daemon": {"missing": True}},
                                     "ready_message": "container runtime network not ready: NetworkReady=false "
                                     "reason:NetworkPluginNotReady message:Network plugin returns error: cni "
                                     "plugin not initialized"}}},
          restore={"nodes": {NODE_J: {"ready": True, "ready_message": "kubelet is posting ready status",
                                      "kube": {"daemon": {"missing": None}}}}}),
    Fault("node-pool", "one node keeps 2 idle IPs under min_pool_size 10; another has SufficientIP False",
          ("TerwayIPPoolBelowMinimum", "TerwayNodeInsufficientIP"),
          # max_pool_size raised with it: a minimum above the maximum is a configuration error the alert leaves to
          # TerwayConfigInvalid (the first full run injected min 10 over max 5, and the alert rightly stayed quiet).
          inject={"nodes": {NODE_I: {"min_pool_size": 10, "max_pool_size": 10, "idle": 2},
                            NODE_H: {"sufficient_ip": False}}},
          restore={"nodes": {NODE_I: {"min_pool_size": 0, "max_pool_size": 5, "idle": 3},
                             NODE_H: {"sufficient_ip": True}}}),
    Fault("openapi-sync-stale", "a Node CR whose last OpenAPI sync is 27 hours old",
          ("TerwayOpenAPISyncStale",),
          inject={"nodes": {NODE_H: {"last_sync_openapi_ago": 27 * 3600}}},
          restore={"nodes": {NODE_H: {"last_sync_openapi_ago": 0}}}),
    Fault("leaked-enis", "3 Terway ENIs left detached (Available, created an hour ago)",
          ("TerwayLeakedENIs",),
          inject={"stray_enis": [{"count": 3, "vswitch": VSW_H, "creator": "terway", "age_seconds": 3600}]},
          restore={"stray_enis": []}),
    Fault("vswitch-low", "vSwitch terway-j down to 200 of 4,092 free IPs (4.9%)",
          ("TerwayVSwitchIPsLow",),
          inject={"vswitches": {VSW_J: {"available": 200}}}, restore={"vswitches": {VSW_J: {"available": None}}}),
    Fault("exporter-down", "the exporter process stopped", ("TerwayExporterDown",), action="stop-exporter"),
    Fault("pods-stuck", "2 pods whose sandbox keeps timing out, no IP shortage known",
          ("TerwayPodsStuckContainerCreating",),
          inject={"nodes": {NODE_H: {"kube": {"waiting_pods": waiting("batch", 0)}}}},
          restore={"nodes": {NODE_H: {"kube": {"waiting_pods": None}}}}),
)

NEAR_MISSES: tuple[NearMiss, ...] = (
    NearMiss("near-miss-scale-out", "node-pool scale-out of 50 nodes (NotReady while booting, NetworkNotReady "
             "events, 200 pods Pending until they join)"),
    NearMiss("near-miss-rolling-update", "rolling update of 512 pods (IPs released and reused, pools dry for seconds)"),
    NearMiss("near-miss-image-pull", "4 pods pulling a large image for 10 minutes"),
    NearMiss("near-miss-daemonset-upgrade", "Terway DaemonSet upgrade (each terway container restarts once)"),
    NearMiss("near-miss-exporter-restart", "exporter restart (counters reset, first polls)", action="restart-exporter",
             scenario="healthy"),
    NearMiss("near-miss-cloud-blip", "cloud API blip (one failed poll)"),
    NearMiss("near-miss-vswitch-11pct", "vSwitch at 11% free, steady"),
    NearMiss("near-miss-eni-quota-79pct", "ENI quota at 79%, steady"),
)

# The forecasts need hours (vSwitch) or days (ENI quota) of history, which a real-time run cannot give: their
# figures come from the promtool tests named, on synthetic series.
PROMTOOL_ONLY: tuple[tuple[str, str, str], ...] = (
    ("TerwayVSwitchIPsExhaustionForecast", "vSwitch draining linearly to empty over 6 hours, after 6 hours steady",
     "2h 48m into the drain, 3h 12m before empty (promtool, alerts/tests/ip-capacity.yaml)"),
    ("TerwayENIQuotaExhaustionForecast", "ENI quota usage growing linearly from 50% to 100% over 10 days, after a "
     "week at 50%", "day 4 of the growth, 6 days before full (promtool, alerts/tests/eni-quota-forecast.yaml)"),
)

QUICK_FAULTS = ("vswitch-exhausted", "pods-cannot-get-ip")
# CI's short run: two faults, and every near miss (a page on an everyday operation is the costlier bug).
QUICK_NEAR_MISSES = tuple(m.name for m in NEAR_MISSES)


# ------------------------------------------------------------------ processes



def http(url: str, body: dict | None = None, timeout: float = 10.0, token: str = "") -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError) as err:
            error = err
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s" + (f" ({error})" if error else ""))


class Proc:
    """A child process in its own session, its output in a log file; stopped by its PID."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                          env={**os.environ, **(env or {})}, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


# ------------------------------------------------------------------ lanes


class Lane:
    """One simulator and one exporter, scraped with the target label `lane`."""

    def __init__(self, name: str, kind: str, scenario: Path, workdir: Path, settings: Settings) -> None:
        self.name, self.kind, self.scenario, self.settings = name, kind, scenario, settings
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.sim: Proc | None = None
        self.exporter: Proc | None = None
        self.env: dict[str, str] = {}
        self.cloud_url = self.kube_url = ""
        self.restarts = 0

    def start_simulator(self) -> None:
        argv = [sys.executable, "-m", "terway_exporter", "simulate", "--scenario", str(self.scenario),
                "--kubeconfig-out", str(self.workdir / "kubeconfig"), "--log-level", "warning"]
        self.sim = Proc("simulator", argv, self.workdir)

        def started() -> bool:
            text = self.sim.log()
            if not self.sim.alive():
                raise RuntimeError(f"lane {self.name}: simulator exited:\n{text[-2000:]}")
            cloud, kube = re.search(r"cloud APIs: (\S+)", text), re.search(r"API server: (\S+)", text)
            if not (cloud and kube and "env file:" in text):
                return False
            self.cloud_url, self.kube_url = cloud.group(1), kube.group(1)
            return True

        wait_for(started, 300, f"lane {self.name}: simulator")
        for line in (self.workdir / "exporter.env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value

    def start_exporter(self, wait: bool = True) -> None:
        """Start the exporter; with `wait`, until /readyz answers (a restart mid-run does not wait: Prometheus
        scrapes it as soon as it serves, and a loaded machine may take minutes)."""
        s = self.settings
        argv = [sys.executable, "-m", "terway_exporter", "serve", "--listen-address", f"127.0.0.1:{self.port}",
                "--ecs-endpoint", self.cloud_url, "--vpc-endpoint", self.cloud_url, "--quotas-endpoint", self.cloud_url,
                "--cloud-poll-interval", f"{s.cloud_poll:g}s", "--eni-census-interval", f"{s.census:g}s",
                "--log-level", "warning"]
        self.exporter = Proc(f"exporter-{self.restarts}", argv, self.workdir, self.env)
        self.restarts += 1
        if wait:
            wait_for(self.ready, 300, f"lane {self.name}: exporter /readyz")

    def ready(self) -> bool:
        if self.exporter is None or not self.exporter.alive():
            log = self.exporter.log()[-2000:] if self.exporter else ""
            raise RuntimeError(f"lane {self.name}: exporter exited:\n{log}")
        return http(f"http://127.0.0.1:{self.port}/readyz", timeout=2)[0] == 200

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()

    def step(self, change: dict) -> None:
        status, body = http(f"{self.kube_url}/_sim/kube/step", {"set": change}, timeout=60, token=KUBE_TOKEN)
        if status != 200:
            raise RuntimeError(f"lane {self.name}: step refused ({status}): {body[:300]!r}")

    def stop(self) -> None:
        for proc in (self.exporter, self.sim):
            if proc is not None:
                proc.stop()


# ------------------------------------------------------------------ Prometheus, Alertmanager, webhook


class Webhook:
    """Alertmanager's webhook receiver: every alert of every notification, with the time it arrived."""

    def __init__(self) -> None:
        self.records: list[tuple[float, str, dict[str, str]]] = []  # (time, status, labels)
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                with hook.lock:
                    for alert in json.loads(body).get("alerts", []):
                        hook.records.append((now, alert.get("status", ""), alert.get("labels", {})))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, lane: str, status: str, alert: str | None = None, after: float = 0.0) -> float | None:
        with self.lock:
            return next((t for t, s, labels in self.records
                         if s == status and t >= after and labels.get("lane") == lane
                         and (alert is None or labels.get("alertname") == alert)), None)

    def firing(self, lane: str) -> list[tuple[float, str]]:
        with self.lock:
            return [(t, labels.get("alertname", "")) for t, s, labels in self.records
                    if s == "firing" and labels.get("lane") == lane]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Alerts on a process being up: its start takes real time whatever the scale (seconds, a floor for `for`).
UNCOMPRESSED_FOR_SECONDS = {"TerwayExporterDown": 180.0}


def scaled_rules(scale: float, out: Path) -> Path:
    """The shipped rules with every `for` and the evaluation interval divided by `scale` (nothing else), the
    `for` of UNCOMPRESSED_FOR_SECONDS's alerts kept at least that long."""
    data = yaml.safe_load(RULES_FILE.read_text())
    for group in data["groups"]:
        group["interval"] = f"{EVALUATION_SECONDS / scale:g}s"
        for rule in group["rules"]:
            if "for" in rule:
                original = _seconds(rule["for"])
                floor = min(UNCOMPRESSED_FOR_SECONDS.get(rule.get("alert", ""), 1.0), original)
                rule["for"] = f"{max(original / scale, floor):g}s"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", duration))


class Monitoring:
    def __init__(self, workdir: Path, lanes: list[Lane], settings: Settings) -> None:
        self.workdir, self.lanes, self.settings = workdir, lanes, settings
        self.webhook = Webhook()
        self.prometheus: Proc | None = None
        self.alertmanager: Proc | None = None
        self.prometheus_port = self.alertmanager_port = 0

    def start(self) -> None:
        s = self.settings
        self.alertmanager_port = free_port()
        am = {"route": {"receiver": "hook", "group_by": ["..."], "group_wait": f"{s.group_wait:g}s",
                        "group_interval": f"{s.group_interval:g}s", "repeat_interval": "12h"},
              "receivers": [{"name": "hook", "webhook_configs": [
                  {"url": f"http://127.0.0.1:{self.webhook.port}/hook", "send_resolved": True}]}]}
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(am))
        (self.workdir / "am-data").mkdir(exist_ok=True)
        self.alertmanager = Proc("alertmanager", [
            shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "prometheus-alertmanager",
            f"--config.file={self.workdir / 'alertmanager.yml'}", f"--storage.path={self.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}", "--cluster.listen-address="], self.workdir)
        rules = RULES_FILE if s.scale == 1 else scaled_rules(s.scale, self.workdir / "rules.yaml")
        self.prometheus_port = free_port()
        prom = {"global": {"scrape_interval": f"{s.scrape:g}s", "scrape_timeout": f"{min(s.scrape, 10):g}s",
                           "evaluation_interval": f"{s.evaluation:g}s"},
                "rule_files": [str(rules)],
                "scrape_configs": [{"job_name": "terway-exporter", "static_configs": [
                    {"targets": [f"127.0.0.1:{lane.port}"], "labels": {"lane": lane.name, "kind": lane.kind}}
                    for lane in self.lanes]}],
                "alerting": {"alertmanagers": [{"static_configs": [
                    {"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]}}
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(prom))
        (self.workdir / "prom-data").mkdir(exist_ok=True)
        self.prometheus = Proc("prometheus", [
            shutil.which("prometheus") or "prometheus", f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}"], self.workdir)
        for proc, port in ((self.alertmanager, self.alertmanager_port), (self.prometheus, self.prometheus_port)):
            wait_for(lambda p=port: http(f"http://127.0.0.1:{p}/-/ready")[0] == 200, 60, f"{proc.name} ready")

    def all_scraped(self) -> bool:
        status, body = http(f"http://127.0.0.1:{self.prometheus_port}/api/v1/targets?state=active")
        targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
        return len(targets) == len(self.lanes) and all(t["health"] == "up" for t in targets)

    def stop(self) -> None:
        for proc in (self.prometheus, self.alertmanager):
            if proc is not None:
                proc.stop()
        self.webhook.close()


# ------------------------------------------------------------------ the run


@dataclass
class Settings:
    scale: float = 1.0

    def __getattr__(self, name: str) -> float:
        if name == "scrape":  # compressed runs: no scrape under 5 s, an exporter on a busy machine may need it
            return max(SCRAPE_SECONDS / self.scale, min(SCRAPE_SECONDS, 5.0))
        base = {"scrape": SCRAPE_SECONDS, "evaluation": EVALUATION_SECONDS, "group_wait": GROUP_WAIT_SECONDS,
                "group_interval": GROUP_INTERVAL_SECONDS, "cloud_poll": CLOUD_POLL_SECONDS, "census": CENSUS_SECONDS,
                "warmup": WARMUP_SECONDS, "resolve_deadline": RESOLVE_DEADLINE, "observe": OBSERVE_AFTER_LAST_STEP,
                "restart_after": RESTART_AFTER}
        if name not in base:
            raise AttributeError(name)
        return base[name] / self.scale


@dataclass
class AlertResult:
    lane: str
    alert: str
    severity: str
    fault: str
    fire_seconds: float | None = None
    resolve_seconds: float | None = None


@dataclass
class NearMissResult:
    lane: str
    what: str
    notifications: int = 0
    alerts: list[str] = field(default_factory=list)


@dataclass
class Results:
    scale: float
    alerts: list[AlertResult] = field(default_factory=list)
    near_misses: list[NearMissResult] = field(default_factory=list)
    also_raised: dict[str, list[str]] = field(default_factory=dict)  # fault lane -> other alerts it raised
    baseline_noise: dict[str, list[str]] = field(default_factory=dict)  # fault lane -> alerts before injection
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0


def severities() -> dict[str, str]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return {r["alert"]: r["labels"]["severity"] for g in groups for r in g["rules"] if "alert" in r}


def scenario_copy(name: str, workdir: Path) -> tuple[Path, list[dict]]:
    """The scenario without its steps (the harness replays them), and the steps."""
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    steps = list(data.pop("steps", None) or [])
    data = {k: v for k, v in data.items() if not k.startswith("x-")}  # YAML anchors' holders
    path = workdir / f"{name}.scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, steps


class Run:
    def __init__(self, faults: list[Fault], near_misses: list[NearMiss], workdir: Path, settings: Settings,
                 log: Callable[[str], None]) -> None:
        self.faults, self.near_misses, self.workdir, self.s, self.log = faults, near_misses, workdir, settings, log
        self.severity = severities()
        self.results = Results(scale=settings.scale)
        self.lanes: dict[str, Lane] = {}
        self.steps: dict[str, list[dict]] = {}
        for fault in faults:
            self.lanes[fault.name] = Lane(fault.name, "fault", SCENARIOS / "healthy.yaml", workdir, settings)
        for miss in near_misses:
            path, steps = scenario_copy(miss.scenario or miss.name, workdir)
            self.lanes[miss.name] = Lane(miss.name, "near_miss", path, workdir, settings)
            self.steps[miss.name] = steps
        self.monitoring = Monitoring(workdir, list(self.lanes.values()), settings)

    def start(self) -> None:
        """Lanes first, then Prometheus: a lane's start is setup, not part of the timeline, and a target
        scraped before its exporter listens would be `up == 0` for as long as a loaded machine takes."""
        faults = {f.name: f for f in self.faults}

        def start_lane(lane: Lane) -> None:
            lane.start_simulator()
            setup = faults[lane.name].setup if lane.name in faults else None
            if setup:
                lane.step(setup)
            lane.start_exporter()

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(start_lane, self.lanes.values()))
        self.monitoring.start()
        wait_for(self.monitoring.all_scraped, 300 + 4 * self.s.scrape, "Prometheus scraping every lane", interval=1)

    def execute(self) -> Results:
        r, s, hook = self.results, self.s, self.monitoring.webhook
        r.started = time.time()
        self.log(f"{len(self.lanes)} lanes up; warm-up {s.warmup:.0f} s")
        time.sleep(s.warmup)  # the timeline: healthy history before the first fault
        t0 = time.time()
        for fault in self.faults:
            noise = sorted({a for _, a in hook.firing(fault.name)})
            if noise:
                r.baseline_noise[fault.name] = noise
        active: dict[str, dict[str, Any]] = {}
        for fault in self.faults:
            lane = self.lanes[fault.name]
            injected = time.time()
            active[fault.name] = {"injected": injected, "k": 1, "next": injected + fault.every / s.scale,
                                  "cleared": None}
            try:
                if fault.action == "stop-exporter":
                    lane.stop_exporter()
                if fault.inject:
                    lane.step(fault.inject)
                if fault.repeat:
                    lane.step(self._repeat(fault, 0, 0.0))
            except Exception as err:
                self._error(fault.name, err)
                active[fault.name]["done"] = True
            for alert in fault.alerts:
                r.alerts.append(AlertResult(fault.name, alert, self.severity.get(alert, "?"), fault.what))
        self.log(f"injected {len(self.faults)} faults")
        pending_steps = {name: sorted(steps, key=lambda st: float(st.get("after_seconds", 0)))
                         for name, steps in self.steps.items()}
        restart_at = {m.name: t0 + s.restart_after for m in self.near_misses if m.action == "restart-exporter"}
        last_step = {name: max([float(st.get("after_seconds", 0)) for st in steps] or [0.0])
                     for name, steps in self.steps.items()}
        watch_until = {m.name: t0 + (last_step[m.name] + OBSERVE_AFTER_LAST_STEP) / s.scale
                       + (s.restart_after if m.action else 0) for m in self.near_misses}
        try:
            self._loop(t0, active, pending_steps, restart_at, watch_until)
        finally:
            self._collect()
        return r

    def _loop(self, t0: float, active: dict, pending_steps: dict, restart_at: dict, watch_until: dict) -> None:
        s = self.s
        while True:
            now = time.time()
            for name, steps in pending_steps.items():
                while steps and t0 + float(steps[0].get("after_seconds", 0)) / s.scale <= now:
                    step = steps.pop(0)
                    self._guard(name, lambda n=name, st=step: self.lanes[n].step(st["set"]))
            for name, when in list(restart_at.items()):
                if when <= now:
                    del restart_at[name]
                    self._guard(name, lambda n=name: self._restart(n))
            for fault in self.faults:
                if not active[fault.name].get("done"):
                    try:
                        self._advance(fault, active[fault.name], now)
                    except Exception as err:  # one lane's trouble must not end the others' measurement
                        self._error(fault.name, err)
                        state = active[fault.name]
                        state["failures"] = state.get("failures", 0) + 1
                        state["done"] = state["failures"] >= 10
            faults_done = all(state.get("done") for state in active.values())
            misses_done = all(now >= until for until in watch_until.values())
            if faults_done and misses_done:
                break
            time.sleep(0.5)

    def _collect(self) -> None:
        r, hook = self.results, self.monitoring.webhook
        for miss in self.near_misses:
            fired = hook.firing(miss.name)
            r.near_misses.append(NearMissResult(miss.name, miss.what, len(fired), sorted({a for _, a in fired})))
        for fault in self.faults:
            other = sorted({a for _, a in hook.firing(fault.name)} - set(fault.alerts))
            if other:
                r.also_raised[fault.name] = other
        r.seconds = time.time() - r.started

    def _restart(self, name: str) -> None:
        lane = self.lanes[name]
        lane.stop_exporter()
        lane.start_exporter(wait=False)
        self.log(f"{name}: exporter restarted")

    def _error(self, lane: str, err: Exception) -> None:
        message = f"{lane}: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
        self.results.errors.append(message)
        self.log(message)

    def _guard(self, lane: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as err:
            self._error(lane, err)

    def _repeat(self, fault: Fault, k: int, elapsed: float) -> dict:
        return fault.repeat(k, elapsed)

    def _advance(self, fault: Fault, state: dict[str, Any], now: float) -> None:
        if state.get("done"):
            return
        s, hook, lane = self.s, self.monitoring.webhook, self.lanes[fault.name]
        rows = [a for a in self.results.alerts if a.lane == fault.name]
        injected = state["injected"]
        if state["cleared"] is None:
            if fault.repeat and now >= state["next"]:
                state["next"] = now + fault.every / s.scale
                self._guard(fault.name, lambda: lane.step(self._repeat(fault, state["k"], now - injected)))
                state["k"] += 1
            for row in rows:
                if row.fire_seconds is None:
                    t = hook.first(fault.name, "firing", row.alert, after=injected)
                    if t is not None:
                        row.fire_seconds = t - injected
                        self.log(f"{fault.name}: {row.alert} fired after {fmt(row.fire_seconds)}")
            deadline = max(FIRE_DEADLINE.get(row.severity, FIRE_DEADLINE["warning"]) for row in rows) / s.scale
            if all(row.fire_seconds is not None for row in rows) or now - injected > deadline:
                if fault.restore:
                    lane.step(fault.restore)  # a failure is retried on the next round
                if fault.action == "stop-exporter":
                    lane.start_exporter(wait=False)
                state["cleared"] = time.time()
                self.log(f"{fault.name}: fault removed")
            return
        cleared = state["cleared"]
        for row in rows:
            if row.fire_seconds is not None and row.resolve_seconds is None:
                t = hook.first(fault.name, "resolved", row.alert, after=cleared)
                if t is not None:
                    row.resolve_seconds = t - cleared
                    self.log(f"{fault.name}: {row.alert} resolved after {fmt(row.resolve_seconds)}")
        if all(row.fire_seconds is None or row.resolve_seconds is not None for row in rows) or \
                now - cleared > s.resolve_deadline:
            state["done"] = True

    def stop(self) -> None:
        for lane in self.lanes.values():
            lane.stop()
        self.monitoring.stop()


# ------------------------------------------------------------------ report


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def target_of(row: AlertResult) -> tuple[str, float]:
    if row.alert in ("TerwayPodsCannotGetIP", "TerwayVSwitchIPsExhausted"):
        return "5 min", TARGET_FAST_PAGE
    if row.severity == "critical":
        return "10 min", TARGET_CRITICAL
    return "30 min", TARGET_WARNING


def markdown(results: Results) -> str:
    scale_note = "" if results.scale == 1 else (
        f"\nTime compressed {results.scale:g}x (`--scale`): the figures (real seconds) check the harness; they are "
        "not latencies, and no target applies.\n")
    lines = ["| alert | severity | fault | time to fire | time to resolve |", "|---|---|---|---|---|"]
    for row in sorted(results.alerts, key=lambda a: (a.severity != "critical", a.alert, a.lane)):
        lines.append(f"| {row.alert} | {row.severity} | {row.fault} | {fmt(row.fire_seconds)} | "
                     f"{fmt(row.resolve_seconds)} |")
    if results.scale == 1:
        severity = severities()
        for alert, fault, figure in PROMTOOL_ONLY:
            lines.append(f"| {alert} | {severity.get(alert, '?')} | {fault} | {figure} | not measured |")
    lines += ["", "| scenario | notifications (must be 0) |", "|---|---|"]
    for miss in results.near_misses:
        extra = f" ({', '.join(miss.alerts)})" if miss.alerts else ""
        lines.append(f"| {miss.what} (`{miss.lane}`) | {miss.notifications}{extra} |")
    if results.scale == 1:
        lines += ["", "| target | alert | figure | met |", "|---|---|---|---|"]
    targets = sorted(results.alerts, key=lambda a: (a.severity != "critical", a.alert, a.lane))
    for row in targets if results.scale == 1 else ():
        label, limit = target_of(row)
        met = row.fire_seconds is not None and row.fire_seconds <= limit
        lines.append(f"| {row.severity} within {label} | {row.alert} ({row.lane}) | {fmt(row.fire_seconds)} | "
                     f"{'yes' if met else 'NO'} |")
    extras = []
    for lane, alerts in sorted(results.also_raised.items()):
        extras.append(f"- `{lane}` also raised: {', '.join(alerts)}")
    for lane, alerts in sorted(results.baseline_noise.items()):
        extras.append(f"- `{lane}` raised before its fault: {', '.join(alerts)}")
    for error in results.errors:
        extras.append(f"- error: {error}")
    if extras:
        lines += ["", *extras]
    return "\n".join(lines) + "\n" + scale_note


def select(names: list[str] | None, quick: bool) -> tuple[list[Fault], list[NearMiss]]:
    faults, misses = list(FAULTS), list(NEAR_MISSES)
    if quick and not names:
        names = [*QUICK_FAULTS, *QUICK_NEAR_MISSES]
    if names:
        known = {f.name for f in faults} | {m.name for m in misses}
        unknown = sorted(set(names) - known)
        if unknown:
            raise SystemExit(f"unknown lanes {unknown}; known: {sorted(known)}")
        faults = [f for f in faults if f.name in names]
        misses = [m for m in misses if m.name in names]
    return faults, misses


def run(faults: list[Fault], near_misses: list[NearMiss], scale: float = 1.0, workdir: Path | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> Results:
    """Run the lanes and return their results; every process is stopped before it returns."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="terway-detection-")) if own else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    harness = Run(faults, near_misses, workdir, Settings(scale), log)
    try:
        harness.start()
        harness.execute()
    except Exception as err:  # report what was measured, and why the rest was not
        harness.results.errors.append(f"run: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
        log(harness.results.errors[-1])
    finally:
        harness.stop()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return harness.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two faults and every near miss, --scale 10")
    parser.add_argument("--scale", type=float, default=None, help="compress time N-fold (default 1; --quick: 10)")
    parser.add_argument("--only", default="", help="comma-separated lanes (fault or near-miss names)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary directory)")
    args = parser.parse_args(argv)
    scale = args.scale if args.scale is not None else (10.0 if args.quick else 1.0)
    faults, misses = select([n for n in args.only.split(",") if n] or None, args.quick)
    results = run(faults, misses, scale, args.workdir)
    text = markdown(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2))
    if args.markdown:
        args.markdown.write_text(text)
    fired = all(row.fire_seconds is not None for row in results.alerts)
    quiet = all(miss.notifications == 0 for miss in results.near_misses)
    return 0 if fired and quiet and not results.errors else 1


if __name__ == "__main__":
    sys.exit(main())
