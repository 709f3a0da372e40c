"""The CLI's own entry point (`terway_exporter.cli.main`) run in this process, as a user runs a command:
an environment of its own, stdout captured. Cheaper than a process per command (importing the cloud and
Kubernetes clients costs more CPU than most comparisons); tests that need what only a process shows (the
exit status of the interpreter, a terminal on stdout) start one instead."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence

from terway_exporter.cli import main as cli_main

# The variables the exporter reads: a run sees only the ones it is given.
EXPORTER_VARIABLES = ("ALIBABA_CLOUD_", "TERWAY_EXPORTER_")


@contextlib.contextmanager
def exporter_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Only `values` among the variables the exporter reads (ALIBABA_CLOUD_*, TERWAY_EXPORTER_*) for the
    block, the environment restored after. Not thread-safe: os.environ is the process's."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(EXPORTER_VARIABLES)}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)
        os.environ.update(saved)


def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    """`terway-exporter ARGV` through the CLI's entry point with `env` as its environment (see
    exporter_environment): (exit code, stdout)."""
    out = io.StringIO()
    with exporter_environment(env), contextlib.redirect_stdout(out):
        code = cli_main(list(argv))
    return code, out.getvalue()
