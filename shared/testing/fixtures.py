"""Fixtures shared by every service's tests (registered as a pytest plugin in conftest.py)."""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.auth import TokenIssuer, TokenVerifier
from shared.events.bus import Bus
from shared.events.envelope import EventData, subject_for, wrap
from shared.ids import new_id
from shared.natsserver import free_port, start_nats_server
from shared.settings import Settings
from shared.testing.backends import fresh_database


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
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=900,
    )


@pytest.fixture
def auth_header(token_issuer: TokenIssuer) -> Callable[..., dict[str, str]]:
    """`auth_header(user_id)` → an Authorization header with a real signed token."""

    def make(user_id: UUID | None = None, handle: str = "tester") -> dict[str, str]:
        token = token_issuer.issue(user_id=user_id or new_id(), handle=handle)
        return {"Authorization": f"Bearer {token}"}

    return make


ServiceClientFactory = Callable[..., AbstractContextManager[TestClient]]
AppFactory = Callable[[Settings, TokenVerifier], FastAPI]


@pytest.fixture
def service_client(
    tmp_path: Path, nats_url: str, token_issuer: TokenIssuer
) -> ServiceClientFactory:
    """`with service_client(create_app) as client:` runs a service on real NATS and a fresh DB.

    Tokens from the `token_issuer` fixture verify in it (its JWKS is installed directly).
    """

    @contextmanager
    def run(
        create_app: AppFactory, name: str = "service", **overrides: object
    ) -> Iterator[TestClient]:
        with fresh_database(tmp_path, name) as database_url:
            settings = Settings(
                service_name=name,
                database_url=database_url,
                nats_url=nats_url,
                jwt_private_key_file=tmp_path / "jwt.pem",
                log_json=False,
                **overrides,  # type: ignore[arg-type]
            )
            verifier = TokenVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=token_issuer.jwks()
            )
            app = create_app(settings, verifier)
            with TestClient(app, raise_server_exceptions=False) as client:
                yield client

    return run


@pytest.fixture
def publish_events(nats_url: str) -> Callable[..., None]:
    """`publish_events(*event_data)` publishes CloudEvents on the real bus, as a service would."""

    async def publish(datas: tuple[EventData, ...]) -> None:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-publisher")
        try:
            for data in datas:
                envelope = wrap(data, source="/knowflow/tests")
                await bus.js.publish(
                    subject_for(envelope.type, envelope.audience),
                    envelope.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(envelope.id)},
                )
        finally:
            await bus.close()

    def run(*datas: EventData) -> None:
        asyncio.run(publish(datas))

    return run


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy (eventual consistency over the bus); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
