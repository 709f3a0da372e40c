"""End to end: a real Prometheus scrapes `terway-exporter demo` processes over TLS with --web.config.file.

Three exporters, each with its own web configuration, certificates made at test time:
- `basic`: TLS and basic auth. Prometheus scrapes it with the right password (up) and a wrong one
  (down, 401); its certificate is then renewed and broken on disk while it runs.
- `mtls`: RequireAndVerifyClientCert. Prometheus with a client certificate is up, without one down.
- `expired`: an expired serving certificate. Prometheus refuses it (x509 verification).
Everything binds 127.0.0.1; every wait is for a condition, with a timeout only so a failure ends.
"""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from support.certs import NOW, Issued, bcrypt_hash, issue, make_ca, write_atomically
from support.stack import Process, exporter_command, free_port, http_get, start_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # real Prometheus and exporter processes

PASSWORD = "scrape-me-please"
# A metric changes in the exposition at the next render, which the render loop paces to 10 times the
# last render's duration: on a busy 2-core machine that can be tens of seconds.
METRIC_WAIT = 120


class Exporter:
    def __init__(self, name: str, workdir: Path, web_config: dict, ca: Issued, client: Path | None = None) -> None:
        self.name, self.dir, self.port = name, workdir / name, free_port()
        self.dir.mkdir()
        self.web_config = self.dir / "web-config.yml"
        write_atomically(self.web_config, yaml.safe_dump(web_config).encode())
        self.ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
        if client is not None:
            self.ctx.load_cert_chain(client / "client.crt", client / "client.key")
        self.proc: Process | None = None

    def start(self) -> None:
        self.proc = start_process(f"demo-{self.name}", [
            *exporter_command(), "demo", "--scenario", "healthy", "--listen-address", f"127.0.0.1:{self.port}",
            "--web.config.file", str(self.web_config)], self.dir)

    def https(self, path: str, ctx: ssl.SSLContext | None = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", context=ctx or self.ctx,
                                        timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def serial(self, ctx: ssl.SSLContext) -> int:
        """The serial of the certificate a new connection gets."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    def wait_ready(self, ctx: ssl.SSLContext | None = None) -> None:
        def ready() -> bool:
            if self.proc.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.popen.returncode}:\n{self.proc.log()[-3000:]}")
            try:
                return self.https("/readyz", ctx)[0] == 200
            except (OSError, ssl.SSLError):
                return False
        wait_until(ready, 90, f"exporter {self.name} to be ready")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir: Path = tmp_path_factory.mktemp("web-config-e2e")
    ca, client_ca = make_ca("server CA"), make_ca("client CA")
    write_atomically(workdir / "ca.crt", ca.cert_pem)
    write_atomically(workdir / "client-ca.crt", client_ca.cert_pem)
    issue(client_ca, "prometheus", client=True, sans=[x509.DNSName("prometheus")]).write(workdir, "client")
    (workdir / "password").write_text(PASSWORD)
    tls = {"cert_file": "tls.crt", "key_file": "tls.key"}
    exporters = {
        "basic": Exporter("basic", workdir, {"tls_server_config": tls,
                                             "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}}, ca),
        "mtls": Exporter("mtls", workdir, {"tls_server_config": {
            **tls, "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "../client-ca.crt"}},
            ca, client=workdir),
        "expired": Exporter("expired", workdir, {"tls_server_config": tls}, ca),
    }
    issue(ca, "basic", serial=101).write(exporters["basic"].dir, "tls")
    issue(ca, "mtls", serial=201).write(exporters["mtls"].dir, "tls")
    issue(ca, "expired", serial=301, not_before=NOW - datetime.timedelta(days=30),
          not_after=NOW - datetime.timedelta(days=1)).write(exporters["expired"].dir, "tls")
    for exporter in exporters.values():
        exporter.start()
    prometheus = None
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(exporters[name].wait_ready) for name in ("basic", "mtls")]:
                future.result()
        # The expired one serves too: ready is what a client that skips verification sees.
        unverified = ssl.create_default_context()
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        exporters["expired"].wait_ready(unverified)

        ca_file, job = str(workdir / "ca.crt"), {"scheme": "https"}

        def target(name: str) -> list[dict]:
            return [{"targets": [f"127.0.0.1:{exporters[name].port}"]}]

        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "basic", **job, "tls_config": {"ca_file": ca_file},
                 "basic_auth": {"username": "prometheus", "password_file": str(workdir / "password")},
                 "static_configs": target("basic")},
                {"job_name": "basic-wrong-password", **job, "tls_config": {"ca_file": ca_file},
                 "basic_auth": {"username": "prometheus", "password": "guess"}, "static_configs": target("basic")},
                {"job_name": "mtls", **job, "tls_config": {"ca_file": ca_file, "cert_file": str(workdir / "client.crt"),
                                                           "key_file": str(workdir / "client.key")},
                 "static_configs": target("mtls")},
                {"job_name": "mtls-without-client-cert", **job, "tls_config": {"ca_file": ca_file},
                 "static_configs": target("mtls")},
                {"job_name": "expired", **job, "tls_config": {"ca_file": ca_file}, "static_configs": target("expired")},
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        (workdir / "prom-data").mkdir()
        prometheus_port = free_port()
        prometheus = start_process("prometheus", [
            shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ], workdir)
        wait_until(lambda: http_get(f"http://127.0.0.1:{prometheus_port}/-/ready")[0] == 200, 30,
                   "Prometheus to be ready")
        yield {"exporters": exporters, "prometheus_port": prometheus_port, "ca": ca, "workdir": workdir}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters.values():
            if exporter.proc is not None:
                exporter.proc.stop()


def prometheus_api(stack, path: str, **params: str):
    query = urllib.parse.urlencode(params)
    status, body = http_get(f"http://127.0.0.1:{stack['prometheus_port']}/api/v1/{path}?{query}", timeout=10)
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", body[:300]
    return data["data"]


def targets_by_job(stack) -> dict[str, dict]:
    return {t["labels"]["job"]: t for t in prometheus_api(stack, "targets", state="active")["activeTargets"]}


def wait_for_target(stack, job: str, health: str, error: str = "") -> dict:
    def settled() -> dict | None:
        found = targets_by_job(stack).get(job)
        if found and found["health"] == health and error in found["lastError"]:
            return found
        return None
    try:
        return wait_until(settled, 60, f"target {job} to be {health}")
    except TimeoutError:
        raise AssertionError(f"{job}: {targets_by_job(stack).get(job)}") from None


def scalar(stack, expr: str) -> float | None:
    result = prometheus_api(stack, "query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_over_tls_with_basic_auth(stack) -> None:
    wait_for_target(stack, "basic", "up")
    wait_for_target(stack, "basic-wrong-password", "down", "401 Unauthorized")
    wait_until(lambda: scalar(stack, 'terway_exporter_web_config_reload_success{job="basic"}') == 1, METRIC_WAIT,
               "the exporter's reload metric in Prometheus")
    basic = stack["exporters"]["basic"]
    assert basic.https("/metrics")[0] == 401
    assert basic.https("/healthz")[0] == 200  # the kubelet's probe needs no password
    assert "metrics:    https://127.0.0.1:" in basic.proc.log()


def test_prometheus_with_a_client_certificate(stack) -> None:
    wait_for_target(stack, "mtls", "up")
    # Refused in the handshake; asyncio drops the connection without sending the TLS alert, so
    # Prometheus may report "connection reset by peer" rather than "tls: certificate required".
    down = wait_for_target(stack, "mtls-without-client-cert", "down")
    assert down["lastError"], down


def test_prometheus_refuses_an_expired_certificate(stack) -> None:
    down = wait_for_target(stack, "expired", "down", "x509: certificate has expired or is not yet valid")
    assert down["scrapeUrl"].startswith("https://")


def test_certificate_rotation_without_restart(stack) -> None:
    basic = stack["exporters"]["basic"]
    ctx = basic.ctx
    assert basic.serial(ctx) == 101
    pid = basic.proc.popen.pid
    renewed = issue(stack["ca"], "basic", serial=102, not_after=NOW + datetime.timedelta(days=90))
    renewed.write(basic.dir, "tls")
    wait_until(lambda: basic.serial(ctx) == 102, 30, "the renewed certificate to be served")
    not_after = renewed.cert.not_valid_after_utc.timestamp()
    wait_until(lambda: scalar(stack, 'terway_exporter_web_tls_certificate_not_after_timestamp_seconds'
                                     '{job="basic"}') == not_after, METRIC_WAIT, "Prometheus to see the new notAfter")
    # A broken renewal keeps the renewed certificate; Prometheus sees the reload fail.
    write_atomically(basic.dir / "tls.crt", b"-----BEGIN CERTIFICATE-----\ntruncated\n")
    wait_until(lambda: scalar(stack, 'terway_exporter_web_config_reload_success{job="basic"}') == 0, METRIC_WAIT,
               "Prometheus to see the failed reload")
    assert basic.serial(ctx) == 102
    assert "not reloaded, keeping the one in force" in basic.proc.log()
    assert scalar(stack, 'terway_exporter_web_config_reload_failures_total{job="basic"}') >= 1
    renewed.write(basic.dir, "tls")
    wait_until(lambda: scalar(stack, 'terway_exporter_web_config_reload_success{job="basic"}') == 1, METRIC_WAIT,
               "Prometheus to see the reload succeed again")
    wait_for_target(stack, "basic", "up")
    assert basic.proc.popen.pid == pid and basic.proc.popen.poll() is None
