"""Paths and parsed files shared by the deployment checks."""

from pathlib import Path
from typing import Any

import pytest
import yaml  # no types-PyYAML in dev deps

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
LOCK_FILE = REPO / "requirements.lock"  # the image's runtime closure
DEV_LOCK_FILE = REPO / "requirements-dev.lock"  # what `make setup` installs


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it: anchors and `<<` merges resolved."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded
