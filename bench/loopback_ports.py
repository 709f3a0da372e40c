"""A free TCP port on 127.0.0.1 for a child process to listen on, outside the kernel's ephemeral range.

Binding port 0 and closing the socket hands back a port from the ephemeral range
(net.ipv4.ip_local_port_range, 32768-60999 by default). Between that and the child's
bind, any outgoing connection on the machine (a scrape, a watch, a cloud poll) or any
other bind to port 0 may be given the same port, and the child then fails with
"address already in use" (it happened in CI: bench/detection.py starts its simulators,
which bind port 0, after choosing the exporter's port). Ports below the ephemeral range
are never handed out by the kernel on its own, so once one is seen free here, only
another caller of this function could take it; the choice is random to make that rare.

Shared by bench/ and tests/ (tests/support/stack.py imports it), so there is one helper.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # above the well-known and most registered service ports a developer's machine may run


def ephemeral_floor() -> int:
    """The first port the kernel hands out for port 0 and outgoing connections (32768 when unreadable)."""
    try:
        return int(PORT_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(attempts: int = 200) -> int:
    """A port below the ephemeral range that 127.0.0.1 can bind now."""
    floor = ephemeral_floor()
    if floor <= LOWEST + 100:  # an unusual range: fall back to the kernel's choice
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for _ in range(attempts):
        port = random.randrange(LOWEST, floor)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on 127.0.0.1 between {LOWEST} and {floor} after {attempts} attempts")
