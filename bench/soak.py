"""Chaos soak: terway-exporter at 500 nodes under churn and a timeline of faults, measured from outside.

    python bench/soak.py                   # 500 nodes, 30 minutes: two rounds of every fault (~33 min in all)
    python bench/soak.py --quick           # every fault once in 140 s, shorter windows (CI)
    python bench/soak.py --quick --faults throttle,restart,rotation,malformed --duration 60

It starts the simulator (`terway-exporter simulate --scenario scale`, which churns 1% of pods and
Node CRs per minute) and the exporter (`terway-exporter serve`) in their own processes, the exporter
with RRSA credentials from the simulated STS (credentials that live 900 s + a refresh period, so
they rotate all along), then plays the fault timeline through the simulators' test-only controls
(/_sim/cloud/faults, /_sim/kube/*, /_sim/credentials/*) while it watches the exporter from outside:

- a monitor scrapes /metrics every second: terway_exporter_source_up and
  terway_exporter_source_last_success_timestamp_seconds per source, watch restarts, scrapes rejected;
- a steady scraper at Prometheus's pace (every 5 s, gzip, 10 s timeout) counts failed scrapes;
- slow scrapers ask for /metrics uncompressed through a 4 KiB receive buffer and never read it or
  read 1 KiB a second (two all along, eight more in the `slow-scrapers` window): the server's
  bounded write (ScrapeLimits: 32 slots, 30 s write timeout) must cut them off, not the steady one;
- the exporter's log, every /metrics body and the / page are searched for the credentials of the
  simulated world (the static AccessKey secret, every STS secret and token issued, the OIDC tokens);
- /proc gives resident memory (after warm-up and at the end) and CPU.

Per fault it prints the time from the fault's start until an affected source reads
source_up 0, and from the fault's end until every source that went down reads 1 again ("up") and
has a last success after the fault ended ("fresh"), or, for a fault the exporter should ride out
(a relist, a rotation, malformed objects), the evidence that it saw it. Exit status 0 when every
figure meets its expectation.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from loopback_ports import free_port
from probes import Process, cpu_seconds, memory_mb, wait_until_ready
from run import start_simulator

KUBE_TOKEN = "terway-sim-token"  # the simulated API server's bearer token (kube_api.DEFAULT_TOKEN)
ROLE_ARN = "acs:ram::1234567890123456:role/terway-exporter"
OIDC_PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c-soak"
SCRAPE_HEADERS = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1", "Accept-Encoding": "gzip"}
# The exporter's defaults the expectations follow (sources/cloud/settings.py, sources/kube/source.py, server.py).
CLOUD_REQUEST_TIMEOUT, CLOUD_ATTEMPTS = 10.0, 4
WATCH_SILENCE = 150.0
KUBE_BACKOFF_MAX = 60.0
WRITE_TIMEOUT = 30.0
SLOW_RCVBUF = 4096
AUTH_CODES = ("InvalidAccessKeyId.NotFound", "InvalidSecurityToken.Expired",
              "InvalidSecurityToken.MismatchWithAccessKey", "MissingSecurityToken", "SignatureDoesNotMatch",
              "IncompleteSignature", "CredentialError")


# ------------------------------------------------------------------ options


@dataclass
class Options:
    nodes: int = 500
    duration: float = 1800.0  # seconds of timeline after the warm-up
    warmup: float = 120.0  # seconds after every source is up, before RSS "start" is taken
    poll_interval: float = 10.0
    census_interval: float = 300.0
    refresh_period: float = 60.0  # STS credentials live 900 s + this: the provider renews them this often
    scrape_interval: float = 5.0
    monitor_interval: float = 1.0
    recovery_grace: float = 120.0  # after the timeline, wait at most this long for recoveries
    quick: bool = False
    smoke: bool = False  # the CI test's four faults
    faults: tuple[str, ...] = ()  # kinds to play; empty: all
    restart_down: float = 20.0
    freeze_seconds: float = 200.0
    keep: Path | None = None


# ------------------------------------------------------------------ what the soak sees


# The exporter's own families the soak reads; labels in any order.
SERIES = re.compile(rb'^(terway_exporter_(?:source_up|source_last_success_timestamp_seconds|kube_watch_restarts_total|'
                    rb'scrapes_rejected_total))\{([^}]*)\} (\S+)$', re.M)
LABEL = re.compile(rb'(\w+)="([^"]*)"')


@dataclass
class Sample:
    t: float  # seconds since the soak's clock started
    wall: float
    up: dict[str, float]
    last: dict[str, float]
    restarts: dict[str, float]  # reason -> total over resources
    rejected: dict[str, float]


def parse_metrics(body: bytes, t: float, wall: float) -> Sample:
    sample = Sample(t, wall, {}, {}, {}, {})
    for name, labels, value in SERIES.findall(body):
        label = {k.decode(): v.decode() for k, v in LABEL.findall(labels)}
        if name == b"terway_exporter_source_up":
            sample.up[label["source"]] = float(value)
        elif name == b"terway_exporter_source_last_success_timestamp_seconds":
            sample.last[label["source"]] = float(value)
        elif name == b"terway_exporter_kube_watch_restarts_total":
            sample.restarts[label["reason"]] = sample.restarts.get(label["reason"], 0.0) + float(value)
        else:
            sample.rejected[label["reason"]] = float(value)
    return sample


class SecretScan:
    """Looks for the simulated world's credentials in everything the exporter says."""

    # Shapes of what the simulated STS mints (world.issue_temporary_credential) and of the static AK.
    SECRET_SHAPES = re.compile(rb"CAIS[0-9a-f]{40}|(?<!STS\.)Sim[0-9a-f]{20}|SimulatorSecret")
    KEY_ID_SHAPES = re.compile(rb"STS\.Sim[0-9a-f]{20}|LTAI5tSimulatorKeyId")

    def __init__(self) -> None:
        self.known: set[bytes] = set()
        self.found: list[tuple[str, str]] = []  # (where, what): secrets, tokens
        self.key_ids: list[tuple[str, str]] = []  # AccessKey IDs (not secret, but the exporter scrubs them too)
        self.scanned = {"log bytes": 0, "/metrics bodies": 0, "/ pages": 0}

    def add(self, *values: str) -> None:
        self.known |= {v.encode() for v in values if v and len(v) >= 8}

    def scan(self, data: bytes, where: str, kind: str) -> None:
        self.scanned[kind] = self.scanned.get(kind, 0) + (len(data) if kind == "log bytes" else 1)
        hits = {m.group(0) for m in self.SECRET_SHAPES.finditer(data)}
        hits |= {s for s in self.known if s in data}
        self.found += [(where, h.decode(errors="replace")[:12] + "...") for h in sorted(hits)]
        self.key_ids += [(where, m.group(0).decode()[:12] + "...") for m in self.KEY_ID_SHAPES.finditer(data)]


