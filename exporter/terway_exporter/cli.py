"""The `terway-exporter` command: serve, collect, demo, simulate (see docs/cli.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from typing import Any

from . import __version__
from .config import ConfigError, add_options, parse_listen_address, resolve
from .logs import setup_logging

log = logging.getLogger("terway_exporter")

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_USAGE = 0, 1, 2


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
    return parser


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
    args = parser.parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        options = resolve(args.command, flags, os.environ)
    except ConfigError as err:
        print(f"terway-exporter {args.command}: invalid configuration: {err}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(options["log_level"], options["log_format"])
    handler = {"serve": _serve, "collect": _collect, "demo": _demo, "simulate": _simulate}[args.command]
    try:
        return handler(args, options)
    except ConfigError as err:
        print(f"terway-exporter {args.command}: invalid configuration: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _check_kubernetes(options: dict[str, Any]) -> None:
    """A kubeconfig must load; without one the exporter needs the in-cluster service account."""
    if options["no_kubernetes"]:
        return
    if options["kubeconfig"]:
        from .sources.kube.kubeconfig import KubeconfigError, check_kubeconfig

        try:
            check_kubeconfig(os.path.expanduser(options["kubeconfig"]))
        except KubeconfigError as err:
            raise ConfigError(f"--kubeconfig: {err}") from None
        return
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ConfigError("--kubeconfig: not given and not running in a cluster "
                          "(no KUBERNETES_SERVICE_HOST); give a kubeconfig or --no-kubernetes")


def _serve(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .runtime import Runtime

    _check_kubernetes(options)
    host, port = options["listen_address"]
    return _run_server(args.command, Runtime(options).serve(host, port))


def _run_server(command: str, main: Coroutine[Any, Any, None]) -> int:
    """Run `serve` or `demo`; a task that died ends the process with exit 1 (it was logged)."""
    from .runtime import TaskDied

    try:
        asyncio.run(main)
    except TaskDied as err:
        print(f"terway-exporter {command}: task {err} ended unexpectedly (see the log); exiting", file=sys.stderr)
        return EXIT_SOURCE_FAILED
    return EXIT_OK


def _collect(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .runtime import Runtime

    _check_kubernetes(options)
    text, ok = asyncio.run(Runtime(options).collect_once())
    sys.stdout.write(text.decode())
    sys.stdout.flush()
    return EXIT_OK if ok else EXIT_SOURCE_FAILED


def _load_world(args: argparse.Namespace):
    from .simulator.world import ScenarioError, load_world

    try:
        return load_world(args.scenario, {"nodes": args.nodes} if args.nodes else None)
    except ScenarioError as err:
        raise ConfigError(f"--scenario: {err}") from None


def _simulate(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .simulator.run import serve_simulators

    world = _load_world(args)
    kubeconfig = args.kubeconfig_out or os.path.join(tempfile.mkdtemp(prefix="terway-sim-"), "kubeconfig")
    asyncio.run(serve_simulators(world, kubeconfig, cloud_port=args.cloud_port, kube_port=args.kube_port))
    return EXIT_OK


def _demo(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from .simulator.run import run_demo

    try:
        host, port = parse_listen_address(args.listen_address)
    except ValueError as err:
        raise ConfigError(f"--listen-address: {err}") from None
    world = _load_world(args)
    return _run_server(args.command, run_demo(world, host, port, options))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
