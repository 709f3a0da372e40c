"""The process stops cleanly on SIGTERM and SIGINT, as a container runtime and a terminal expect."""

from __future__ import annotations

import signal
import subprocess

import pytest

from support.stack import http_get, start_demo

pytestmark = pytest.mark.slow  # a demo process per signal


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_cleanly(tmp_path, sig):
    proc, port = start_demo("healthy", tmp_path)
    try:
        assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
        proc.popen.send_signal(sig)
        code = proc.popen.wait(timeout=15)  # a bound on a hang, not a timing check
    except subprocess.TimeoutExpired:
        proc.stop()
        pytest.fail(f"still running 15 s after {sig.name}:\n{proc.log()[-2000:]}")
    assert code == 0, proc.log()[-2000:]
    log = proc.log()
    assert "shutting down" in log
    assert "Traceback" not in log and "Task was destroyed" not in log and "Unclosed" not in log