@dataclass
class ScrapeStats:
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (t, reason), the first 200

    def fail(self, t: float, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 200:
            self.failures.append((t, reason))

    def failed_between(self, a: float, b: float) -> int:
        return sum(1 for t, _ in self.failures if a <= t <= b)

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class SlowStats:
    started: int = 0
    cut: int = 0  # the server ended the response before the whole body was read
    complete: int = 0
    outlasted: int = 0  # still receiving when the reader gave up (write timeout + 15 s): not cut off
    refused: int = 0  # 503 or no connection
    seconds_to_cut: list[float] = field(default_factory=list)


# ------------------------------------------------------------------ faults


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the timeline starts
    duration: float  # 0: an instant action
    round: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    # filled in while it runs
    started: float | None = None
    ended: float | None = None
    started_wall: float | None = None
    ended_wall: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}#{self.round}"


@dataclass(frozen=True)
class Kind:
    title: str
    side: str  # "cloud" or "kube" sources; "scrape" for the HTTP server
    expect_down: bool | None  # True: must read 0 then recover; False: must stay up; None: may blip
    expected: Callable[[Options, Fault], str]
    detect_bound: Callable[[Options, Fault], float | None]  # seconds after the start
    recover_bound: Callable[[Options, Fault], float | None]  # seconds after the end


def _cloud_detect(o: Options, f: Fault) -> float:
    # the poll in progress finishes, the next one starts within an interval, its first call exhausts its retries
    return o.poll_interval + 10.0


def _cloud_recover(o: Options, f: Fault) -> float:
    # a poll that began inside the window ends with its retries; the next one is fresh
    return 2 * o.poll_interval + 10.0


# After throttling the exporter's own limiter halves its rate per throttled call, down to 1/16 of
# --cloud-api-rate (5/s: 0.3/s), and doubles it back once a minute: the first polls after the storm
# are slow on purpose (sources/cloud/ratelimit.py).
THROTTLE_SLOWDOWN = 30.0

KINDS: dict[str, Kind] = {
    "throttle": Kind(
        "cloud throttling storm (Throttling.User on every call)", "cloud", True,
        lambda o, f: f"cloud sources 0 within {_cloud_detect(o, f) + 5:.0f} s (next poll, 4 attempts); up and "
                     f"fresh within {_cloud_recover(o, f) + THROTTLE_SLOWDOWN:.0f} s of the end (the exporter's "
                     "limiter slows down after throttling)",
        lambda o, f: _cloud_detect(o, f) + 5, lambda o, f: _cloud_recover(o, f) + THROTTLE_SLOWDOWN),
    "5xx": Kind(
        "cloud 5xx (ServiceUnavailable; DescribeVSwitches InternalError)", "cloud", True,
        lambda o, f: f"cloud sources 0 within {_cloud_detect(o, f):.0f} s; up and fresh within "
                     f"{_cloud_recover(o, f):.0f} s of the end",
        _cloud_detect, _cloud_recover),
    "timeout": Kind(
        "cloud timeouts (every call delayed 15 s > the 10 s request timeout)", "cloud", True,
        lambda o, f: f"cloud sources 0 within {o.poll_interval + CLOUD_ATTEMPTS * CLOUD_REQUEST_TIMEOUT + 10:.0f} s "
                     f"(4 attempts x 10 s); up and fresh within {CLOUD_REQUEST_TIMEOUT + _cloud_recover(o, f):.0f} s "
                     "of the end",
        lambda o, f: o.poll_interval + CLOUD_ATTEMPTS * CLOUD_REQUEST_TIMEOUT + 10,
        lambda o, f: CLOUD_REQUEST_TIMEOUT + _cloud_recover(o, f)),
    "rotation": Kind(
        "credential rotation (new OIDC token; STS refuses the old one; STS credentials renewed)", "cloud", False,
        lambda o, f: f"no source 0, no auth error; a credential from the new token within "
                     f"{o.refresh_period + o.poll_interval + 5:.0f} s",
        lambda o, f: o.refresh_period + o.poll_interval + 5, lambda o, f: None),
    "410": Kind(
        "410 Gone (etcd compaction, then every watch ends)", "kube", False,
        lambda o, f: "no source 0; watches resume, get 410 and relist (restarts{reason=expired}) within 10 s",
        lambda o, f: 10.0, lambda o, f: None),
    "cut": Kind(
        "cut watch streams (mid-line, then connection reset)", "kube", None,
        lambda o, f: "watches resume (restarts{reason=error}) within 10 s; a source may read 0 for the ~1 s "
                     "backoff; up within 10 s",
        lambda o, f: 10.0, lambda o, f: 10.0),
    "restart": Kind(
        "API server restart (port refused, then back with the same store)", "kube", True,
        lambda o, f: f"kube sources 0 within 5 s; up within {min(2 * f.duration + 5, KUBE_BACKOFF_MAX + 5):.0f} s "
                     "of its return (jittered backoff)",
        lambda o, f: 5.0, lambda o, f: min(2 * f.duration + 5, KUBE_BACKOFF_MAX + 5)),
    "freeze": Kind(
        "frozen API server (no answer, no event, no bookmark)", "kube", None,
        lambda o, f: (f"kube sources 0 within {WATCH_SILENCE + 5:.0f} s (a watch silent for {WATCH_SILENCE:.0f} s; "
                      "sooner when a watch reaches its 330 s request timeout meanwhile); up within 30 s of the thaw"
                      if f.duration > WATCH_SILENCE else
                      f"window {f.duration:.0f} s < the {WATCH_SILENCE:.0f} s silence timeout: no source 0; "
                      "watches carry on after the thaw"),
        lambda o, f: WATCH_SILENCE + 5, lambda o, f: 30.0),
    "malformed": Kind(
        "malformed objects (absurd counts, wrong types) put into the store", "kube", False,
        lambda o, f: "no source 0; each object skipped with a warning naming it, within 10 s",
        lambda o, f: 10.0, lambda o, f: None),
    "slow-scrapers": Kind(
        "slow scrapers (8 more clients, plain body, 4 KiB receive buffer, never read or read 1 KiB/s)", "scrape",
        False,
        lambda o, f: f"no failed steady scrape, no 503; a client still holding its response slot after "
                     f"{WRITE_TIMEOUT:.0f} s is cut off (scrapes_rejected{{write_timeout}})",
        lambda o, f: None, lambda o, f: None),
}


