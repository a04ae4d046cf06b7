"""Notifications test helpers: the service on real NATS, event factories, projection waits."""

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from services.notifications.main import create_app
from shared.events.consumer import ProcessedEvent
from shared.events.envelope import EventData
from shared.testing.fixtures import ServiceClientFactory, wait_for


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(create_app, name="notifications") as running:
        yield running


# The inbox's consumers; the webhook consumer sees every event too, so it is not counted.
INBOX_CONSUMERS = ("notifications-inbox", "notifications-digests")


def processed_count(client: TestClient) -> int:
    """How many events the inbox's consumers have committed."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        query = select(func.count()).where(col(ProcessedEvent.consumer).in_(INBOX_CONSUMERS))
        return int(session.exec(query).one())


@pytest.fixture
def publish(client: TestClient, publish_events: Callable[..., None]) -> Callable[..., None]:
    """Publish events and wait until every one of them has been handled."""
    published = 0

    def run(*datas: EventData) -> None:
        nonlocal published
        publish_events(*datas)
        published += len(datas)
        wait_for(lambda: processed_count(client) >= published)

    return run
