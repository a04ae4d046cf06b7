"""Gateway tests that need a real service behind it (cross-service, so they live here)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.tests.conftest import serve
from services.identity.main import create_app as create_identity_app
from shared.settings import Settings


@pytest.fixture
def identity_url(tmp_path: Path, nats_url: str) -> Iterator[str]:
    """The real identity service on real NATS and SQLite, served over HTTP."""
    settings = Settings(
        service_name="identity",
        database_url=f"sqlite:///{tmp_path / 'identity.db'}",
        nats_url=nats_url,
        jwt_private_key_file=tmp_path / "jwt.pem",
        log_json=False,
    )
    with serve(create_identity_app(settings)) as url:
        yield url
