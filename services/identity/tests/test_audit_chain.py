"""The audit chain verifies, and an edited, removed or reordered entry is found."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from services.identity.audit import AuditEntry, Origin, record_audit, verify_chain
from services.identity.tests.test_routes import identity_app
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory


@pytest.fixture
def engine(service_client: ServiceClientFactory) -> Iterator[Engine]:
    with service_client(identity_app, name="identity") as client:
        assert isinstance(client, TestClient)
        yield client.app.state.engine  # type: ignore[attr-defined]


def append(engine: Engine, count: int) -> None:
    for number in range(count):
        with Session(engine) as session:
            record_audit(
                session,
                action="user.signed_in",
                target=f"user:{number}",
                actor_id=new_id(),
                origin=Origin(ip="10.0.0.1", request_id=f"req-{number}"),
            )
            session.commit()


def test_a_clean_chain_verifies_and_each_entry_is_exported(engine: Engine) -> None:
    append(engine, 5)
    with Session(engine) as session:
        assert verify_chain(session) == (5, None)
        exported = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.subject).contains("audit.recorded"))
        ).all()
        assert len(exported) == 5


def test_an_edited_entry_breaks_the_chain_where_it_was_edited(engine: Engine) -> None:
    append(engine, 5)
    with Session(engine) as session:
        third = session.exec(select(AuditEntry).where(AuditEntry.sequence == 3)).one()
        third.target = "user:someone-else"
        session.add(third)
        session.commit()
        checked, broken = verify_chain(session)
    assert checked == 2
    assert broken is not None and broken.sequence == 3 and broken.reason == "entry altered"


def test_a_removed_entry_breaks_the_chain(engine: Engine) -> None:
    append(engine, 4)
    with Session(engine) as session:
        session.execute(delete(AuditEntry).where(col(AuditEntry.sequence) == 2))
        session.commit()
        checked, broken = verify_chain(session)
    assert (checked, broken.sequence if broken else None) == (1, 2)


def test_a_removed_last_entry_is_found_by_the_head(engine: Engine) -> None:
    append(engine, 3)
    with Session(engine) as session:
        session.execute(delete(AuditEntry).where(col(AuditEntry.sequence) == 3))
        session.commit()
        checked, broken = verify_chain(session)
    assert checked == 2 and broken is not None and broken.sequence == 3
