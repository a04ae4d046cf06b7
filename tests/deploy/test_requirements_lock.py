"""The lock files: hashed, fully pinned, in step with pyproject.toml and with each other.

`requirements.lock` is what the image installs, `requirements-dev.lock` what `make setup`
installs (runtime and dev tools, for any platform); `make lock` writes both.
"""

import re
import tomllib
from pathlib import Path

from tests.deploy.conftest import DEV_LOCK_FILE, LOCK_FILE, REPO

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, set[tuple[str, int]]]:
    """name -> {(version, number of hashes)}: a universal lock may pin a package once per
    environment marker (a newer release for newer Pythons)."""
    pins: dict[str, set[tuple[str, int]]] = {}
    blocks = re.split(r"\n(?=\S)", path.read_text())
    for block in blocks:
        if block.startswith("#") or not block.strip():
            continue
        match = REQUIREMENT.match(block)
        assert match, f"not an exact pin: {block.splitlines()[0]}"
        pins.setdefault(canonical(match.group(1)), set()).add(
            (match.group(3), block.count("--hash=sha256:"))
        )
    return pins


def versions(path: Path) -> dict[str, set[str]]:
    return {name: {version for version, _ in pins} for name, pins in locked(path).items()}


def declared(group: str | None) -> dict[str, str]:
    """pyproject's dependencies (or an optional group): name -> the version pinned with ==."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = (
        project["dependencies"] if group is None else project["optional-dependencies"][group]
    )
    pinned = {}
    for dependency in dependencies:
        match = REQUIREMENT.match(dependency)
        assert match, f"pyproject dependency not pinned with ==: {dependency}"
        pinned[canonical(match.group(1))] = match.group(3)
    return pinned


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    for path in (LOCK_FILE, DEV_LOCK_FILE):
        pins = locked(path)
        assert pins, path
        unhashed = {name for name, entries in pins.items() for _, hashes in entries if not hashes}
        assert unhashed == set(), path


def test_locks_pin_every_declared_dependency_at_the_pyproject_version() -> None:
    wanted = [(LOCK_FILE, declared(None)), (DEV_LOCK_FILE, declared(None) | declared("dev"))]
    for path, dependencies in wanted:
        pins = versions(path)
        mismatched = {
            name: (version, pins.get(name))
            for name, version in dependencies.items()
            if pins.get(name) != {version}
        }
        assert mismatched == {}, f"{path.name}: run `make lock`"


def test_the_dev_lock_installs_what_the_image_runs() -> None:
    """Tests run on the versions the image ships (where the dev lock has one version)."""
    image, dev = versions(LOCK_FILE), versions(DEV_LOCK_FILE)
    differing = {
        name: (image_versions, dev.get(name))
        for name, image_versions in image.items()
        if dev.get(name) is None or (len(dev[name]) == 1 and dev[name] != image_versions)
    }
    assert differing == {}, "run `make lock`"


def test_dev_tools_stay_out_of_the_image_lock() -> None:
    assert set(declared("dev")) & set(locked(LOCK_FILE)) == set()
