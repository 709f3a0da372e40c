"""The code's own checks, configured in pyproject.toml: ruff (pyflakes, pycodestyle, import order,
pyupgrade, bugbear), mypy over both packages, and import-linter's contracts (docs/architecture.md:
every import runs downward, and the simulator imports nothing from the exporter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # about a minute from cold: the fast loop leaves it to CI
def test_mypy_finds_nothing():
    result = run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_keep_the_layers():
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_would_break_the_contract(tmp_path):
    """The contract can fail: a model module importing the hub is reported."""
    config = tmp_path / "contracts.toml"
    config.write_text('''[tool.importlinter]
root_packages = ["terway_exporter"]

[[tool.importlinter.contracts]]
name = "hub above model"
type = "layers"
layers = ["terway_exporter.hub", "terway_exporter.model"]
''')
    assert run("lint-imports", "--no-cache", "--config", str(config)).returncode == 0
    reversed_config = tmp_path / "reversed.toml"
    reversed_config.write_text(config.read_text().replace(
        '["terway_exporter.hub", "terway_exporter.model"]', '["terway_exporter.model", "terway_exporter.hub"]'))
    broken = run("lint-imports", "--no-cache", "--config", str(reversed_config))
    assert broken.returncode != 0 and (
        "terway_exporter.hub is not allowed to import terway_exporter.model" in broken.stdout)
