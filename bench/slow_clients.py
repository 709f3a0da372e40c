"""Worst-case memory under clients that never read /metrics (issue: memory unbounded per client).

    python bench/slow_clients.py                     # 5,000 nodes; 0, 100 and 300 stalled clients
    python bench/slow_clients.py --nodes 500 --clients 0,50

Starts the scale scenario's simulator and the exporter in their own processes (as bench/run.py
does), waits for /readyz, then opens N connections that each send a scrape request the way
Prometheus does (OpenMetrics or text, with or without gzip) and never read the answer. It reports
the exporter's resident memory before, with the clients connected (once the server has written
what the sockets take), and after they are gone, and how many got 503 once every response slot
was taken. Only loopback is used; every connection is closed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

from loopback_ports import free_port
from probes import Process, memory_mb, wait_until_ready
from run import Options, exporter_argv, start_simulator

HEADERS = {
    "openmetrics-gzip": "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
                        "Accept-Encoding: gzip\r\n",
    "text-identity": "Accept: text/plain;version=0.0.4\r\nAccept-Encoding: identity\r\n",
}


async def measure(port: int, pid: int, count: int, headers: str) -> dict[str, float]:
    """Open `count` connections that send a scrape request and never read; RSS before, with, after."""
    before = memory_mb(pid, "VmRSS")
    request = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    clients = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(request)
        await writer.drain()
        clients.append((reader, writer))
    # Give the server time to write what the sockets take, and to answer 503 to the clients queued
    # beyond the response slots (after its 10 s queue timeout); stay below its 30 s write timeout.
    await asyncio.sleep(15)
    during = memory_mb(pid, "VmRSS")
    refused = 0
    for reader, _ in clients:
        try:
            head = await asyncio.wait_for(reader.read(12), timeout=0.2)
        except TimeoutError:
            continue
        refused += head.startswith(b"HTTP/1.1 503")
    for _, writer in clients:
        writer.transport.abort()
    await asyncio.sleep(2)
    return {"before": before, "during": during, "after": memory_mb(pid, "VmRSS"),
            "peak": memory_mb(pid, "VmHWM"), "refused": refused}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--clients", default="0,100,300", help="comma-separated stalled client counts")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="slow-clients-"))
    sim, env, cloud_url, _ = start_simulator(args.nodes, workdir)
    rows = []
    try:
        port = free_port()
        options = Options(nodes=[args.nodes])
        proc = Process.start("exporter", exporter_argv("exporter", port, cloud_url, options), env, workdir)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", proc, 900)
            time.sleep(5)  # let the first renders settle before the baseline figure
            for kind, headers in HEADERS.items():
                for count in counts:
                    figures = asyncio.run(measure(port, proc.pid, count, headers))
                    rows.append((kind, count, figures))
                    print(f"  {kind:17} {count:4} clients: RSS {figures['before']:.0f} -> {figures['during']:.0f} MB "
                          f"(after {figures['after']:.0f}, peak {figures['peak']:.0f})", file=sys.stderr, flush=True)
            alive = proc.alive()
        finally:
            proc.stop()
    finally:
        sim.stop()
    print("| scrape headers | stalled clients | answered 503 | RSS before (MB) | RSS with them (MB) | RSS after (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, count, f in rows:
        print(f"| {kind} | {count} | {f['refused']:.0f} | {f['before']:.0f} | {f['during']:.0f} | {f['after']:.0f} |")
    print(f"\n{args.nodes} nodes; exporter alive at the end: {alive}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
