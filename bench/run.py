"""Scale and speed benchmark: terway-exporter against the usual way of writing an exporter.

    python bench/run.py                    # 5,000, 500 and 50 nodes (about 20 minutes)
    python bench/run.py --nodes 5000       # one size
    python bench/run.py --quick            # 50 nodes, short phases (CI)

For each node count it starts the simulator (`terway-exporter simulate --scenario scale`) in
its own process, then, one after the other, the exporter (`terway-exporter serve`) and the
baseline (bench/baseline.py) in their own processes against it, and measures from outside:
cloud calls per regular poll and per census (the simulator's counters), time to /readyz,
/metrics latency under concurrent scrapers, CPU per poll and during the scenario's churn of
1% of pods and Node CRs per minute, and resident memory (/proc). It prints one table with the
baseline beside the exporter, the ratio, and how each figure grows with the node count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loopback_ports import free_port
from probes import (
    CloudCalls,
    Process,
    Prometheus,
    body_size,
    cpu_seconds,
    http,
    memory_mb,
    scrape_load,
    wait_until_ready,
    wire_bytes,
)

BENCH = Path(__file__).resolve().parent
RULES = BENCH.parent / "alerts" / "terway-exporter.rules.yaml"
KINDS = ("exporter", "baseline")
CENSUS_API = "DescribeNetworkInterfaces"  # the census lists every ENI of the VPC, and nothing else


@dataclass
class Options:
    nodes: list[int]
    scrapers: int = 10
    scrape_seconds: float = 30.0
    churn_seconds: float = 60.0
    poll_interval: float = 20.0
    ready_timeout: float = 900.0
    kinds: tuple[str, ...] = KINDS
    prometheus_seconds: float = 120.0  # how long the real Prometheus scrapes (10 s interval)


@dataclass
class Figures:
    """Everything measured for one exporter at one node count (None: not measured)."""

    ready_seconds: float | None = None
    first_sync_calls: dict[str, int] = field(default_factory=dict)
    poll_calls: dict[str, int] = field(default_factory=dict)
    census_calls: int | None = None
    cpu_per_poll: float | None = None
    rss_synced_mb: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    scrapes: int | None = None
    scrape_errors: int | None = None
    wire_bytes: int | None = None
    body_bytes: int | None = None
    churn_cpu_percent: float | None = None
    watch_cpu_per_minute: float | None = None
    cluster_changes_per_minute: float | None = None
    simulator_cpu_percent: float | None = None
    peak_rss_mb: float | None = None
    # Under a real Prometheus (default headers, shipped rules, 10 s scrape interval):
    prom_samples: float | None = None  # scrape_samples_scraped
    prom_wire_bytes: int | None = None  # one answer to Prometheus's headers, as sent
    prom_content_type: str = ""
    prom_scrape_p99_s: float | None = None  # quantile_over_time(0.99, scrape_duration_seconds)
    prom_rule_group_max_s: float | None = None  # slowest rule group: the median of its evaluations' times
    prom_slowest_rules: list[tuple[str, str, float]] = field(default_factory=list)  # (group, rule, s)
    rss_after_prometheus_mb: float | None = None
    error: str = ""


# ------------------------------------------------------------------ one node count



def start_simulator(nodes: int, workdir: Path) -> tuple[Process, dict[str, str], str, str]:
    """The scale scenario's simulator; returns it, the exporter environment, cloud and API URLs."""
    kubeconfig = workdir / "kubeconfig"
    argv = [sys.executable, "-m", "terway_exporter", "simulate", "--scenario", "scale", "--nodes", str(nodes),
            "--kubeconfig-out", str(kubeconfig), "--log-level", "warning"]
    sim = Process.start("simulator", argv, dict(os.environ), workdir)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = sim.log_path.read_text(errors="replace")
        cloud, kube = re.search(r"cloud APIs: (\S+)", text), re.search(r"API server: (\S+)", text)
        if cloud and kube and "env file:" in text:
            env = dict(os.environ)
            for line in (workdir / "exporter.env").read_text().splitlines():
                key, _, value = line.removeprefix("export ").partition("=")
                env[key] = value
            return sim, env, cloud.group(1), kube.group(1)
        if not sim.alive():
            raise RuntimeError(f"simulator exited:\n{sim.log_tail()}")
        time.sleep(0.2)
    sim.stop()
    raise RuntimeError("simulator did not start within 600 s")


