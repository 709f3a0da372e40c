"""What the benchmark measures from outside a process: /proc figures, HTTP probes, scrapers.

Everything here looks at another process (the exporter, the baseline, the simulator) from
the benchmark's own process, so the measured process pays nothing for being measured
beyond answering its HTTP requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# What Prometheus sends: it asks for gzip (and the text format when told to, as here).
SCRAPE_HEADERS = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1", "Accept-Encoding": "gzip"}


# ------------------------------------------------------------------ /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def memory_mb(pid: int, key: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


# ------------------------------------------------------------------ processes


@dataclass
class Process:
    """A child process with its output in files; stopped by its PID."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Process:
        log_path = workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return cls(name, popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


# ------------------------------------------------------------------ HTTP


def http(url: str, method: str = "GET", body: Any = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_until_ready(base_url: str, process: Process, timeout: float) -> float:
    """Seconds from now until GET /readyz answers 200; raises if the process dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        if http(base_url + "/readyz", timeout=2.0)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} not ready after {timeout:.0f} s:\n{process.log_tail()}")


@dataclass
class CloudCalls:
    """The simulated cloud's request counters (GET /_sim/cloud/calls, POST /_sim/cloud/reset)."""

    base_url: str

    def reset(self) -> None:
        http(self.base_url + "/_sim/cloud/reset", "POST", {})

    def by_api(self) -> dict[str, int]:
        status, body = http(self.base_url + "/_sim/cloud/calls")
        if status != 200:
            raise RuntimeError(f"cloud simulator answered {status} to /_sim/cloud/calls")
        return {api: row["total"] for api, row in json.loads(body)["actions"].items()}

    def total(self) -> int:
        return sum(self.by_api().values())

    def wait_quiet(self, quiet: float = 2.0, timeout: float = 300.0) -> dict[str, int]:
        """Wait until no request arrived for `quiet` seconds; return the counters then."""
        last, since, started = -1, time.monotonic(), time.monotonic()
        while time.monotonic() - started < timeout:
            total = self.total()
            if total != last:
                last, since = total, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return self.by_api()
            time.sleep(0.2)
        raise RuntimeError(f"cloud calls did not settle within {timeout:.0f} s")

    def wait_for_any(self, timeout: float) -> None:
        started = time.monotonic()
        while self.total() == 0:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"no cloud call within {timeout:.0f} s (is the poll running?)")
            time.sleep(0.05)


# ------------------------------------------------------------------ scrapers


@dataclass
class ScrapeResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful scrapes
    wire_bytes: int = 0  # bytes of the last body as sent (gzip)
    errors: int = 0

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def scrape_load(url: str, scrapers: int, seconds: float) -> ScrapeResult:
    """`scrapers` concurrent closed-loop scrapers for `seconds`: each sends its next scrape as
    soon as the previous one is answered (the bodies are read, not decompressed)."""
    result = ScrapeResult()
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=scrapers)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False) as session:
        async def scraper() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url, headers=SCRAPE_HEADERS) as response:
                        body = await response.read()
                        ok = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok, body = False, b""
                if ok:
                    result.latencies.append(time.perf_counter() - started)
                    result.wire_bytes = len(body)
                else:
                    result.errors += 1
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(scraper() for _ in range(scrapers)))
    return result


def body_size(url: str) -> int:
    """Uncompressed size of one /metrics body."""
    status, body = http(url, timeout=120.0)
    return len(body) if status == 200 else 0


# ------------------------------------------------------------------ a real Prometheus

# What Prometheus 2.42 sends with its default configuration (scrape.go, acceptHeader / gzip).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}


def wire_bytes(url: str, headers: dict[str, str] = PROMETHEUS_HEADERS) -> tuple[int, str]:
    """Bytes of one /metrics answer as sent (not decompressed) and its content type."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return len(response.read()), response.headers.get("Content-Type", "")


@dataclass
class Prometheus:
    """A Prometheus (Debian's package) scraping one target with its default headers, rules loaded."""

    process: Process
    port: int

    @classmethod
    def start(cls, workdir: Path, target: str, rule_files: list[Path], port: int,
              scrape_interval: str = "10s") -> Prometheus:
        import shutil

        import yaml

        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                       "scrape_timeout": scrape_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "terway-exporter", "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [shutil.which("prometheus") or "prometheus", f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"]
        process = Process.start("prometheus", argv, dict(os.environ), workdir)
        prometheus = cls(process, port)
        deadline = time.monotonic() + 60
        while http(f"http://127.0.0.1:{port}/-/ready", timeout=2.0)[0] != 200:
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{process.log_tail()}")
            time.sleep(0.2)
        return prometheus

    def query(self, expr: str) -> float | None:
        """The single value of an instant query (None when empty)."""
        status, body = http(f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if status != 200:
            raise RuntimeError(f"query {expr!r}: HTTP {status} {body[:200]!r}")
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def rule_times(self) -> dict[str, float]:
        """One reading of GET /api/v1/rules: 'group' and 'group / rule' -> its last evaluation, seconds."""
        status, body = http(f"http://127.0.0.1:{self.port}/api/v1/rules")
        if status != 200:
            raise RuntimeError(f"GET /api/v1/rules: HTTP {status}")
        reading: dict[str, float] = {}
        for group in json.loads(body)["data"]["groups"]:
            reading[group["name"]] = float(group.get("evaluationTime") or 0)
            for rule in group["rules"]:
                reading[f"{group['name']} / {rule['name']}"] = float(rule.get("evaluationTime") or 0)
        return reading

    def median_rule_times(self, seconds: float, interval: float = 10.0) -> dict[str, float]:
        """The median of one `rule_times` reading per evaluation over `seconds`: a single evaluation's time
        varies by half between two evaluations of the same rules on the same data."""
        readings = []
        deadline = time.monotonic() + seconds
        while True:
            readings.append(self.rule_times())
            if time.monotonic() + interval > deadline:
                break
            time.sleep(interval)  # the evaluation interval: one reading per evaluation (a benchmark's pacing)
        keys = {key for reading in readings for key in reading}
        return {key: statistics.median(reading.get(key, 0.0) for reading in readings) for key in keys}

    def wait_for_scrapes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (self.query('count_over_time(up{job="terway-exporter"}[1h])') or 0) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not scrape {count} times within {timeout:.0f} s")
            time.sleep(1.0)

    def stop(self) -> None:
        self.process.stop()
