"""The free-port helper of bench/ and tests/: a port the kernel will not hand to anyone else meanwhile."""

from __future__ import annotations

import socket

import loopback_ports
from loopback_ports import free_port


def test_ports_are_below_the_ephemeral_range_and_bindable():
    floor = loopback_ports.ephemeral_floor()
    ports = {free_port() for _ in range(20)}
    for port in ports:
        assert loopback_ports.LOWEST <= port < floor
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free when returned
    assert len(ports) > 1  # chosen at random, so two callers rarely meet

