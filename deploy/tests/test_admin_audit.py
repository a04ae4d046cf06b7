"""`knowflow-admin audit verify` against identity's real database (SQLite or PostgreSQL)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from deploy.admin import cli
from services.identity.audit import AuditEntry
from services.identity.tests.test_audit_chain import append
from services.identity.tests.test_routes import identity_app
from shared.testing.fixtures import ServiceClientFactory

runner = CliRunner()


@pytest.fixture
def engine(service_client: ServiceClientFactory) -> Iterator[Engine]:
    with service_client(identity_app, name="identity") as client:
        assert isinstance(client, TestClient)
        yield client.app.state.engine  # type: ignore[attr-defined]


def verify(engine: Engine) -> tuple[int, str]:
    url = engine.url.render_as_string(hide_password=False)
    result = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    return result.exit_code, result.output


def test_verify_passes_an_intact_chain_and_names_the_first_edited_entry(engine: Engine) -> None:
    append(engine, 4)
    code, output = verify(engine)
    assert code == 0, output
    assert "4 entries verified" in output
    with Session(engine) as session:
        second = session.exec(select(AuditEntry).where(AuditEntry.sequence == 2)).one()
        second.details = {"role": "admin"}
        session.add(second)
        session.commit()
    code, output = verify(engine)
    assert code == 1
    assert "broken at entry 2: entry altered" in output and "1 entries verified" in output


def test_verify_finds_an_entry_removed_from_the_end(engine: Engine) -> None:
    append(engine, 3)
    with Session(engine) as session:
        session.delete(session.exec(select(AuditEntry).where(AuditEntry.sequence == 3)).one())
        session.commit()
    code, output = verify(engine)
    assert code == 1 and "broken at entry 3" in output, output