def exporter_argv(kind: str, port: int, cloud_url: str, options: Options) -> list[str]:
    program = ["-m", "terway_exporter"] if kind == "exporter" else [str(BENCH / "baseline.py")]
    return [sys.executable, *program, "serve", "--listen-address", f"127.0.0.1:{port}",
            "--ecs-endpoint", cloud_url, "--vpc-endpoint", cloud_url, "--quotas-endpoint", cloud_url,
            "--cloud-poll-interval", f"{options.poll_interval:g}s",
            "--eni-census-interval", "24h",  # one census, at start: measured in the first sync
            "--log-level", "warning"]


def measure(kind: str, sim: Process, env: dict[str, str], cloud_url: str, kube_url: str,
            options: Options, workdir: Path) -> Figures:
    figures = Figures()
    calls = CloudCalls(cloud_url)
    calls.reset()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Process.start(kind, exporter_argv(kind, port, cloud_url, options), env, workdir)
    try:
        figures.ready_seconds = wait_until_ready(base, proc, options.ready_timeout)
        figures.first_sync_calls = calls.wait_quiet()
        figures.rss_synced_mb = memory_mb(proc.pid, "VmRSS")
        _measure_poll(figures, calls, proc, options)
        _measure_churn(figures, calls, proc, sim, kube_url, options)
        _measure_scrapes(figures, base, options)
        _measure_prometheus(figures, base, proc, workdir / f"prometheus-{kind}", options)
        figures.peak_rss_mb = memory_mb(proc.pid, "VmHWM")
    except Exception as err:  # keep the other runs: the table shows what failed
        figures.error = " ".join(str(err).split())[:300]
        print(f"  {kind}: {err}", file=sys.stderr, flush=True)
    finally:
        proc.stop()
    return figures


def _measure_poll(figures: Figures, calls: CloudCalls, proc: Process, options: Options) -> None:
    """One regular poll: its calls by API, and the CPU it took above the idle rate before it."""
    calls.reset()
    cpu_a, t_a = cpu_seconds(proc.pid), time.monotonic()
    calls.wait_for_any(timeout=2 * options.poll_interval + 30)
    cpu_b, t_b = cpu_seconds(proc.pid), time.monotonic()
    figures.poll_calls = calls.wait_quiet(quiet=1.5)
    cpu_c, t_c = cpu_seconds(proc.pid), time.monotonic()
    background = (cpu_b - cpu_a) / max(t_b - t_a, 1e-3)
    figures.cpu_per_poll = max(0.0, (cpu_c - cpu_b) - background * (t_c - t_b))
    census = figures.first_sync_calls.get(CENSUS_API, 0) - figures.poll_calls.get(CENSUS_API, 0)
    figures.census_calls = max(census, 0)


def _measure_churn(figures: Figures, calls: CloudCalls, proc: Process, sim: Process, kube_url: str,
                   options: Options) -> None:
    """CPU while the simulator churns (the scale scenario's churn_per_minute), regular polls included."""
    calls.reset()
    rv0 = _resource_version(kube_url)
    cpu0, sim0, t0 = cpu_seconds(proc.pid), cpu_seconds(sim.pid), time.monotonic()
    time.sleep(options.churn_seconds)
    cpu1, sim1, t1 = cpu_seconds(proc.pid), cpu_seconds(sim.pid), time.monotonic()
    window = t1 - t0
    figures.churn_cpu_percent = 100 * (cpu1 - cpu0) / window
    figures.simulator_cpu_percent = 100 * (sim1 - sim0) / window
    polls = calls.total() / max(sum(figures.poll_calls.values()), 1)
    figures.watch_cpu_per_minute = max(0.0, (cpu1 - cpu0) - polls * (figures.cpu_per_poll or 0)) * 60 / window
    figures.cluster_changes_per_minute = (_resource_version(kube_url) - rv0) * 60 / window


def _resource_version(kube_url: str) -> int:
    status, body = http(kube_url + "/_sim/kube/stats")
    return int(json.loads(body)["resourceVersion"]) if status == 200 else 0


