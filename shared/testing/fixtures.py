"""Fixtures shared by every service's tests (registered as a pytest plugin in conftest.py)."""

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from shared.auth import TokenIssuer, TokenVerifier
from shared.db import make_engine
from shared.events.bus import Bus
from shared.events.envelope import EventData, subject_for, wrap
from shared.ids import new_id
from shared.natsserver import free_port, start_nats_server
from shared.settings import Settings
from shared.testing.backends import fresh_database
from shared.web import ServiceSpec


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


class MigratedTemplates:
    """Each service's SQLite schema migrated to head once per session, copied into new databases.

    Running a service's whole Alembic history took most of a service test's set-up. A copy
    of a database the same history brought to head is the same database; the service still
    runs its migrations at start (they find it at head), and `tests/test_migrations.py`
    checks the history itself. PostgreSQL schemas are migrated as before.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def seed(self, spec: ServiceSpec, database_url: str) -> None:
        """Give a new SQLite database the service's schema at head (an existing one is kept:
        a test that restarts a service finds its data)."""
        url = make_url(database_url)
        if spec.migrations is None or url.get_backend_name() != "sqlite" or not url.database:
            return
        target = Path(url.database)
        if target.exists():
            return
        template = self.directory / f"{spec.name}.db"
        if not template.exists():
            engine = make_engine(f"sqlite:///{template}")
            try:
                spec.prepare_database(engine)
            finally:
                engine.dispose()
        with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> MigratedTemplates:
    return MigratedTemplates(tmp_path_factory.mktemp("migrated"))


@pytest.fixture
def service_client(
    tmp_path: Path,
    nats_url: str,
    token_issuer: TokenIssuer,
    migrated_templates: MigratedTemplates,
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
            spec: ServiceSpec | None = getattr(app.state, "spec", None)
            if spec is not None:
                migrated_templates.seed(spec, database_url)
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


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`wait_for` across a whole platform of processes: longer, and polled less often."""
    return wait_for(check, timeout=timeout, interval=0.3)


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
