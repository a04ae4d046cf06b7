"""Idempotency-Key on identity: anonymous callers are told apart by address; logins are not kept."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from services.identity.models import User
from services.identity.tests.test_routes import identity_app
from shared.idempotency import IdempotencyRecord
from shared.testing.fixtures import ServiceClientFactory

ACCOUNT = {
    "handle": "ada",
    "email": "ada@example.org",
    "password": "correct horse",
    "display_name": "Ada",
}


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def rows(client: TestClient, model: type) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_retried_registration_replays_the_account_instead_of_a_409(client: TestClient) -> None:
    headers = {"Idempotency-Key": "signup-1", "X-Forwarded-For": "198.51.100.7"}
    first = client.post("/auth/register", json=ACCOUNT, headers=headers)
    again = client.post("/auth/register", json=ACCOUNT, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["user"]["id"] == first.json()["user"]["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert rows(client, User) == 1


def test_another_anonymous_client_with_the_same_key_is_not_replayed(client: TestClient) -> None:
    client.post(
        "/auth/register",
        json=ACCOUNT,
        headers={"Idempotency-Key": "k", "X-Forwarded-For": "198.51.100.7"},
    )
    other = client.post(
        "/auth/register",
        json=ACCOUNT,
        headers={"Idempotency-Key": "k", "X-Forwarded-For": "203.0.113.9"},
    )
    assert other.status_code == 409  # processed afresh: the handle is taken
    assert "idempotent-replayed" not in other.headers


def test_a_login_answer_is_never_stored(client: TestClient) -> None:
    client.post("/auth/register", json=ACCOUNT)
    login = {"login": "ada", "password": "correct horse"}
    headers = {"Idempotency-Key": "login-1"}
    first = client.post("/auth/login", json=login, headers=headers)
    again = client.post("/auth/login", json=login, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert rows(client, IdempotencyRecord) == 0
