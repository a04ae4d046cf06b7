"""The folder layout is the architecture: services meet only through HTTP and events."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run_lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_import_contracts_hold_for_the_code_base() -> None:
    result = run_lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_catch_a_service_importing_another(tmp_path: Path) -> None:
    """The same contracts, on a tree where posts imports identity, must fail."""
    for package in (
        "shared",
        "gateway",
        "services",
        *(
            f"services/{name}"
            for name in ("identity", "posts", "search", "digests", "notifications", "web")
        ),
    ):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    # Every module of ours a contract names must exist, or lint-imports refuses the config.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for contract in contracts["contracts"]:
        for module in contract.get("forbidden_modules", []):
            if module.startswith("shared."):
                (tmp_path / f"{module.replace('.', '/')}.py").write_text("")
    (tmp_path / "services/identity/models.py").write_text("USER = 1\n")
    (tmp_path / "services/posts/service.py").write_text(
        textwrap.dedent("from services.identity.models import USER\n")
    )
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    result = run_lint_imports(tmp_path, config)
    assert result.returncode != 0
    assert "services.posts.service -> services.identity.models" in result.stdout


@pytest.mark.parametrize("service", ["posts", "identity", "digests", "notifications", "search"])
def test_a_service_on_embedded_defaults_does_not_load_the_opensearch_client(service: str) -> None:
    # The client and its dependencies cost a process ~20 MB; only the search service with
    # KNOWFLOW_SEARCH_URL set talks to OpenSearch (issue 13's memory goal).
    probe = f"import sys, services.{service}.main; print('opensearchpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
