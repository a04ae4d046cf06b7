"""Digests test helpers: a running service on real NATS, event factories, projection waits."""

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from services.digests.main import create_app
from shared.auth import TokenIssuer
from shared.events.bus import Bus
from shared.events.consumer import ProcessedEvent
from shared.events.envelope import CloudEvent, EventData, subject_for, wrap
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory, wait_for


@pytest.fixture
def client(
    service_client: ServiceClientFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    # Tests send digests themselves; a schedule would send the latest window on its own.
    monkeypatch.setenv("KNOWFLOW_DIGEST_SCHEDULE_ENABLED", "false")
    with service_client(create_app, name="digests") as running:
        yield running


def processed_count(client: TestClient) -> int:
    """How many events the digests consumers have committed."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        query = select(func.count()).where(col(ProcessedEvent.consumer).startswith("digests-"))
        return int(session.exec(query).one())


@pytest.fixture
def publish(client: TestClient, publish_events: Callable[..., None]) -> Callable[..., None]:
    """Publish events and wait until every one of them has been projected."""
    published = 0

    def run(*datas: EventData) -> None:
        nonlocal published
        publish_events(*datas)
        published += len(datas)
        wait_for(lambda: processed_count(client) >= published)

    return run


@pytest.fixture
def publish_at(client: TestClient, nats_url: str) -> Callable[..., None]:
    """Publish events with chosen envelope times (to reorder them), and wait for projection."""

    async def send(envelopes: list[CloudEvent]) -> None:
        bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-reorder")
        try:
            for envelope in envelopes:
                await bus.js.publish(
                    subject_for(envelope.type, envelope.audience),
                    envelope.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(envelope.id)},
                )
        finally:
            await bus.close()

    def run(*timed: tuple[EventData, datetime]) -> None:
        before = processed_count(client)
        envelopes = []
        for data, at in timed:
            envelope = wrap(data, source="/knowflow/tests")
            envelopes.append(envelope.model_copy(update={"time": at}))
        asyncio.run(send(envelopes))
        wait_for(lambda: processed_count(client) >= before + len(envelopes))

    return run


@pytest.fixture
def admin_header(token_issuer: TokenIssuer) -> dict[str, str]:
    token = token_issuer.issue(user_id=new_id(), handle="root", is_admin=True)
    return {"Authorization": f"Bearer {token}"}