def _measure_scrapes(figures: Figures, base: str, options: Options) -> None:
    figures.body_bytes = body_size(base + "/metrics")
    result = asyncio.run(scrape_load(base + "/metrics", options.scrapers, options.scrape_seconds))
    figures.scrapes, figures.scrape_errors, figures.wire_bytes = len(result.latencies), result.errors, result.wire_bytes
    p50, p99 = result.percentile(50), result.percentile(99)
    figures.p50_ms = None if p50 is None else p50 * 1000
    figures.p99_ms = None if p99 is None else p99 * 1000


def _measure_prometheus(figures: Figures, base: str, proc: Process, workdir: Path, options: Options) -> None:
    """A real Prometheus scrapes with its default headers (OpenMetrics, gzip) and evaluates the shipped
    rules: what the exporter costs the user's Prometheus, and the exporter's memory once it serves it."""
    prometheus = Prometheus.start(workdir, base.removeprefix("http://"), [RULES], free_port())
    try:
        scrapes = max(3, int(options.prometheus_seconds // 10))
        prometheus.wait_for_scrapes(3, timeout=options.prometheus_seconds + 120)
        # Prometheus does not scrape itself here: its rules API gives each group's and rule's last evaluation
        # time, read once per evaluation while it scrapes, and the median of those readings is reported.
        times = prometheus.median_rule_times(options.prometheus_seconds - 30)
        prometheus.wait_for_scrapes(scrapes, timeout=options.prometheus_seconds + 120)
        job = '{job="terway-exporter"}'
        figures.prom_samples = prometheus.query(f"scrape_samples_scraped{job}")
        figures.prom_scrape_p99_s = prometheus.query(f"quantile_over_time(0.99, scrape_duration_seconds{job}[1h])")
        groups = [seconds for name, seconds in times.items() if " / " not in name]
        figures.prom_rule_group_max_s = max(groups, default=None)
        rules = sorted(((*name.split(" / ", 1), seconds) for name, seconds in times.items() if " / " in name),
                       key=lambda rule: rule[2], reverse=True)
        figures.prom_slowest_rules = [(group, rule, seconds) for group, rule, seconds in rules[:5]]
        for group, rule, seconds in figures.prom_slowest_rules:
            print(f"  rule {rule} ({group}): {seconds * 1000:.1f} ms", file=sys.stderr, flush=True)
        figures.prom_wire_bytes, figures.prom_content_type = wire_bytes(base + "/metrics")
        figures.rss_after_prometheus_mb = memory_mb(proc.pid, "VmRSS")
    finally:
        prometheus.stop()


def run_size(nodes: int, options: Options, root: Path) -> dict[str, Figures]:
    workdir = root / f"nodes-{nodes}"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"[{nodes} nodes] starting the simulator", file=sys.stderr, flush=True)
    sim, env, cloud_url, kube_url = start_simulator(nodes, workdir)
    try:
        results = {}
        for kind in options.kinds:
            print(f"[{nodes} nodes] measuring the {kind}", file=sys.stderr, flush=True)
            results[kind] = measure(kind, sim, env, cloud_url, kube_url, options, workdir)
        return results
    finally:
        sim.stop()


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    label: str
    value: callable  # Figures -> float | None
    fmt: str = "{:.1f}"


def rows(results: dict[int, dict[str, Figures]]) -> list[Row]:
    apis = sorted({api for by_kind in results.values() for f in by_kind.values() for api in f.poll_calls})
    out = [Row("cloud calls per regular poll", lambda f: sum(f.poll_calls.values()) if f.poll_calls else None,
               "{:.0f}")]
    out += [Row(f"  {api}", lambda f, a=api: f.poll_calls.get(a, 0) if f.poll_calls else None, "{:.0f}")
            for api in apis]
    out += [
        Row(f"cloud calls per census ({CENSUS_API})", lambda f: f.census_calls, "{:.0f}"),
        Row("cloud calls, first sync (poll + census)",
            lambda f: sum(f.first_sync_calls.values()) if f.first_sync_calls else None, "{:.0f}"),
        Row("time to /readyz (s)", lambda f: f.ready_seconds),
        Row("/metrics p50 (ms)", lambda f: f.p50_ms, "{:.2f}"),
        Row("/metrics p99 (ms)", lambda f: f.p99_ms, "{:.2f}"),
        Row("scrapes answered", lambda f: f.scrapes, "{:.0f}"),
        Row("  failed scrapes", lambda f: f.scrape_errors, "{:.0f}"),
        Row("bytes per scrape, gzip (KB)", lambda f: None if f.wire_bytes is None else f.wire_bytes / 1024),
        Row("bytes per scrape, plain (KB)", lambda f: None if f.body_bytes is None else f.body_bytes / 1024),
        Row("CPU s per regular poll", lambda f: f.cpu_per_poll, "{:.3f}"),
        Row("CPU s per minute of watch traffic", lambda f: f.watch_cpu_per_minute, "{:.2f}"),
        Row("CPU % of a core during churn", lambda f: f.churn_cpu_percent),
        Row("Prometheus: samples per scrape", lambda f: f.prom_samples, "{:.0f}"),
        Row("Prometheus: bytes per scrape on the wire (KB)",
            lambda f: None if f.prom_wire_bytes is None else f.prom_wire_bytes / 1024),
        Row("Prometheus: scrape_duration_seconds p99 (ms)",
            lambda f: None if f.prom_scrape_p99_s is None else f.prom_scrape_p99_s * 1000),
        Row("Prometheus: slowest rule group, median (ms)",
            lambda f: None if f.prom_rule_group_max_s is None else f.prom_rule_group_max_s * 1000),
        Row("RSS after first sync (MB)", lambda f: f.rss_synced_mb, "{:.0f}"),
        Row("RSS serving Prometheus (MB)", lambda f: f.rss_after_prometheus_mb, "{:.0f}"),
        Row("peak RSS (MB)", lambda f: f.peak_rss_mb, "{:.0f}"),
        Row("cluster changes per minute (sim)", lambda f: f.cluster_changes_per_minute, "{:.0f}"),
        Row("simulator CPU % during churn", lambda f: f.simulator_cpu_percent),
    ]
    return out


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _ratio(exporter: float | None, baseline: float | None) -> str:
    if exporter is None or baseline is None or exporter == 0:
        return "-"
    return f"{baseline / exporter:.1f}x"


def _growth(values: list[float | None]) -> str:
    """Value at the largest node count over the value at the smallest."""
    if len(values) < 2 or values[0] is None or values[-1] is None or values[0] == 0:
        return "-"
    return f"{values[-1] / values[0]:.1f}x"


def render_table(results: dict[int, dict[str, Figures]]) -> str:
    sizes = sorted(results)
    head = ["figure"]
    for n in sizes:
        head += [f"exp@{n}", f"base@{n}", "base/exp"]
    if len(sizes) > 1:
        head += [f"exp {sizes[0]}->{sizes[-1]}", f"base {sizes[0]}->{sizes[-1]}"]
    table = [head]
    for row in rows(results):
        line = [row.label]
        for n in sizes:
            exp, base = (row.value(results[n][k]) if k in results[n] else None for k in KINDS)
            line += [_cell(exp, row.fmt), _cell(base, row.fmt), _ratio(exp, base)]
        if len(sizes) > 1:
            for kind in KINDS:
                line.append(_growth([row.value(results[n][kind]) if kind in results[n] else None for n in sizes]))
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    # Every row has a cell per column of `head` (the loop above mirrors how `head` is built).
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in table]
    lines.insert(1, "-" * len(lines[0]))
    if len(sizes) > 1:
        lines.append(f"(the last columns: value at {sizes[-1]} nodes over value at {sizes[0]} nodes, "
                     f"for {sizes[-1] / sizes[0]:.0f}x the nodes)")
    return "\n".join(lines)


