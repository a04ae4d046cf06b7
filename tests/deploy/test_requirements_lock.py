"""requirements.lock: hashed, fully pinned, and in step with pyproject.toml."""

import re
import tomllib

from tests.deploy.conftest import LOCK_FILE, REPO

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes), from the lock's requirement blocks."""
    pins: dict[str, tuple[str, int]] = {}
    blocks = re.split(r"\n(?=\S)", LOCK_FILE.read_text())
    for block in blocks:
        if block.startswith("#") or not block.strip():
            continue
        match = REQUIREMENT.match(block)
        assert match, f"not an exact pin: {block.splitlines()[0]}"
        pins[canonical(match.group(1))] = (match.group(3), block.count("--hash=sha256:"))
    return pins


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    pins = locked()
    assert pins
    assert {name for name, (_version, hashes) in pins.items() if hashes == 0} == set()


def test_lock_pins_every_runtime_dependency_at_the_pyproject_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = locked()
    mismatched = {}
    for dependency in project["dependencies"]:
        match = REQUIREMENT.match(dependency)
        assert match, f"pyproject dependency not pinned with ==: {dependency}"
        name, version = canonical(match.group(1)), match.group(3)
        if pins.get(name, ("missing", 0))[0] != version:
            mismatched[name] = (version, pins.get(name, ("missing", 0))[0])
    assert mismatched == {}, "regenerate requirements.lock (command in its header)"


def test_dev_tools_stay_out_of_the_image_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dev = {
        canonical(re.split(r"[\[=<>~! ]", d, maxsplit=1)[0])
        for d in project["optional-dependencies"]["dev"]
    }
    assert dev & set(locked()) == set()