def timeline(options: Options) -> list[Fault]:
    """The faults in order; cloud and Kubernetes faults overlap where they hit different sources."""
    poll, refresh = options.poll_interval, options.refresh_period
    if options.smoke:  # the CI test: four faults in about 45 s
        plan = [Fault("5xx", 3, 3 * poll), Fault("restart", 3, options.restart_down),
                Fault("rotation", 26, refresh + poll), Fault("malformed", 26, 12)]
    elif options.quick:
        # Throttling last on the cloud side: the exporter's limiter stays slow for minutes after it.
        plan = [  # cloud side: 5xx, timeout, rotation, throttle; Kubernetes side: 410, restart, malformed, cut, freeze
            # Three polls: the four attempts of a call can outlast a shorter outage (a blip is ridden out).
            Fault("5xx", 3, 3 * poll), Fault("410", 3, 0),
            Fault("restart", 20, options.restart_down),
            Fault("timeout", 22, 55),
            Fault("malformed", 38, 12), Fault("cut", 56, 0, params={"modes": ["partial"]}),
            Fault("freeze", 72, options.freeze_seconds),
            Fault("slow-scrapers", 86, 30),
            Fault("rotation", 108, refresh + poll),
            Fault("throttle", 126, 2 * poll),
        ]
    else:
        plan = []
        for number, start in ((1, 30.0), (2, 800.0)):
            plan += [
                Fault("5xx", start, 30, number), Fault("410", start + 2, 0, number),
                Fault("timeout", start + 90, 75, number),
                Fault("cut", start + 90, 15, number, {"modes": ["partial", "abort"]}),
                Fault("restart", start + 185, options.restart_down, number),
                Fault("rotation", start + 210, 60, number), Fault("malformed", start + 260, 60, number),
                Fault("throttle", start + 300, 25, number),
                Fault("slow-scrapers", start + 390, 60, number),
                Fault("freeze", start + 480, options.freeze_seconds, number),
            ]
    if options.faults:
        plan = [f for f in plan if f.kind in options.faults]
    return sorted(plan, key=lambda f: f.at)


# ------------------------------------------------------------------ the simulators' controls


@dataclass
class Control:
    session: aiohttp.ClientSession
    cloud: str
    kube: str
    creds: str
    token_file: Path
    scan: SecretScan
    oidc_tokens: list[str] = field(default_factory=list)

    async def post(self, url: str, body: Any) -> Any:
        async with self.session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"{url}: {resp.status} {data}")
            return data

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Any:
        async with self.session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status >= 400:
                raise RuntimeError(f"{url}: {resp.status}")
            return await resp.json(content_type=None)

    async def cloud_faults(self, faults: dict[str, Any]) -> None:
        await self.post(self.cloud + "/_sim/cloud/faults", faults)

    async def kube_control(self, action: str, body: dict[str, Any] | None = None) -> Any:
        return await self.post(f"{self.kube}/_sim/kube/{action}", body or {})

    async def kube_get(self, path: str) -> Any:
        return await self.get(self.kube + path, {"Authorization": f"Bearer {KUBE_TOKEN}"})

    async def rotate_oidc_token(self) -> str:
        """Like the kubelet: a new projected token replaces the file atomically; STS accepts only it."""
        token = f"eyJhbGciOiJSUzI1NiJ9.soak-{secrets.token_hex(16)}.c2lnbmF0dXJl"
        tmp = self.token_file.with_suffix(".new")
        tmp.write_text(token)
        os.replace(tmp, self.token_file)
        self.oidc_tokens.append(token)
        self.scan.add(token)
        await self.post(self.creds + "/_sim/credentials/config", {"oidc_token": token})
        return token

    async def issued(self) -> list[dict[str, Any]]:
        creds = (await self.get(self.creds + "/_sim/credentials/issued"))["credentials"]
        for c in creds:
            self.scan.add(c["access_key_secret"], c["security_token"])
        return creds

    async def cloud_codes(self) -> dict[str, int]:
        calls = await self.get(self.cloud + "/_sim/cloud/calls")
        codes: dict[str, int] = {}
        for row in calls["actions"].values():
            for code, count in row["codes"].items():
                codes[code] = codes.get(code, 0) + count
        return codes

    async def sts_calls(self) -> dict[str, int]:
        return await self.get(self.creds + "/_sim/credentials/calls")