def target_lines(results: dict[int, dict[str, Figures]]) -> list[str]:
    """The targets of issues 7 and 13, judged at the largest node count measured (set for 5,000 nodes;
    the per-node budgets 8 samples and 70 bytes are issue 13's 40,000 samples and 350 KB at 5,000)."""
    largest = max(results)
    exp = results[largest].get("exporter", Figures())
    base = results[largest].get("baseline", Figures())
    per_poll = {n: sum(r["exporter"].poll_calls.values()) for n, r in results.items()
                if "exporter" in r and r["exporter"].poll_calls}
    checks = [
        ("cloud calls per regular poll equal at every size, at most 10",
         bool(per_poll) and len(set(per_poll.values())) == 1 and max(per_poll.values()) <= 10,
         ", ".join(f"{n}: {c}" for n, c in sorted(per_poll.items()))),
        (f"/metrics p99 at {largest} nodes <= 25 ms", exp.p99_ms is not None and exp.p99_ms <= 25,
         _cell(exp.p99_ms, "{:.2f} ms")),
        (f"/metrics p99 at {largest} nodes >= 20x faster than the baseline",
         exp.p99_ms is not None and base.p99_ms is not None and base.p99_ms >= 20 * exp.p99_ms,
         _ratio(exp.p99_ms, base.p99_ms)),
        (f"peak RSS at {largest} nodes <= 200 MB, OpenMetrics scraped",
         exp.peak_rss_mb is not None and exp.peak_rss_mb <= 200, _cell(exp.peak_rss_mb, "{:.0f} MB")),
        (f"CPU during churn at {largest} nodes <= 5% of a core",
         exp.churn_cpu_percent is not None and exp.churn_cpu_percent <= 5, _cell(exp.churn_cpu_percent, "{:.1f}%")),
        (f"/readyz at {largest} nodes within 20 s", exp.ready_seconds is not None and exp.ready_seconds <= 20,
         _cell(exp.ready_seconds, "{:.1f} s")),
        (f"samples per scrape at {largest} nodes <= 8 per node",
         exp.prom_samples is not None and exp.prom_samples <= 8 * largest, _cell(exp.prom_samples, "{:.0f}")),
        (f"bytes per scrape with Prometheus's headers at {largest} nodes <= 70 B per node",
         exp.prom_wire_bytes is not None and exp.prom_wire_bytes <= 70 * largest,
         _cell(None if exp.prom_wire_bytes is None else exp.prom_wire_bytes / 1024, "{:.0f} KB")),
        (f"slowest rule group at {largest} nodes <= 0.1 s",
         exp.prom_rule_group_max_s is not None and exp.prom_rule_group_max_s <= 0.1,
         _cell(None if exp.prom_rule_group_max_s is None else exp.prom_rule_group_max_s * 1000, "{:.0f} ms")),
    ]
    return [f"  [{'met' if ok else 'MISSED'}] {label}: {shown}" for label, ok, shown in checks]


