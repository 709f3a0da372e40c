"""The `terway-exporter` command: serve, collect, demo, simulate (see docs/cli.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from . import __version__
from .config import ConfigError, Options, add_options, parse_listen_address, resolve
from .logs import setup_logging

log = logging.getLogger("terway_exporter")

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_NOT_CHECKED = 3  # check and capacity: could not check (a source failed, or invalid usage)
# Commands that take the options of `collect` and report in the terminal.
REPORT_COMMANDS = ("check", "capacity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="terway-exporter",
        description="Prometheus exporter for the Terway CNI on Alibaba Cloud.",
    )
    parser.add_argument("--version", action="version", version=f"terway-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", help="run the exporter (the container's default command)")
    add_options(serve, "serve")
    collect = commands.add_parser("collect", help="run every source once and print the metrics; exit 1 if one failed")
    add_options(collect, "collect")
    demo = commands.add_parser("demo", help="serve the exporter against the built-in simulated cloud and cluster")
    add_options(demo, "demo")
    _add_simulator_options(demo, default_listen="127.0.0.1:9417")
    simulate = commands.add_parser("simulate", help="serve only the simulated APIs; write a kubeconfig for them")
    add_options(simulate, "simulate")
    _add_simulator_options(simulate, default_listen=None)
    simulate.add_argument("--kubeconfig-out", metavar="FILE", default=None,
                          help="where to write the kubeconfig (default: a file in a new temporary directory)")
    simulate.add_argument("--cloud-port", type=int, default=0, help="port of the simulated cloud APIs (default: free)")
    simulate.add_argument("--kube-port", type=int, default=0, help="port of the simulated API server (default: free)")
    check = commands.add_parser(
        "check", help="run every source once and report what is wrong with Terway, by area; exit 0/1/2/3",
        description="Run every source once (like collect) and report the findings: the shipped alerts that would "
                    "fire now, with their evidence and runbooks. Exit 0: no finding; 1: warnings only; "
                    "2: a critical finding; 3: could not check (a source failed, or invalid usage).")
    add_options(check, "collect")
    _add_output_option(check)
    _exit_on_usage_error(check, EXIT_NOT_CHECKED)
    capacity = commands.add_parser(
        "capacity", help="how many more pods and nodes the vSwitches, the ENI quota and the pools allow",
        description="Run every source once and report, per zone, how many more pods can get an IP and how many "
                    "more nodes of each instance type fit; with --add-nodes, whether that scale-out fits and which "
                    "limit is hit first. Exit 0: answered (and the scale-out fits); 1: the scale-out does not "
                    "fit; 3: could not compute (a source it needs failed, or invalid usage).")
    add_options(capacity, "collect")
    _add_output_option(capacity)
    capacity.add_argument("--add-nodes", type=int, default=None, metavar="N",
                          help="what-if: add N nodes (needs --instance-type)")
    capacity.add_argument("--instance-type", default=None, metavar="TYPE",
                          help="instance type of the nodes to add, e.g. ecs.g7.xlarge")
    capacity.add_argument("--zone", default=None, metavar="ZONE",
                          help="zone of the nodes to add (default: spread evenly over the zones with a "
                               "configured vSwitch)")
    capacity.add_argument("--pods-per-node", type=int, default=None, metavar="N",
                          help="pods each new node runs (default: the average of today's nodes)")
    _exit_on_usage_error(capacity, EXIT_NOT_CHECKED)
    return parser


def _add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="text for a terminal (colour only when stdout is one), json for scripts "
                             "(default: text)")


def _exit_on_usage_error(parser: argparse.ArgumentParser, code: int) -> None:
    """Usage errors exit with `code`: for check, 2 means a critical finding, not a typo."""
    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(code, f"{parser.prog}: error: {message}\n")
    parser.error = error  # type: ignore[method-assign]


def _add_simulator_options(parser: argparse.ArgumentParser, default_listen: str | None) -> None:
    parser.add_argument("--scenario", default="demo", metavar="NAME|FILE",
                        help="scenario shipped with the package, or a scenario YAML file (default: demo)")
    parser.add_argument("--nodes", type=int, default=None,
                        help="node count for generated scenarios such as `scale` (default: the scenario's own)")
    if default_listen:
        parser.add_argument("--listen-address", default=default_listen, metavar="VALUE",
                            help=f"address of the exporter's HTTP server (default: {default_listen})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # as parse_args would, but check and capacity keep 2 for a critical finding
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return EXIT_NOT_CHECKED if args.command in REPORT_COMMANDS else EXIT_USAGE
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    usage_exit = EXIT_NOT_CHECKED if args.command in REPORT_COMMANDS else EXIT_USAGE
    try:
        options = resolve("collect" if args.command in REPORT_COMMANDS else args.command, flags, os.environ)
    except ConfigError as err:
        print(f"terway-exporter {args.command}: invalid configuration: {err}", file=sys.stderr)
        return usage_exit
    if args.command in REPORT_COMMANDS and "log_level" not in flags and not os.environ.get("TERWAY_EXPORTER_LOG_LEVEL"):
        options = replace(options, log_level="warning")  # the report is the output; the sources' progress is noise
    setup_logging(options.log_level, options.log_format)
    handler = {"serve": _serve, "collect": _collect, "demo": _demo, "simulate": _simulate,
               "check": _check, "capacity": _capacity}[args.command]
    try:
        return handler(args, options)
    except ConfigError as err:
        print(f"terway-exporter {args.command}: invalid configuration: {err}", file=sys.stderr)
        return usage_exit
    except KeyboardInterrupt:
        return EXIT_OK


def _check_kubernetes(options: Options) -> None:
    """A kubeconfig must load; without one the exporter needs the in-cluster service account."""
    if options.no_kubernetes:
        return
    if options.kubeconfig:
        from .sources.kube.kubeconfig import KubeconfigError, check_kubeconfig

        try:
            check_kubeconfig(os.path.expanduser(options.kubeconfig))
        except KubeconfigError as err:
            raise ConfigError(f"--kubeconfig: {err}") from None
        return
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ConfigError("--kubeconfig: not given and not running in a cluster "
                          "(no KUBERNETES_SERVICE_HOST); give a kubeconfig or --no-kubernetes")


def _serve(args: argparse.Namespace, options: Options) -> int:
    from .runtime import Runtime

    _check_kubernetes(options)
    host, port = options.listen_address
    return _run_server(args.command, Runtime(options).serve(host, port))


def _run_server(command: str, main: Coroutine[Any, Any, None]) -> int:
    """Run `serve` or `demo`; a task that died ends the process with exit 1 (it was logged)."""
    from .memory import limit_malloc_arenas
    from .runtime import TaskDied

    limit_malloc_arenas()  # before the event loop starts any thread
    try:
        asyncio.run(main)
    except TaskDied as err:
        print(f"terway-exporter {command}: task {err} ended unexpectedly (see the log); exiting", file=sys.stderr)
        return EXIT_SOURCE_FAILED
    return EXIT_OK


def _collect(args: argparse.Namespace, options: Options) -> int:
    from .runtime import Runtime

    _check_kubernetes(options)
    text, ok = asyncio.run(Runtime(options).collect_once())
    sys.stdout.write(text.decode())
    sys.stdout.flush()
    return EXIT_OK if ok else EXIT_SOURCE_FAILED


def _sync_state(options: Options, instance_types: frozenset[str] = frozenset(), events_since: float = 0.0):
    """Run every source once, as `collect` does; the ClusterState it read. Warning events last seen
    before `events_since` (unix seconds) are not counted."""

    from .runtime import Runtime

    _check_kubernetes(options)
    # A what-if's instance type must be looked up even when no node has it.
    runtime = Runtime(replace(options, events_since=events_since, instance_types=instance_types))

    async def run():
        try:
            await runtime.sync_once()
        finally:
            runtime.cloud_source.close()
        return runtime.hub.state()

    return asyncio.run(run())


def _colour() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org/)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _check(args: argparse.Namespace, options: Options) -> int:
    from .findings import evaluate, report_context
    from .findings.output import to_json, to_text

    # The alerts count Terway's events of the last 10 minutes: so does `check` (an older event would not fire).
    from .sources.kube.events import ALERT_WINDOW_SECONDS

    state = _sync_state(options, events_since=time.time() - ALERT_WINDOW_SECONDS)
    report = evaluate(state)
    context = report_context(state)
    text = to_json(report, context) if args.output == "json" else to_text(report, context, colour=_colour())
    sys.stdout.write(text)
    sys.stdout.flush()
    return report.exit_code


def _capacity(args: argparse.Namespace, options: Options) -> int:
    from .capacity import WhatIfError, evaluate, what_if
    from .capacity_output import NEEDED_SOURCES, exit_code, to_json, to_text
    from .findings import report_context

    wanted = args.add_nodes is not None or args.instance_type is not None
    if wanted and (args.add_nodes is None or args.instance_type is None):
        raise ConfigError("--add-nodes and --instance-type go together")
    if args.add_nodes is not None and args.add_nodes < 1:
        raise ConfigError("--add-nodes: give a number of nodes above 0")
    if args.pods_per_node is not None and args.pods_per_node < 0:
        raise ConfigError("--pods-per-node: give 0 or more")
    if args.zone is not None and args.add_nodes is None:
        raise ConfigError("--zone places the nodes of --add-nodes; give --add-nodes and --instance-type")
    state = _sync_state(options, frozenset({args.instance_type}) if args.instance_type else frozenset())
    failed = sorted(n for n in NEEDED_SOURCES if (s := state.sources.get(n)) is not None and s.attempted and not s.up)
    capacity = evaluate(state, args.pods_per_node)
    what = None
    if wanted:
        try:
            what = what_if(state, args.add_nodes, args.instance_type, args.zone, args.pods_per_node)
        except WhatIfError as err:
            print(f"terway-exporter capacity: {err}", file=sys.stderr)
            return EXIT_NOT_CHECKED
    context = report_context(state)
    if args.output == "json":
        sys.stdout.write(to_json(capacity, context, state.now, failed, what))
    else:
        sys.stdout.write(to_text(capacity, context, state.now, failed, what, colour=_colour()))
    sys.stdout.flush()
    return exit_code(failed, what)


def _load_world(args: argparse.Namespace):
    from terway_simulator.world import ScenarioError, load_world

    try:
        return load_world(args.scenario, {"nodes": args.nodes} if args.nodes else None)
    except ScenarioError as err:
        raise ConfigError(f"--scenario: {err}") from None


def _simulate(args: argparse.Namespace, options: Options) -> int:
    from terway_simulator.run import serve_simulators

    world = _load_world(args)
    kubeconfig = args.kubeconfig_out or os.path.join(tempfile.mkdtemp(prefix="terway-sim-"), "kubeconfig")
    asyncio.run(serve_simulators(world, kubeconfig, cloud_port=args.cloud_port, kube_port=args.kube_port))
    return EXIT_OK


def _demo(args: argparse.Namespace, options: Options) -> int:
    from .demo import run_demo

    try:
        host, port = parse_listen_address(args.listen_address)
    except ValueError as err:
        raise ConfigError(f"--listen-address: {err}") from None
    world = _load_world(args)
    return _run_server(args.command, run_demo(world, host, port, options))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