async def malformed_objects(ctl: Control) -> list[tuple[str, str, dict[str, Any]]]:
    """(store resource, name the exporter logs, object): copies of real objects with fields no
    API server would refuse but no reader can use, under names of their own."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    pods = (await ctl.kube_get("/api/v1/namespaces/kube-system/pods?labelSelector=app%3Dterway-eniip&limit=1"))["items"]
    if pods:
        pod = copy.deepcopy(pods[0])
        pod["metadata"]["name"] = "terway-eniip-soak-absurd"
        pod["metadata"].pop("resourceVersion", None)
        statuses = pod.setdefault("status", {}).setdefault("containerStatuses", [{}])
        statuses[0]["restartCount"] = 1e308
        out.append(("pods", "kube-system/terway-eniip-soak-absurd", pod))
    nodes = (await ctl.kube_get("/api/v1/nodes?limit=1"))["items"]
    if nodes:
        node = copy.deepcopy(nodes[0])
        node["metadata"]["name"] = "soak-malformed-node"
        node["metadata"]["labels"] = ["labels", "that", "are", "a", "list"]
        out.append(("nodes", "soak-malformed-node", node))
    crs = (await ctl.kube_get("/apis/network.alibabacloud.com/v1beta1/nodes?limit=1"))["items"]
    if crs:
        cr = copy.deepcopy(crs[0])
        cr["metadata"]["name"] = "soak-malformed-node-cr"
        cr.setdefault("spec", {}).setdefault("pool", {})["maxPoolSize"] = -7
        out.append(("crnodes", "soak-malformed-node-cr", cr))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.append(("events", "default/soak-malformed.event", {
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": "soak-malformed.event", "namespace": "default", "uid": "soak-malformed-event"},
        "type": "Warning", "reason": "AllocIPFailed", "message": "soak: an absurd count", "count": 1e308,
        "involvedObject": {"kind": "Pod", "name": "soak", "namespace": "default"},
        "source": {"component": "terway-daemon"}, "firstTimestamp": now, "lastTimestamp": now}))
    return out


async def begin(fault: Fault, ctl: Control, soak: Soak) -> None:
    kind = fault.kind
    if kind == "throttle":
        await ctl.cloud_faults({"*": {"code": "Throttling.User"}})
    elif kind == "5xx":
        await ctl.cloud_faults({"*": {"code": "ServiceUnavailable"}, "DescribeVSwitches": {"code": "InternalError"}})
    elif kind == "timeout":
        await ctl.cloud_faults({"*": {"delay_seconds": CLOUD_REQUEST_TIMEOUT + 5}})
    elif kind == "rotation":
        fault.notes["codes_before"] = await ctl.cloud_codes()
        fault.notes["sts_before"] = await ctl.sts_calls()
        await ctl.rotate_oidc_token()
    elif kind == "410":
        await ctl.kube_control("compact")
        await ctl.kube_control("cut-watches", {"mode": "close"})
    elif kind == "cut":
        modes = fault.params.get("modes", ["partial"])
        await ctl.kube_control("cut-watches", {"mode": modes[0]})
        if len(modes) > 1:
            gap = fault.duration / (len(modes) - 1)
            for mode in modes[1:]:
                await asyncio.sleep(gap)
                await ctl.kube_control("cut-watches", {"mode": mode})
    elif kind == "restart":
        await ctl.kube_control("restart", {"down_seconds": fault.duration})
    elif kind == "freeze":
        await ctl.kube_control("freeze", {"frozen": True})
    elif kind == "malformed":
        objects = await malformed_objects(ctl)
        fault.notes["objects"] = [name for _, name, _ in objects]
        for resource, _name, obj in objects:
            await ctl.kube_control("put", {"resource": resource, "object": obj})
    elif kind == "slow-scrapers":
        stats = fault.notes["slow"] = SlowStats()
        fault.notes["tasks"] = [asyncio.create_task(soak.slow_scrape("stall" if i % 2 else "trickle", stats))
                                for i in range(8)]


async def end(fault: Fault, ctl: Control, soak: Soak) -> None:
    kind = fault.kind
    if kind in ("throttle", "5xx", "timeout"):
        await ctl.cloud_faults({})
    elif kind == "rotation":
        fault.notes["codes_after"] = await ctl.cloud_codes()
        fault.notes["sts_after"] = await ctl.sts_calls()
        fault.notes["issued"] = await ctl.issued()
    elif kind == "freeze":
        await ctl.kube_control("freeze", {"frozen": False})
    elif kind == "restart":
        # The API server comes back by itself after `down_seconds`; the fault ends when it answers.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await ctl.get(ctl.kube + "/_sim/kube/stats")
                break
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                await asyncio.sleep(0.2)
    elif kind == "malformed":
        await ctl.kube_control("refresh")  # derived objects only: the malformed ones are deleted


# ------------------------------------------------------------------ the soak


class Soak:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.o = options
        self.workdir = workdir
        self.t0 = time.monotonic()
        self.samples: list[Sample] = []
        self.monitor = ScrapeStats()
        self.steady = ScrapeStats()
        self.slow = SlowStats()
        self.scan = SecretScan()
        self.rss: list[tuple[float, float]] = []
        self.log_lines: list[tuple[float, str]] = []  # (t, line) of WARNING and ERROR lines
        self.log_levels: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.exporter: Process | None = None
        self.base = ""
        self._log_offset = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -------------------------------------------------------------- observers

    async def watch_metrics(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            started, wall = self.now(), time.time()
            try:
                async with session.get(self.base + "/metrics", headers=SCRAPE_HEADERS,
                                       timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    body = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as err:
                self.monitor.fail(started, type(err).__name__)
            else:
                if status == 200:
                    self.monitor.ok += 1
                    self.monitor.latencies.append(self.now() - started)
                    self.samples.append(parse_metrics(body, started, wall))
                    self.scan.scan(body, f"/metrics t={started:.0f}s", "/metrics bodies")
                else:
                    self.monitor.fail(started, f"HTTP {status}")
            await asyncio.sleep(max(0.0, self.o.monitor_interval - (self.now() - started)))

    async def steady_scraper(self, session: aiohttp.ClientSession) -> None:
        """Prometheus's pace: one scrape every scrape_interval, 10 s scrape timeout."""
        while not self.stop.is_set():
            started = self.now()
            try:
                async with session.get(self.base + "/metrics", headers=SCRAPE_HEADERS,
                                       timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    body = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as err:
                self.steady.fail(started, type(err).__name__)
            else:
                if status == 200:
                    self.steady.ok += 1
                    self.steady.latencies.append(self.now() - started)
                    self.scan.scan(body, f"/metrics t={started:.0f}s", "/metrics bodies")
                else:
                    self.steady.fail(started, f"HTTP {status}")
            await asyncio.sleep(max(0.0, self.o.scrape_interval - (self.now() - started)))

    async def index_pages(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            for path in ("/", "/readyz"):
                try:
                    async with session.get(self.base + path, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                        self.scan.scan(await resp.read(), f"{path} t={self.now():.0f}s", "/ pages")
                except (TimeoutError, aiohttp.ClientError):
                    pass
            await asyncio.sleep(2.0)

    async def sample_process(self) -> None:
        while not self.stop.is_set():
            if self.exporter is not None and self.exporter.alive():
                try:
                    self.rss.append((self.now(), memory_mb(self.exporter.pid, "VmRSS")))
                except (OSError, KeyError):
                    pass
            self.read_log()
            await asyncio.sleep(2.0)

    def read_log(self) -> None:
        if self.exporter is None:
            return
        with open(self.exporter.log_path, "rb") as handle:
            handle.seek(self._log_offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        self._log_offset += complete
        t = self.now()
        for raw in data[:complete].splitlines():
            line = raw.decode(errors="replace")
            level = next((lv for lv in ("ERROR", "WARNING", "INFO", "CRITICAL") if f" {lv} " in line), "other")
            self.log_levels[level] = self.log_levels.get(level, 0) + 1
            if level in ("ERROR", "WARNING", "CRITICAL") or "Traceback" in line:
                self.log_lines.append((t, line))
        self.scan.scan(data[:complete], "exporter log", "log bytes")

    async def refresh_secrets(self, ctl: Control) -> None:
        """Keeps the list of issued STS secrets current (the scan also knows their shape)."""
        while not self.stop.is_set():
            try:
                await ctl.issued()
            except (TimeoutError, aiohttp.ClientError, RuntimeError):
                pass
            await asyncio.sleep(5.0)

    # -------------------------------------------------------------- slow scrapers

    async def slow_scrape(self, mode: str, stats: SlowStats) -> None:
        """One scrape asking for the plain body through a tiny receive window: never read
        ("stall") or read 1 KiB a second ("trickle"), until the server ends it."""
        host, port = self.base.removeprefix("http://").rsplit(":", 1)
        stats.started += 1
        started = time.monotonic()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.setblocking(False)
        writer = None
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            reader, writer = await asyncio.open_connection(sock=sock, limit=SLOW_RCVBUF)
            writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/plain\r\n"
                         "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            if mode == "stall":
                await asyncio.sleep(WRITE_TIMEOUT + 10)
            received, gave_up = b"", time.monotonic() + WRITE_TIMEOUT + 15
            while True:
                if mode == "trickle" and time.monotonic() > gave_up:
                    stats.outlasted += 1
                    return
                try:
                    chunk = await asyncio.wait_for(reader.read(1024), timeout=WRITE_TIMEOUT + 30)
                except (TimeoutError, ConnectionError):
                    break
                if not chunk:
                    break
                received += chunk
                if mode == "trickle":
                    await asyncio.sleep(1.0)
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if not head.startswith(b"HTTP/1.1 200"):
                stats.refused += 1
            elif length and len(body) >= int(length.group(1)):
                stats.complete += 1
            else:
                stats.cut += 1
                if mode == "trickle":  # a stalled reader only looks after its own wait
                    stats.seconds_to_cut.append(time.monotonic() - started)
        except (TimeoutError, OSError):
            stats.refused += 1
        finally:
            if writer is not None:
                writer.close()
            else:
                sock.close()

    async def slow_scrapers(self) -> None:
        """Two slow clients all along, each starting again when the server ends its scrape."""
        async def loop(mode: str) -> None:
            while not self.stop.is_set():
                await self.slow_scrape(mode, self.slow)
        tasks = [asyncio.create_task(loop(mode)) for mode in ("stall", "trickle")]
        await self.stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -------------------------------------------------------------- running

    async def play(self, faults: list[Fault], ctl: Control, start: float) -> None:
        actions = sorted([(f.at, 0, f) for f in faults] + [(f.at + f.duration, 1, f) for f in faults],
                         key=lambda a: (a[0], a[1]))
        pending: list[asyncio.Task] = []
        for at, phase, fault in actions:
            await asyncio.sleep(max(0.0, start + at - self.now()))
            if phase == 0:
                fault.started, fault.started_wall = self.now(), time.time()
                print(f"  t={fault.started:6.1f}s  {fault.name} begins", file=sys.stderr, flush=True)
                task = asyncio.create_task(begin(fault, ctl, self))
                pending.append(task)
                if fault.kind != "cut":
                    await task
            else:
                await end(fault, ctl, self)
                fault.ended, fault.ended_wall = self.now(), time.time()
                print(f"  t={fault.ended:6.1f}s  {fault.name} ends", file=sys.stderr, flush=True)
        await asyncio.gather(*pending)
        bursts = [t for f in faults for t in f.notes.get("tasks", [])]
        await asyncio.gather(*bursts, return_exceptions=True)


# ------------------------------------------------------------------ judging


@dataclass
class Result:
    fault: str
    title: str
    expected: str
    start: float
    end: float
    detect: float | None = None  # seconds from start to the first affected source at 0
    down_sources: list[str] = field(default_factory=list)
    up: float | None = None  # seconds from end until every source that went down reads 1
    fresh: float | None = None  # ... and has a last success after the end
    evidence: str = ""
    evidence_seconds: float | None = None
    ok: bool = False
    verdict: str = ""


def affected(side: str, source: str) -> bool:
    return source.startswith(side + "_")


def judge(fault: Fault, soak: Soak, o: Options) -> Result:
    kind = KINDS[fault.kind]
    start, end_ = fault.started or 0.0, fault.ended if fault.ended is not None else soak.now()
    end_wall = fault.ended_wall or time.time()
    res = Result(fault.name, kind.title, kind.expected(o, fault), start, end_)
    # A source that reads 0 from the start until the end (or until the detection bound, for a call
    # that began inside the window and fails after it) is this fault's doing.
    # Only sources up when it began: one still down from an earlier fault is not this one's.
    until = max(end_, start + (kind.detect_bound(o, fault) or 0.0)) + 2.0
    before = next((s for s in reversed(soak.samples) if s.t < start), None)
    candidates = {src for src, v in (before.up if before else {}).items() if v == 1 and affected(kind.side, src)}
    down: set[str] = set()
    last_down = start
    for s in soak.samples:
        if start <= s.t <= until:
            now_down = {src for src, v in s.up.items() if v == 0 and src in candidates}
            if now_down and res.detect is None:
                res.detect = s.t - start
            if now_down:
                last_down = s.t
            down |= now_down
    res.down_sources = sorted(down)
    if down:
        for s in soak.samples:
            if s.t < max(end_, last_down):  # recovered: after the end, and after it was last seen down
                continue
            if res.up is None and all(s.up.get(src) == 1 for src in down):
                res.up = s.t - end_
            if res.up is not None and all(s.up.get(src) == 1 and s.last.get(src, 0) >= end_wall for src in down):
                res.fresh = s.t - end_
                break
    _evidence(fault, soak, res, o)
    res.ok, res.verdict = _verdict(kind, fault, res, o)
    return res


def _first_counter_rise(soak: Soak, start: float, end: float, reason: str, table: str) -> tuple[float | None, float]:
    """Seconds from `start` until the counter rose, and by how much until `end`."""
    before = next((getattr(s, table).get(reason, 0.0) for s in reversed(soak.samples) if s.t < start), 0.0)
    within = [s for s in soak.samples if start <= s.t <= end]
    rise = next((s.t - start for s in within if getattr(s, table).get(reason, 0.0) > before), None)
    return rise, (getattr(within[-1], table).get(reason, 0.0) - before) if within else 0.0


def _evidence(fault: Fault, soak: Soak, res: Result, o: Options) -> None:
    kind, start, until = fault.kind, res.start, res.end + 30.0
    if kind == "410":
        res.evidence_seconds, n = _first_counter_rise(soak, start, until, "expired", "restarts")
        res.evidence = f"{n:.0f} watch restarts (expired)"
    elif kind == "cut":
        res.evidence_seconds, n = _first_counter_rise(soak, start, until, "error", "restarts")
        res.evidence = f"{n:.0f} watch restarts (error)"
    elif kind == "freeze":
        silent_s, n = _first_counter_rise(soak, start, until, "silent", "restarts")
        error_s, m = _first_counter_rise(soak, start, until, "error", "restarts")
        res.evidence_seconds = min((t for t in (silent_s, error_s) if t is not None), default=None)
        res.evidence = f"watch restarts: {n:.0f} silent, {m:.0f} error (request timeout or a hung relist)"
    elif kind == "slow-scrapers":
        res.evidence_seconds, n = _first_counter_rise(soak, start, res.end + WRITE_TIMEOUT + 15, "write_timeout",
                                                      "rejected")
        stats: SlowStats = fault.notes.get("slow") or SlowStats()
        cut = stats.seconds_to_cut
        fault.notes["steady_failed"] = soak.steady.failed_between(start, res.end + WRITE_TIMEOUT + 15)
        _, fault.notes["refused_503"] = _first_counter_rise(soak, start, res.end + WRITE_TIMEOUT + 15,
                                                            "too_many_concurrent", "rejected")
        res.evidence = (f"of {stats.started}: {stats.cut} cut off"
                        + (f" (1 KiB/s readers after {min(cut):.0f}-{max(cut):.0f} s)" if cut else "")
                        + f", {stats.complete} read in full, {stats.outlasted} still reading at "
                        f"{WRITE_TIMEOUT + 15:.0f} s, {stats.refused} refused; {n:.0f} write timeouts counted; "
                        f"steady scrapes failed meanwhile: {fault.notes['steady_failed']}, "
                        f"503s for lack of a slot: {fault.notes['refused_503']:.0f}")
        if n or stats.cut or stats.outlasted or stats.complete:
            res.evidence_seconds = 0.0 if res.evidence_seconds is None else res.evidence_seconds
    elif kind == "malformed":
        names = fault.notes.get("objects", [])
        seen: dict[str, float] = {}
        for t, line in soak.log_lines:
            if t < start - 2 or "skipped malformed object" not in line:
                continue
            for name in names:
                if name not in seen and f"object {name}:" in line:
                    seen[name] = max(0.0, t - start)
        res.evidence_seconds = max(seen.values()) if len(seen) == len(names) and names else None
        res.evidence = f"{len(seen)}/{len(names)} objects skipped with a warning"
        if len(seen) < len(names):
            res.evidence += " (missing: " + ", ".join(n for n in names if n not in seen) + ")"
    elif kind == "rotation":
        token_at = fault.started_wall or 0.0
        issued = sorted(c["issued_at"] for c in fault.notes.get("issued", []) if (c.get("issued_at") or 0) >= token_at)
        res.evidence_seconds = issued[0] - token_at if issued else None
        before, after = fault.notes.get("codes_before", {}), fault.notes.get("codes_after", {})
        auth = {c: after.get(c, 0) - before.get(c, 0) for c in AUTH_CODES if after.get(c, 0) > before.get(c, 0)}
        sts_b, sts_a = fault.notes.get("sts_before", {}), fault.notes.get("sts_after", {})
        refused = sum(v - sts_b.get(k, 0) for k, v in sts_a.items() if k.startswith("refused:"))
        res.evidence = (f"credentials from the new token: {len(issued)}, STS refusals {refused}, "
                        f"cloud auth errors {sum(auth.values())}" + (f" {auth}" if auth else ""))
        fault.notes["auth_errors"] = sum(auth.values())


def _verdict(kind: Kind, fault: Fault, res: Result, o: Options) -> tuple[bool, str]:
    problems = []
    detect_bound, recover_bound = kind.detect_bound(o, fault), kind.recover_bound(o, fault)
    expect_down = kind.expect_down
    if fault.kind == "freeze":
        expect_down = fault.duration > WATCH_SILENCE
    if expect_down:
        if res.detect is None:
            problems.append("never read 0")
        elif detect_bound is not None and res.detect > detect_bound:
            problems.append(f"read 0 after {res.detect:.0f} s > {detect_bound:.0f} s")
    elif expect_down is False and res.down_sources:
        problems.append("went down: " + ", ".join(res.down_sources))
    if res.down_sources:
        # Cloud sources: up with a success after the end. Kubernetes sources: up (a resumed watch); their
        # last success is the oldest of their watches', which a quiet watch moves only with a bookmark.
        recovered = res.fresh if kind.side == "cloud" else res.up
        if recovered is None:
            problems.append("did not recover" if res.up is None else "up again, but no fresh success")
        elif recover_bound is not None and recovered > recover_bound:
            problems.append(f"recovered after {recovered:.0f} s > {recover_bound:.0f} s")
    if fault.kind in ("410", "cut", "malformed", "rotation", "slow-scrapers"):
        if res.evidence_seconds is None:
            problems.append("no evidence it was seen")
        elif detect_bound is not None and res.evidence_seconds > detect_bound and fault.kind != "freeze":
            problems.append(f"seen after {res.evidence_seconds:.0f} s > {detect_bound:.0f} s")
    if fault.kind == "rotation" and fault.notes.get("auth_errors"):
        problems.append("auth errors")
    if fault.kind == "slow-scrapers" and (fault.notes.get("steady_failed") or fault.notes.get("refused_503")):
        problems.append("steady scrapes failed or 503s")
    return (not problems), ("met" if not problems else "MISSED: " + "; ".join(problems))


# ------------------------------------------------------------------ main


@dataclass
class Report:
    options: dict[str, Any]
    nodes: int
    timeline_seconds: float
    crashes: int
    crash_detail: str
    tracebacks: int
    log_levels: dict[str, int]
    rss_start_mb: float | None
    rss_end_mb: float | None
    rss_max_mb: float | None
    rss_growth_percent: float | None
    cpu_percent: float | None
    steady_scrapes: int
    failed_scrapes: int
    failed_scrape_detail: list[str]
    steady_p50_ms: float | None
    steady_p99_ms: float | None
    steady_max_ms: float | None
    monitor_scrapes: int
    monitor_failed: int
    slow_scrapes: dict[str, Any]
    write_timeouts: float
    too_many_concurrent: float
    secrets_found: int
    secret_detail: list[tuple[str, str]]
    key_ids_found: int
    scanned: dict[str, int]
    sts_credentials_issued: int
    faults: list[dict[str, Any]]
    transitions: list[tuple[float, str, float]]  # (t, source, new source_up) as the monitor saw them
    cloud_calls: dict[str, int]  # by result code, from the simulated cloud
    ok: bool = False


def exporter_argv(port: int, cloud_url: str, o: Options) -> list[str]:
    return [sys.executable, "-m", "terway_exporter", "serve", "--listen-address", f"127.0.0.1:{port}",
            "--ecs-endpoint", cloud_url, "--vpc-endpoint", cloud_url, "--quotas-endpoint", cloud_url,
            "--cloud-poll-interval", f"{o.poll_interval:g}s", "--eni-census-interval", f"{o.census_interval:g}s",
            "--log-level", "info"]


def exporter_env(sim_env: dict[str, str], creds_url: str, token_file: Path) -> dict[str, str]:
    """RRSA against the simulated STS instead of the env file's static AccessKey."""
    env = {k: v for k, v in sim_env.items() if not k.startswith(("ALIBABA_CLOUD_ACCESS_KEY", "ALIYUN_"))}
    env.update({
        "ALIBABA_CLOUD_ROLE_ARN": ROLE_ARN, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": OIDC_PROVIDER_ARN,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file), "ALIBABA_CLOUD_STS_ENDPOINT": creds_url,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
        "ALIBABA_CLOUD_CREDENTIALS_FILE": "/nonexistent/terway-soak-credentials",
    })
    return env


async def wait_all_up(soak: Soak, timeout: float) -> None:
    deadline = soak.now() + timeout
    while soak.now() < deadline:
        if soak.exporter is not None and not soak.exporter.alive():
            raise RuntimeError(f"exporter exited:\n{soak.exporter.log_tail()}")
        last = soak.samples[-1] if soak.samples else None
        if last and last.up and all(v == 1 for v in last.up.values()) and "cloud_eni_census" in last.up:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not every source up within {timeout:.0f} s: {soak.samples[-1].up if soak.samples else {}}")


async def soak_run(o: Options, workdir: Path) -> Report:
    print(f"[soak] starting the simulator ({o.nodes} nodes)", file=sys.stderr, flush=True)
    sim, sim_env, cloud_url, kube_url = start_simulator(o.nodes, workdir)
    exporter = None
    soak = Soak(o, workdir)
    try:
        creds_url = re.search(r"STS \+ ECS metadata: (\S+)", sim.log_path.read_text()).group(1)
        token_file = workdir / "oidc-token"
        scan = soak.scan
        scan.add(sim_env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""))
        async with aiohttp.ClientSession() as session:
            ctl = Control(session, cloud_url, kube_url, creds_url, token_file, scan)
            await ctl.post(creds_url + "/_sim/credentials/config", {"expiration_seconds": 900 + o.refresh_period})
            await ctl.rotate_oidc_token()
            port = free_port()
            soak.base = f"http://127.0.0.1:{port}"
            exporter = soak.exporter = Process.start("exporter", exporter_argv(port, cloud_url, o),
                                                     exporter_env(sim_env, creds_url, token_file), workdir)
            print("[soak] exporter started; waiting for every source", file=sys.stderr, flush=True)
            await asyncio.to_thread(wait_until_ready, soak.base, exporter, 300.0)
            observers = [asyncio.create_task(c) for c in (
                soak.watch_metrics(session), soak.steady_scraper(session), soak.index_pages(session),
                soak.sample_process(), soak.refresh_secrets(ctl), soak.slow_scrapers())]
            await wait_all_up(soak, 300.0)
            print(f"[soak] every source up at t={soak.now():.0f}s; warming up {o.warmup:g} s", file=sys.stderr,
                  flush=True)
            await asyncio.sleep(o.warmup)
            rss_start = memory_mb(exporter.pid, "VmRSS")
            cpu_start, cpu_t0 = cpu_seconds(exporter.pid), time.monotonic()
            start = soak.now()
            faults = timeline(o)
            player = asyncio.create_task(soak.play(faults, ctl, start))
            await asyncio.sleep(o.duration)
            await player  # a fault still running past the duration ends first
            # Let the last faults recover (bounded), then measure the end.
            last_end = max((f.ended or 0.0 for f in faults), default=soak.now())
            deadline = soak.now() + o.recovery_grace
            while soak.now() < deadline:
                if soak.now() > last_end + 5 and all((r.fresh if KINDS[r.fault.split("#")[0]].side == "cloud" else r.up)
                                                     is not None for r in (judge(f, soak, o) for f in faults)
                                                     if r.down_sources):
                    break
                await asyncio.sleep(1.0)
            alive = exporter.alive()
            rss_end = memory_mb(exporter.pid, "VmRSS") if alive else None
            cpu_percent = ((100 * (cpu_seconds(exporter.pid) - cpu_start) / (time.monotonic() - cpu_t0))
                           if alive else None)
            timeline_seconds = soak.now() - start
            issued = len(await ctl.issued())
            cloud_calls = await ctl.cloud_codes()
            soak.stop.set()
            await asyncio.gather(*observers, return_exceptions=True)
        soak.read_log()
        _save_state(workdir, soak, faults)
        log_text = exporter.log_path.read_bytes()
        soak.scan.scan(log_text, "exporter log (final pass)", "final passes over the whole log")
        return build_report(o, soak, faults, exporter, alive, log_text, rss_start, rss_end, cpu_percent,
                            timeline_seconds, issued, start, cloud_calls)
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()


def _save_state(workdir: Path, soak: Soak, faults: list[Fault]) -> None:
    """What was observed, for a second look (pickle; the report is built from the same data)."""
    import pickle

    kept = [Fault(f.kind, f.at, f.duration, f.round, f.params, f.started, f.ended, f.started_wall, f.ended_wall,
                  {k: v for k, v in f.notes.items() if k != "tasks"}) for f in faults]
    state = {"samples": soak.samples, "faults": kept, "steady": soak.steady, "monitor": soak.monitor,
             "slow": soak.slow, "rss": soak.rss, "log_lines": soak.log_lines, "found": soak.scan.found}
    with open(workdir / "soak-state.pickle", "wb") as handle:
        pickle.dump(state, handle)


def transitions(samples: list[Sample]) -> list[tuple[float, str, float]]:
    out, last = [], {}
    for s in samples:
        for source, value in s.up.items():
            if last.get(source) != value:
                out.append((round(s.t, 1), source, value))
                last[source] = value
    return out


def build_report(o: Options, soak: Soak, faults: list[Fault], exporter: Process, alive: bool, log_text: bytes,
                 rss_start: float, rss_end: float | None, cpu_percent: float | None, timeline_seconds: float,
                 issued: int, start: float, cloud_calls: dict[str, int]) -> Report:
    tracebacks = log_text.count(b"Traceback")
    crash_detail = "" if alive else f"exit code {exporter.popen.returncode}"
    if tracebacks:
        crash_detail += f" {tracebacks} Traceback(s) in the log"
    results = [judge(f, soak, o) for f in faults]
    during = [mb for t, mb in soak.rss if t >= start]
    growth = None if rss_end is None else 100 * (rss_end - rss_start) / rss_start
    p = soak.steady.percentile
    rejected = soak.samples[-1].rejected if soak.samples else {}
    report = Report(
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()},
        nodes=o.nodes, timeline_seconds=timeline_seconds,
        crashes=(0 if alive else 1) + (1 if tracebacks else 0), crash_detail=crash_detail.strip(),
        tracebacks=tracebacks, log_levels=soak.log_levels,
        rss_start_mb=rss_start, rss_end_mb=rss_end, rss_max_mb=max(during) if during else None,
        rss_growth_percent=growth, cpu_percent=cpu_percent,
        steady_scrapes=soak.steady.ok + soak.steady.failed, failed_scrapes=soak.steady.failed,
        failed_scrape_detail=[f"t={t:.0f}s: {reason}" for t, reason in soak.steady.failures[:20]],
        steady_p50_ms=None if p(50) is None else 1000 * p(50), steady_p99_ms=None if p(99) is None else 1000 * p(99),
        steady_max_ms=1000 * max(soak.steady.latencies) if soak.steady.latencies else None,
        monitor_scrapes=soak.monitor.ok + soak.monitor.failed, monitor_failed=soak.monitor.failed,
        slow_scrapes={"all_along": asdict(soak.slow),
                      "windows": [asdict(f.notes["slow"]) for f in faults if "slow" in f.notes]},
        write_timeouts=rejected.get("write_timeout", 0.0), too_many_concurrent=rejected.get("too_many_concurrent", 0.0),
        secrets_found=len(soak.scan.found), secret_detail=soak.scan.found[:20],
        key_ids_found=len(soak.scan.key_ids), scanned=soak.scan.scanned, sts_credentials_issued=issued,
        faults=[asdict(r) for r in results], transitions=transitions(soak.samples), cloud_calls=cloud_calls,
    )
    rss_ok = growth is not None and (growth <= 10.0 or timeline_seconds < 600)
    report.ok = (report.crashes == 0 and report.secrets_found == 0 and report.failed_scrapes == 0
                 and all(r.ok for r in results) and rss_ok)
    return report


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render(report: Report) -> str:
    lines = [f"terway-exporter chaos soak: {report.nodes} nodes, scale scenario (churn 1%/min), "
             f"{report.timeline_seconds:.0f} s of faults, cloud poll every {report.options['poll_interval']:g} s, "
             f"{os.cpu_count()} CPUs", ""]
    head = ("fault", "expected", "to source_up=0", "to recover (up / fresh)", "evidence", "verdict")
    rows = [head]
    for f in report.faults:
        recover = "-" if not f["down_sources"] else f"{_s(f['up'])} / {_s(f['fresh'])}"
        down = f["down_sources"]
        detect = "stayed up" if not down else _s(f["detect"]) + (
            f" ({', '.join(down)})" if len(down) <= 2 else f" ({len(down)} sources)")
        evidence = f["evidence"] + (f" ({_s(f['evidence_seconds'])})" if f["evidence_seconds"] is not None else "")
        rows.append((f"{f['fault']} {f['title']}", f["expected"], detect, recover, evidence, f["verdict"]))
    for row in rows:
        lines.append(" | ".join(row))
    growth = report.rss_growth_percent
    lines += [
        "",
        f"crashes: {report.crashes}" + (f" ({report.crash_detail})" if report.crash_detail else "")
        + f"; log lines by level: {report.log_levels}",
        f"RSS: start (after warm-up) {report.rss_start_mb:.1f} MB, end "
        + ("-" if report.rss_end_mb is None else f"{report.rss_end_mb:.1f} MB")
        + ", growth " + ("-" if growth is None else f"{growth:+.1f}%")
        + ("" if report.rss_max_mb is None else f", max {report.rss_max_mb:.1f} MB")
        + (" (target <= 10%" + ("" if report.timeline_seconds >= 600 else "; not judged under 10 minutes") + ")"),
        "exporter CPU: " + ("-" if report.cpu_percent is None else f"{report.cpu_percent:.1f}% of a core"),
        f"failed scrapes: {report.failed_scrapes} of {report.steady_scrapes} steady scrapes (every "
        f"{report.options['scrape_interval']:g} s; p50 {report.steady_p50_ms or 0:.1f} ms, p99 "
        f"{report.steady_p99_ms or 0:.1f} ms, max {report.steady_max_ms or 0:.1f} ms); monitor: "
        f"{report.monitor_failed} of {report.monitor_scrapes} failed",
        f"slow scrapers: all along {report.slow_scrapes['all_along']['cut']} cut / "
        f"{report.slow_scrapes['all_along']['started']} started; exporter counted "
        f"{report.write_timeouts:.0f} write timeouts, {report.too_many_concurrent:.0f} refused for lack of a slot",
        f"secrets found: {report.secrets_found} (scanned {report.scanned}); AccessKey IDs found: "
        f"{report.key_ids_found}; STS credentials issued: {report.sts_credentials_issued}",
        f"result: {'every figure met its expectation' if report.ok else 'SOME FIGURES MISSED'}",
    ]
    if report.failed_scrape_detail:
        lines.append("failed scrapes: " + "; ".join(report.failed_scrape_detail))
    if report.secret_detail:
        lines.append("secrets: " + "; ".join(f"{w}: {s}" for w, s in report.secret_detail))
    return "\n".join(lines)


def rejudge(workdir: Path) -> Report:
    """The report of an earlier run (its --keep directory), with the faults judged again from what was
    observed (soak-state.pickle) by the judging code as it is now."""
    import pickle

    old = json.loads((workdir / "report.json").read_text())
    with open(workdir / "soak-state.pickle", "rb") as handle:
        state = pickle.load(handle)
    options = Options(**{k: (Path(v) if k == "keep" and v else (tuple(v) if k == "faults" else v))
                         for k, v in old["options"].items()})
    soak = Soak(options, workdir)
    soak.samples, soak.steady = state["samples"], state["steady"]
    soak.monitor, soak.slow = state["monitor"], state["slow"]
    soak.rss, soak.log_lines = state["rss"], state["log_lines"]
    soak.t0 = time.monotonic() - (state["samples"][-1].t if state["samples"] else 0.0)
    results = [judge(f, soak, options) for f in state["faults"]]
    old["faults"], old["transitions"] = [asdict(r) for r in results], transitions(soak.samples)
    report = Report(**{k: v for k, v in old.items() if k in Report.__dataclass_fields__})
    rss_ok = report.rss_growth_percent is not None and (report.rss_growth_percent <= 10.0
                                                        or report.timeline_seconds < 600)
    report.ok = (report.crashes == 0 and report.secrets_found == 0 and report.failed_scrapes == 0
                 and all(r.ok for r in results) and rss_ok)
    return report


def render_markdown(report: Report) -> str:
    """The faults table as docs/reliability.md shows it."""
    lines = ["| fault | expected | to source_up=0 | to recover (up / fresh) | evidence | verdict |",
             "|---|---|---|---|---|---|"]
    for f in report.faults:
        down = f["down_sources"]
        detect = "stayed up" if not down else _s(f["detect"]) + (
            f" ({', '.join(down)})" if len(down) <= 2 else f" ({len(down)} sources)")
        recover = "-" if not down else f"{_s(f['up'])} / {_s(f['fresh'])}"
        evidence = f["evidence"] + (f" ({_s(f['evidence_seconds'])})" if f["evidence_seconds"] is not None else "")
        cells = [f"{f['fault']}: {f['title']}", f["expected"], detect, recover, evidence or "-", f["verdict"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every fault once in 140 s, shorter windows (CI)")
    parser.add_argument("--nodes", type=int, default=500, help="node count of the scale scenario (default 500)")
    parser.add_argument("--duration", type=float, help="seconds of fault timeline (default 1800; --quick 120)")
    parser.add_argument("--warmup", type=float, help="seconds between every source up and RSS start "
                                                     "(default 120; --quick 10)")
    parser.add_argument("--faults", default="", help=f"comma-separated kinds to play (default all): {','.join(KINDS)}")
    parser.add_argument("--smoke", action="store_true",
                        help="with --quick: the CI test's timeline (5xx, restart, rotation, malformed in ~45 s)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", type=Path, help="keep the logs in this directory")
    parser.add_argument("--markdown", action="store_true", help="print the faults table in Markdown as well")
    parser.add_argument("--rejudge", type=Path, metavar="DIR",
                        help="no run: judge again what a run kept in DIR (--keep with --json DIR/report.json) saw")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if args.rejudge:
        return Options(keep=args.rejudge, smoke=args.markdown), args.json
    o = Options(nodes=args.nodes, quick=args.quick or args.smoke, smoke=args.smoke, faults=kinds, keep=args.keep)
    if o.quick:
        o.duration, o.warmup, o.poll_interval, o.census_interval = 140.0, 10.0, 5.0, 60.0
        o.refresh_period, o.restart_down, o.freeze_seconds, o.recovery_grace = 10.0, 5.0, 12.0, 60.0
    if o.smoke:
        o.duration = 44.0
    o.duration = args.duration if args.duration is not None else o.duration
    o.warmup = args.warmup if args.warmup is not None else o.warmup
    return o, args.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    if options.keep is not None and "--rejudge" in (argv if argv is not None else sys.argv):
        report = rejudge(options.keep)
        print(render(report))
        if options.smoke:  # --markdown
            print("\n" + render_markdown(report))
        if json_path:
            json_path.write_text(json.dumps(asdict(report), indent=2, default=str))
        return 0 if report.ok else 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the child processes are stopped
    with tempfile.TemporaryDirectory(prefix="terway-soak-") as tmp:
        workdir = options.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(soak_run(options, workdir))
    print(render(report))
    if "--markdown" in (argv if argv is not None else sys.argv):
        print("\n" + render_markdown(report))
    if json_path:
        json_path.write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
