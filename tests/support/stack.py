"""Real processes for end-to-end tests: the exporter on a scenario, Prometheus, Alertmanager.

Everything binds 127.0.0.1 on free ports, lives in a temporary directory and is
stopped by PID when the test ends. Prometheus and Alertmanager are the Debian
packages (`prometheus`, `prometheus-alertmanager`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from loopback_ports import free_port  # noqa: F401 - bench/'s helper (pyproject's pythonpath); e2e modules import it from here
from support.waiting import wait_until  # noqa: F401 - the e2e modules import it from here

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "alerts" / "terway-exporter.rules.yaml"


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def start_process(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    log_path = workdir / f"{name}.log"
    handle = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=workdir,
                             env={**os.environ, **(env or {})}, start_new_session=True)
    handle.close()
    return Process(name, popen, log_path)


def exporter_command() -> list[str]:
    return [sys.executable, "-m", "terway_exporter"]


def start_demo(scenario: str, workdir: Path, extra: Iterable[str] = (),
               env: dict[str, str] | None = None) -> tuple[Process, int]:
    """`terway-exporter demo --scenario NAME` on a free port; returns once /readyz is 200."""
    port = free_port()
    proc = start_process(f"demo-{scenario}", [*exporter_command(), "demo", "--scenario", scenario,
                                              "--listen-address", f"127.0.0.1:{port}", *extra], workdir,
                         env=env)

    def ready() -> bool:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"demo {scenario} exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}")
        return http_get(f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200

    try:
        # A bound, not a timing check: forty demos starting at once on two cores take a while.
        wait_until(ready, 180, f"exporter on scenario {scenario} to be ready")
    except Exception:
        proc.stop()
        raise
    return proc, port


def start_serve(scenario: str, workdir: Path, procs: list[Process], extra: Iterable[str] = ()) -> int:
    """`terway-exporter simulate --scenario NAME`, then `serve` against it (the way a user runs both), each
    appended to `procs` for the caller to stop; returns serve's port once /readyz is 200."""
    kubeconfig = workdir / "kubeconfig"
    sim = start_process("simulate", [*exporter_command(), "simulate", "--scenario", scenario,
                                     "--kubeconfig-out", str(kubeconfig)], workdir)
    procs.append(sim)

    def cloud_url() -> str | None:
        if sim.popen.poll() is not None:
            raise RuntimeError(f"simulate exited with {sim.popen.returncode}:\n{sim.log()[-3000:]}")
        match = re.search(r"^cloud APIs:\s*(\S+)", sim.log(), re.M)
        return match.group(1) if match and (workdir / "exporter.env").exists() else None

    url = wait_until(cloud_url, 60, "the simulator's endpoints")
    env = dict(re.findall(r"^export (\w+)=(.*)$", (workdir / "exporter.env").read_text(), re.M))
    port = free_port()
    serve = start_process("serve", [
        *exporter_command(), "serve", "--listen-address", f"127.0.0.1:{port}", "--kubeconfig", str(kubeconfig),
        "--ecs-endpoint", url, "--vpc-endpoint", url, "--quotas-endpoint", url,
        "--region", env["ALIBABA_CLOUD_REGION_ID"], *extra,
    ], workdir, env=env)
    procs.append(serve)

    def ready() -> bool:
        if serve.popen.poll() is not None:
            raise RuntimeError(f"serve exited with {serve.popen.returncode}:\n{serve.log()[-3000:]}")
        return http_get(f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200

    wait_until(ready, 90, "the exporter to be ready")
    return port


class WebhookReceiver:
    """An Alertmanager webhook receiver that keeps every alert it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.alerts.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def firing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.alerts if a.get("status") == "firing"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class MonitoringStack:
    """Prometheus (scraping and evaluating the rules every 2 s) and Alertmanager sending to a webhook."""

    workdir: Path
    targets: dict[str, int]  # scenario label -> exporter port
    rule_files: list[Path] = field(default_factory=list)
    demos: dict[str, Process] = field(default_factory=dict)  # scenario -> its `demo` process, when it runs one
    prometheus: Process | None = None
    alertmanager: Process | None = None
    webhook: WebhookReceiver | None = None
    prometheus_port: int = 0
    alertmanager_port: int = 0

    def start(self) -> MonitoringStack:
        self.webhook = WebhookReceiver()
        self.alertmanager_port = free_port()
        am_config = {
            "route": {"receiver": "hook", "group_by": ["alertname", "scenario"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [
                {"url": f"http://127.0.0.1:{self.webhook.port}/hook", "send_resolved": False}]}],
        }
        (self.workdir / "am.yml").write_text(yaml.safe_dump(am_config))
        (self.workdir / "am-data").mkdir(exist_ok=True)
        self.alertmanager = start_process("alertmanager", [
            shutil.which("prometheus-alertmanager") or "prometheus-alertmanager",
            f"--config.file={self.workdir / 'am.yml'}", f"--storage.path={self.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}", "--cluster.listen-address=",
        ], self.workdir)
        self.prometheus_port = free_port()
        prom_config = {
            # Every 2 s, not 1: forty targets and the shipped rules (ranges of hours, subqueries) evaluated
            # every second kept half a core busy in Prometheus alone on a 2-core machine.
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{
                "job_name": "terway-exporter",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"scenario": name}}
                                   for name, port in sorted(self.targets.items())],
            }],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]},
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        (self.workdir / "prom-data").mkdir(exist_ok=True)
        self.prometheus = start_process("prometheus", [
            shutil.which("prometheus") or "prometheus", f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        ], self.workdir)
        for proc, port in ((self.alertmanager, self.alertmanager_port), (self.prometheus, self.prometheus_port)):
            wait_until(lambda p=port: http_get(f"http://127.0.0.1:{p}/-/ready")[0] == 200, 30,
                       f"{proc.name} to be ready")
        return self

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}?{query}", timeout=10)
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise ValueError(f"Prometheus {path} {params}: {status} {body[:300]!r}")
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def wait_for_scrapes(self, timeout: float = 60) -> None:
        def all_up() -> bool:
            targets = self.api("targets", state="active")["activeTargets"]
            return len(targets) == len(self.targets) and all(t["health"] == "up" for t in targets)
        wait_until(all_up, timeout, "every exporter target to be scraped")

    def stop(self) -> None:
        for proc in (self.prometheus, self.alertmanager):
            if proc is not None:
                proc.stop()
        if self.webhook is not None:
            self.webhook.close()


def shorten_for(rule_file: Path, out: Path, seconds: int = 1) -> Path:
    """A copy of a rule file with every alert's `for` shortened (the test's only change)."""
    data = yaml.safe_load(rule_file.read_text())
    for group in data.get("groups", []):
        group["interval"] = "1s"
        for rule in group.get("rules", []):
            if "alert" in rule and "for" in rule:
                rule["for"] = f"{seconds}s"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out