# ------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="5000,500,50", help="node counts, comma-separated (default 5000,500,50)")
    parser.add_argument("--quick", action="store_true",
                        help="50 nodes and short phases (a few seconds each): the CI smoke run")
    parser.add_argument("--scrapers", type=int, default=10, help="concurrent scrapers (default 10)")
    parser.add_argument("--scrape-seconds", type=float, help="how long the scrapers run (default 30)")
    parser.add_argument("--churn-seconds", type=float, help="CPU window while the cluster churns (default 60)")
    parser.add_argument("--poll-interval", type=float, help="cloud poll interval given to both (default 20)")
    parser.add_argument("--only", choices=KINDS, help="measure only this one (for profiling)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    options = Options(
        nodes=[50] if quick and args.nodes == "5000,500,50" else [int(n) for n in args.nodes.split(",")],
        scrapers=args.scrapers,
        scrape_seconds=args.scrape_seconds or (5.0 if quick else 30.0),
        churn_seconds=args.churn_seconds or (8.0 if quick else 60.0),
        poll_interval=args.poll_interval or (5.0 if quick else 20.0),
        kinds=(args.only,) if args.only else KINDS,
        ready_timeout=120.0 if quick else 900.0,
        prometheus_seconds=30.0 if quick else 120.0,
    )
    return options, args.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    # Stopped from outside (a CI timeout): unwind, so every child process is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[int, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="terway-bench-") as root:
        for nodes in options.nodes:
            results[nodes] = run_size(nodes, options, Path(root))
    print(f"terway-exporter benchmark: scale scenario, {options.scrapers} scrapers x {options.scrape_seconds:g} s, "
          f"churn window {options.churn_seconds:g} s, cloud poll every {options.poll_interval:g} s, "
          f"{os.cpu_count()} CPUs")
    print(render_table(results))
    print("targets:")
    print("\n".join(target_lines(results)))
    failed = [f"{n} nodes, {kind}: {f.error}" for n, r in results.items() for kind, f in r.items() if f.error]
    for line in failed:
        print(f"FAILED {line}")
    if json_path:
        json_path.write_text(json.dumps({n: {k: asdict(f) for k, f in r.items()} for n, r in results.items()},
                                        indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
