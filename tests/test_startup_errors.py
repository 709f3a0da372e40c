"""Configuration that cannot work is a one-line error and exit 2 at start; a task that dies ends the process.

Each case runs the real command in a subprocess (the kubeconfig checks use the real `kubernetes`
loader); the in-process case drives Runtime.serve with a source that fails the way the Kubernetes
source did on a kubeconfig with a tab in it: it reports its status, then its task ends.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.stack import free_port
from terway_exporter.config import resolve
from terway_exporter.model.status import SourceStatus
from terway_exporter.runtime import Runtime, TaskDied

EXPORTER = [sys.executable, "-m", "terway_exporter"]
SECRET_TOKEN = "sekrit-token-value-1234567890"  # must never be printed


def kubeconfig(server: str = "https://127.0.0.1:6443", **cluster_extra: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster_extra}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": SECRET_TOKEN}}],
    }


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERWAY_EXPORTER_", "KUBERNETES_"))}
    return subprocess.run([*EXPORTER, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def one_line_exit_2(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert SECRET_TOKEN not in result.stderr + result.stdout


BAD_KUBECONFIGS = {
    "tab": ("apiVersion: v1\nclusters:\n\t- cluster: {server: https://127.0.0.1:6443}\n", "not valid YAML at line 3"),
    "empty": ("", "not an empty file"),
    "list": ("- a\n- b\n", "not a list"),
    "no_contexts": (yaml.safe_dump({**kubeconfig(), "contexts": []}), "has no contexts"),
    "bad_url": (yaml.safe_dump(kubeconfig(server="127.0.0.1:6443:x")), "server"),
    "bad_scheme": (yaml.safe_dump(kubeconfig(server="ftp://127.0.0.1")), "http(s) URL"),
    "bad_ca": (yaml.safe_dump(kubeconfig(**{"certificate-authority-data": base64.b64encode(b"not a cert").decode()})),
               "certificate-authority"),
    "missing_client_cert": (yaml.safe_dump({**kubeconfig(), "users": [{"name": "u", "user": {
        "client-certificate": "/nonexistent/client.crt", "client-key": "/nonexistent/client.key"}}]}),
        "--kubeconfig"),
}


@pytest.mark.slow  # the command as a process
@pytest.mark.parametrize("case", sorted(BAD_KUBECONFIGS))
def test_a_kubeconfig_that_cannot_work_is_exit_2_at_start(tmp_path, case):
    text, expected = BAD_KUBECONFIGS[case]
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    result = run("serve", "--kubeconfig", str(path), "--region", "cn-hangzhou",
                 "--listen-address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    one_line_exit_2(result, "--kubeconfig", expected)


def test_a_good_kubeconfig_passes_the_check(tmp_path):
    from terway_exporter.sources.kube.kubeconfig import check_kubeconfig

    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig()))
    check_kubeconfig(str(path))  # raises on any problem


@pytest.mark.slow  # the command as a process
def test_a_config_file_that_is_not_utf8_is_exit_2(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"region: cn-hangzhou\nvpc_id: \xff\xfe\n")
    one_line_exit_2(run("serve", "--config", str(path), "--no-kubernetes", cwd=tmp_path), "--config", "UTF-8")


@pytest.mark.slow  # the command as a process
def test_a_port_in_use_is_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--no-kubernetes", "--region", "cn-hangzhou", "--listen-address",
                     f"127.0.0.1:{port}", cwd=tmp_path)
    one_line_exit_2(result, "--listen-address", f"127.0.0.1:{port}", "in use")


@pytest.mark.slow  # the command as a process
def test_a_listen_address_this_host_does_not_have_is_exit_2(tmp_path):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to this machine, and a literal needs no resolver
    # (a host name would be sent to the machine's DNS server: no network beyond loopback in tests).
    result = run("serve", "--no-kubernetes", "--region", "cn-hangzhou", "--listen-address",
                 "192.0.2.1:9417", cwd=tmp_path)
    one_line_exit_2(result, "--listen-address", "192.0.2.1:9417", "cannot assign requested address")


class DyingSource:
    """A source whose task reports a status, then ends: as the Kubernetes source did on a bad kubeconfig."""

    def __init__(self, hub) -> None:
        self.hub = hub

    async def run(self) -> None:
        self.hub.report(SourceStatus("kube_nodes", up=False, error="cannot configure the API client"))
        raise ValueError("the kubeconfig changed under us")

    async def sync_once(self):  # pragma: no cover - not used by serve
        raise AssertionError


async def test_a_task_that_dies_ends_serve_instead_of_leaving_a_zombie():
    options = resolve("serve", {"no_kubernetes": True, "region": "cn-hangzhou"}, {})
    runtime = Runtime(options)
    runtime.kube_source = DyingSource(runtime.hub)
    # Bounded only so a regression fails instead of hanging the suite.
    async with asyncio.timeout(30):
        with pytest.raises(TaskDied) as raised:
            await runtime.serve("127.0.0.1", 0)
    assert str(raised.value) == "kubernetes"
    leftover = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [name for name in leftover if name in ("render", "cloud", "kubernetes")], leftover


def read_until(proc: subprocess.Popen[str], text: str) -> None:
    """Read the process's log line by line until `text` (EOF, a dead process, fails)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return
    pytest.fail(f"{text!r} never logged:\n{''.join(seen)[-2000:]}")


@pytest.mark.slow  # the command as a process
def test_sighup_is_ignored_and_sigterm_still_stops(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERWAY_EXPORTER_", "KUBERNETES_"))}
    proc = subprocess.Popen([*EXPORTER, "serve", "--no-kubernetes", "--region", "cn-hangzhou",
                             "--ecs-endpoint", "http://127.0.0.1:1", "--vpc-endpoint", "http://127.0.0.1:1",
                             "--quotas-endpoint", "http://127.0.0.1:1", "--listen-address", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    try:
        read_until(proc, "serving metrics")
        proc.send_signal(signal.SIGHUP)
        read_until(proc, "SIGHUP ignored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
