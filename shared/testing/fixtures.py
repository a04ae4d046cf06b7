"""Fixtures shared by every service's tests (registered as a pytest plugin in conftest.py)."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from shared.auth import TokenIssuer, TokenVerifier
from shared.ids import new_id
from shared.natsserver import free_port, start_nats_server
from shared.settings import Settings
from shared.web import ServiceSpec, create_service_app


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A real nats-server with JetStream, fresh for each test."""
    port = free_port()
    process = start_nats_server(tmp_path / "nats", port=port)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def token_issuer() -> TokenIssuer:
    return TokenIssuer(
        Ed25519PrivateKey.generate(), issuer="knowflow-identity", audience="knowflow", ttl_seconds=900
    )


@pytest.fixture
def auth_header(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    """`auth_header(user_id)` → an Authorization header with a real signed token."""

    def make(user_id: UUID | None = None, handle: str = "tester") -> dict[str, str]:
        token = token_issuer.issue(user_id=user_id or new_id(), handle=handle)
        return {"Authorization": f"Bearer {token}"}

    return make


ServiceClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def service_client(
    tmp_path: Path, nats_url: str, token_issuer: TokenIssuer
) -> ServiceClientFactory:
    """`with service_client(spec) as client:` runs a service against real NATS and SQLite."""

    @contextmanager
    def run(spec: ServiceSpec, **overrides: object) -> Iterator[TestClient]:
        settings = Settings(
            service_name=spec.name,
            database_url=f"sqlite:///{tmp_path / spec.name}.db",
            nats_url=nats_url,
            jwt_private_key_file=tmp_path / "jwt.pem",
            log_json=False,
            **overrides,  # type: ignore[arg-type]
        )
        verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=token_issuer.jwks()
        )
        app = create_service_app(spec, settings=settings, verifier=verifier)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return run
