"""The built package (what the image installs): every file the services read, no tests."""

import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass

import pytest

from tests.deploy.conftest import REPO

SHIPPED = ("shared", "services", "gateway")


@dataclass
class Wheel:
    files: set[str]
    entry_points: str


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves a build/ directory, which a later build reuses.
    source = tmp_path_factory.mktemp("source")
    shutil.copy(REPO / "pyproject.toml", source)
    for package in (*SHIPPED, "deploy"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (path,) = out.glob("knowflow-*.whl")
    with zipfile.ZipFile(path) as archive:
        files = set(archive.namelist())
        (entry_points,) = [name for name in files if name.endswith(".dist-info/entry_points.txt")]
        return Wheel(files, archive.read(entry_points).decode())


def is_test_code(relative: str) -> bool:
    return "/tests/" in relative or relative.startswith("shared/testing/")


def test_the_wheel_ships_no_tests(wheel: Wheel) -> None:
    assert {name for name in wheel.files if is_test_code(name)} == set()


def test_the_wheel_ships_every_file_of_the_services_beside_their_code(wheel: Wheel) -> None:
    """Templates, migrations, static assets and mail texts as well as the modules."""
    sources = {
        path.relative_to(REPO).as_posix()
        for package in SHIPPED
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {name for name in sources if not is_test_code(name)} - wheel.files == set()


def test_the_wheel_installs_the_admin_cli(wheel: Wheel) -> None:
    assert "deploy/admin.py" in wheel.files
    assert "knowflow-admin = deploy.admin:main" in wheel.entry_points
