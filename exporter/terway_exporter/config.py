"""Command-line options: one declarative table, three ways to set each option.

Every option is a flag, an environment variable (`TERWAY_EXPORTER_<OPTION>` unless a
standard name exists) and a key of the YAML file given with `--config`. Flags win
over the environment, the environment over the file. Every value is parsed and
validated here; an invalid one raises `ConfigError` naming the option, which the
CLI turns into exit code 2. `resolve` returns typed `Options`; the table holds each
option's default once.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from .selection import parse_patterns


class ConfigError(ValueError):
    """An invalid option; the message starts with the option's flag."""


# ---------------------------------------------------------------- value parsers


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d)?)+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `1h30m`, `500ms` -> seconds (> 0)."""
    value = str(text).strip()
    if not value or not _DURATION.match(value):
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 15m, 1h30m)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{text!r} must be greater than zero")
    return value


_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")


def parse_region(text: str) -> str:
    value = str(text).strip()
    if not _REGION.match(value):
        raise ValueError(f"{text!r} is not an Alibaba Cloud region ID (examples: cn-hangzhou, ap-southeast-1)")
    return value


def parse_endpoint(text: str) -> str:
    """`host[:port]` or `http(s)://host[:port]` -> normalised URL-ish string kept as given."""
    value = str(text).strip()
    candidate = value if "://" in value else f"https://{value}"
    parts = urlsplit(candidate)
    try:
        _ = parts.port  # urllib parses the port lazily: touch it to reject "host:99999"
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    host_ok = bool(parts.hostname) and re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", parts.hostname or "")
    if parts.scheme not in ("http", "https") or not host_ok or parts.path not in ("", "/"):
        raise ValueError(f"{text!r} is not an endpoint (host[:port] or http(s)://host[:port])")
    return value


def parse_listen_address(text: str) -> tuple[str, int]:
    """`:9417`, `0.0.0.0:9417`, `[::1]:9417` -> (host, port)."""
    value = str(text).strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not a listen address (examples: :9417, 127.0.0.1:9417)")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def parse_id_list(prefix: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: Any) -> tuple[str, ...]:
        items = text if isinstance(text, list) else str(text).replace(",", " ").split()
        ids = tuple(str(i).strip() for i in items if str(i).strip())
        bad = [i for i in ids if not i.startswith(prefix)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: IDs must start with {prefix!r}")
        return ids
    return parse


def parse_vpc_id(text: str) -> str:
    value = str(text).strip()
    if not value.startswith("vpc-"):
        raise ValueError(f"{text!r} is not a VPC ID (vpc-...)")
    return value


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value
    return parse


def parse_readable_file(text: str) -> str:
    path = os.path.expanduser(str(text))
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError(f"{text!r} is not a readable file")
    return path


def parse_bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


# ---------------------------------------------------------------- the option table


@dataclass(frozen=True)
class Option:
    name: str  # flag without dashes, e.g. "cloud-poll-interval"
    help: str
    parse: Callable[[Any], Any]
    default: Any = None
    env: str | None = None  # standard variable name; else TERWAY_EXPORTER_<NAME>
    commands: tuple[str, ...] = ("serve", "collect")
    shown_default: str | None = None  # the default as a user writes it, when the parsed value reads worse

    @property
    def dest(self) -> str:
        return re.sub(r"[-.]", "_", self.name)

    @property
    def env_name(self) -> str:
        return self.env or "TERWAY_EXPORTER_" + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option("region", "Alibaba Cloud region; when absent, read from the cluster (eni-config, Node labels)",
           parse_region, env="ALIBABA_CLOUD_REGION_ID"),
    Option("vpc-id", "VPC of the cluster; when absent, derived from the configured vSwitches", parse_vpc_id),
    Option("vswitch-ids", "vSwitch IDs to watch besides those the cluster's configuration names (comma-separated)",
           parse_id_list("vsw-"), default=()),
    Option("security-group-ids", "security group IDs to check besides those the configuration names",
           parse_id_list("sg-"), default=()),
    Option("ecs-endpoint", "ECS API endpoint override: host[:port] or URL (VPC-internal endpoints, tests)",
           parse_endpoint),
    Option("vpc-endpoint", "VPC API endpoint override: host[:port] or URL", parse_endpoint),
    Option("quotas-endpoint", "Quota Center API endpoint override: host[:port] or URL", parse_endpoint),
    Option("kubeconfig", "kubeconfig file; when absent, the in-cluster service account", parse_readable_file,
           env="KUBECONFIG"),
    Option("no-kubernetes", "run without a cluster: only the cloud source (IDs from --vswitch-ids/--vpc-id)",
           parse_bool, default=False),
    Option("terway-namespace", "namespace where Terway runs", str, default="kube-system"),
    Option("listen-address", "address of the HTTP server", parse_listen_address, default=("0.0.0.0", 9417),
           commands=("serve",), shown_default=":9417"),
    Option("cloud-poll-interval", "how often vSwitches, leaked ENIs, the ENI quota and security groups are polled",
           parse_duration, default=60.0),
    Option("eni-census-interval", "how often every ENI of the VPC is listed (the terway_enis census)",
           parse_duration, default=900.0),
    Option("leak-grace-period", "how long a Terway ENI may stay detached before it counts as leaked",
           parse_duration, default=900.0),
    Option("instance-type-cache-ttl", "how long instance-type limits are cached", parse_duration, default=21600.0),
    Option("cloud-api-rate",
           "most cloud API requests per second, all APIs together (Terway shares the account's limits)",
           parse_positive_float, default=5.0),
    Option("metric-allowlist", "expose only the metric families matching one of these regular expressions "
           "(comma-separated, whole name as queried, e.g. terway_vswitch_.*,terway_exporter_.*); "
           "exclusive with --metric-denylist", parse_patterns, default=()),
    Option("metric-denylist", "expose every metric family except those matching one of these regular expressions "
           "(comma-separated, whole name as queried, e.g. terway_daemon_container_.*)", parse_patterns, default=()),
    Option("no-node-metrics", "drop every family with a node label (terway_node_*, per-node daemon and "
           "waiting-pod series): cluster-level signals only", parse_bool, default=False),
    Option("render-interval", "least time between two renders of the exposition while data keeps changing",
           parse_duration, default=1.0),
    # The dotted name is the flag every exporter-toolkit (Go) exporter takes for this file.
    Option("web.config.file", "web configuration file in exporter-toolkit's format: TLS, client certificates, "
           "basic auth, headers (docs/cli.md); certificates are re-read when they change",
           parse_readable_file, commands=("serve", "demo")),
    Option("log-level", "debug, info, warning or error", parse_choice("debug", "info", "warning", "error"),
           default="info", commands=("serve", "collect", "demo", "simulate")),
    Option("log-format", "text or json", parse_choice("text", "json"), default="text",
           commands=("serve", "collect", "demo", "simulate")),
)


@dataclass(frozen=True, slots=True)
class Options:
    """Every option, parsed (one field per entry of OPTIONS, same name as its `dest`). A command
    that does not take an option gets the table's default for it."""

    region: str | None
    vpc_id: str | None
    vswitch_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    ecs_endpoint: str | None
    vpc_endpoint: str | None
    quotas_endpoint: str | None
    kubeconfig: str | None
    no_kubernetes: bool
    terway_namespace: str
    listen_address: tuple[str, int]
    cloud_poll_interval: float
    eni_census_interval: float
    leak_grace_period: float
    instance_type_cache_ttl: float
    cloud_api_rate: float
    metric_allowlist: tuple[re.Pattern[str], ...]
    metric_denylist: tuple[re.Pattern[str], ...]
    no_node_metrics: bool
    render_interval: float
    web_config_file: str | None
    log_level: str
    log_format: str
    # Not options anyone sets: the report commands and the demo put them in (dataclasses.replace).
    # Warning events last seen before `events_since` (unix seconds) are not counted; None: from the
    # moment the Kubernetes source starts (see sources/kube/source.py's KubeSettings).
    events_since: float | None = None
    # Instance types looked up even when no node has them (`capacity`'s what-ifs).
    instance_types: frozenset[str] = frozenset()


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Flags for one command. Defaults are applied later so the environment and file can fill gaps."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="YAML file of options (keys as the flags, without dashes); flags > environment > file")
    for opt in OPTIONS:
        if command not in opt.commands:
            continue
        shown = opt.shown_default or _show_default(opt.default)
        help_text = f"{opt.help} (env {opt.env_name}; default: {shown})"
        if opt.parse is parse_bool:
            parser.add_argument(f"--{opt.name}", dest=opt.dest, action="store_const", const=True,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(f"--{opt.name}", dest=opt.dest, default=argparse.SUPPRESS, metavar="VALUE",
                                help=help_text)


def _show_default(value: Any) -> str:
    if value is None or value == ():
        return "none"
    return str(value)


def resolve(command: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Options:
    """Merge file < environment < flags and parse every value of `command`'s options."""
    file_values = _read_file(flags.get("config") or environ.get("TERWAY_EXPORTER_CONFIG"))
    resolved: dict[str, Any] = {}
    for opt in OPTIONS:
        if command not in opt.commands:
            resolved[opt.dest] = opt.default
            continue
        raw, origin = _pick(opt, flags, environ, file_values)
        if raw is None:
            resolved[opt.dest] = opt.default
            continue
        try:
            resolved[opt.dest] = opt.parse(raw)
        except ValueError as err:
            raise ConfigError(f"--{opt.name} (from {origin}): {err}") from None
    unknown = set(file_values) - {o.dest for o in OPTIONS}
    if unknown:
        raise ConfigError(f"--config: unknown option(s) {', '.join(sorted(unknown))}")
    if resolved.get("metric_allowlist") and resolved.get("metric_denylist"):
        raise ConfigError("--metric-allowlist and --metric-denylist are exclusive (as in kube-state-metrics): "
                          "give one of them")
    return Options(**resolved)



def _pick(opt: Option, flags: Mapping[str, Any], environ: Mapping[str, str],
          file_values: Mapping[str, Any]) -> tuple[Any, str]:
    if opt.dest in flags:
        return flags[opt.dest], "flag"
    if environ.get(opt.env_name, "") != "":
        return environ[opt.env_name], f"environment {opt.env_name}"
    if opt.dest in file_values:
        return file_values[opt.dest], "config file"
    return None, "default"


def _read_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as err:
        raise ConfigError(f"--config: cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"--config: {path!r} is not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config: {path!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path!r} must hold a mapping of option names to values")
    return {re.sub(r"[-.]", "_", str(k)): v for k, v in data.items()}
