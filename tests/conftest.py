"""Fixtures that test modules share.

`cluster` (a simulated Kubernetes API server, restartable on its port) is defined in
test_kube_source.py and `serve` (the cloud simulator) in test_simulator_cloud.py; importing them
here makes pytest offer them to every test module, so modules that use them do not import them.
A module's own fixture of the same name (test_simulator_kube.py's `cluster`) still wins there.
"""

from __future__ import annotations

from test_kube_source import cluster
from test_simulator_cloud import serve

__all__ = ["cluster", "serve"]
