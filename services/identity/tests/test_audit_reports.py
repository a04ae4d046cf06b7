"""Other services' security-relevant actions reach identity's audit log over the bus."""

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.audit import AuditEntry, verify_chain
from services.identity.tests.test_routes import identity_app
from shared.events.contracts import AuditReported
from shared.ids import new_id, utcnow
from shared.testing.fixtures import ServiceClientFactory, wait_for


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def entries(client: TestClient) -> list[AuditEntry]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).all())


def test_a_reported_action_is_chained_with_who_what_where_and_the_reporting_service(
    client: TestClient, publish_events: Callable[..., None]
) -> None:
    moderator, post_id, at = new_id(), new_id(), utcnow()
    publish_events(
        AuditReported(
            actor_id=moderator,
            action="content.hidden",
            target=f"post:{post_id}",
            at=at,
            ip="203.0.113.7",
            request_id="req-1",
            details={"kind": "post"},
        )
    )
    wait_for(lambda: entries(client))
    [entry] = entries(client)
    assert (entry.actor_id, entry.action, entry.target) == (
        moderator,
        "content.hidden",
        f"post:{post_id}",
    )
    assert (entry.ip, entry.request_id, entry.details) == ("203.0.113.7", "req-1", {"kind": "post"})
    assert entry.service == "tests"  # the publisher's source, /knowflow/tests
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert verify_chain(session) == (1, None)
