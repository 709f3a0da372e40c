"""The command-line contract: flag > environment > file, and exit 2 naming the option."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from terway_exporter.config import OPTIONS, ConfigError, Options, parse_duration, resolve


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "terway_exporter", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "-1s", "0s", "m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_every_option_of_the_table_is_a_typed_field():
    """One table, one typed result: a new Option without its Options field (or the reverse) is a bug."""
    internal = {"events_since", "instance_types"}  # put in by `check`, `capacity` and `demo`, never flags
    assert {o.dest for o in OPTIONS} == {f.name for f in fields(Options)} - internal
    defaults = resolve("serve", {}, {})
    assert all(getattr(defaults, o.dest) == o.default for o in OPTIONS)


def test_flag_beats_environment_beats_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("cloud-poll-interval: 2m\ncloud_api_rate: 3\nregion: cn-beijing\n")
    env = {"TERWAY_EXPORTER_CLOUD_API_RATE": "4", "ALIBABA_CLOUD_REGION_ID": "cn-shanghai"}
    got = resolve("serve", {"config": str(config), "region": "ap-southeast-1"}, env)
    assert got.region == "ap-southeast-1"  # flag
    assert got.cloud_api_rate == 4.0  # environment over file
    assert got.cloud_poll_interval == 120.0  # file
    assert got.eni_census_interval == 900.0  # default
    assert got.listen_address == ("0.0.0.0", 9417)


@pytest.mark.parametrize("flags,option", [
    ({"cloud_poll_interval": "soon"}, "--cloud-poll-interval"),
    ({"region": "Hangzhou"}, "--region"),
    ({"ecs_endpoint": "ftp://x"}, "--ecs-endpoint"),
    ({"vpc_endpoint": "http://host:99999"}, "--vpc-endpoint"),
    ({"kubeconfig": "/nonexistent/kubeconfig"}, "--kubeconfig"),
    ({"listen_address": "9417"}, "--listen-address"),
    ({"cloud_api_rate": "0"}, "--cloud-api-rate"),
    ({"vswitch_ids": "vsw-a,sg-b"}, "--vswitch-ids"),
    ({"log_format": "xml"}, "--log-format"),
    ({"config": "/nonexistent.yaml"}, "--config"),
])
def test_invalid_values_name_the_option(flags, option):
    with pytest.raises(ConfigError) as err:
        resolve("serve", flags, {})
    assert str(err.value).startswith(option)


def test_unknown_key_in_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("cloud-pol-interval: 2m\n")
    with pytest.raises(ConfigError, match="cloud_pol_interval"):
        resolve("serve", {"config": str(config)}, {})


@pytest.mark.slow  # the command as a process
def test_cli_exit_code_2_with_message():
    result = run_cli("collect", "--no-kubernetes", "--quotas-endpoint", "not a url")
    assert result.returncode == 2
    assert "--quotas-endpoint" in result.stderr and "not a url" in result.stderr


@pytest.mark.slow  # the command as a process
def test_cli_environment_error_names_variable():
    result = run_cli("serve", "--no-kubernetes", env={"TERWAY_EXPORTER_CLOUD_POLL_INTERVAL": "often"})
    assert result.returncode == 2
    assert "TERWAY_EXPORTER_CLOUD_POLL_INTERVAL" in result.stderr


@pytest.mark.slow  # the command as a process
def test_cli_needs_a_cluster_or_no_kubernetes():
    result = run_cli("collect")
    assert result.returncode == 2 and "--kubeconfig" in result.stderr


@pytest.mark.slow  # the command as a process
def test_every_command_has_help_with_defaults():
    for command in ("serve", "collect", "demo", "simulate"):
        result = run_cli(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "default" in result.stdout
