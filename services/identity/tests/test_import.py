"""Admins import accounts from elsewhere: original time, no password, idempotent by source."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.schemas import UserImport
from services.identity.service import do_import_user
from services.identity.tests.test_routes import (
    bearer,
    identity_app,
    outbox_types,
    register,
    register_admin,
)
from shared.auth import Principal
from shared.events.outbox import OutboxMessage
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory

SOURCE = "https://cardano.stackexchange.com/users/42"


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def imported(**changes: Any) -> dict[str, Any]:
    return {
        "handle": "satoshi_42",
        "display_name": "Satoshi",
        "created_at": "2021-04-28T10:11:12Z",
        "source": SOURCE,
        **changes,
    }


def test_admin_imports_an_account_with_its_original_time_and_a_registration_event(
    client: TestClient,
) -> None:
    admin = register_admin(client, "ada")
    response = client.post("/users", json=imported(), headers=bearer(admin))
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["handle"] == "satoshi_42" and user["display_name"] == "Satoshi"
    assert user["created_at"].startswith("2021-04-28T10:11:12")
    read = client.get(f"/users/{user['id']}", headers=bearer(admin))
    assert read.status_code == 200 and read.json()["created_at"].startswith("2021-04-28T10:11:12")
    assert outbox_types(client).count("knowflow.user.registered.v1") == 2


def test_a_second_import_from_the_same_source_answers_200_with_the_same_account(
    client: TestClient,
) -> None:
    admin = register_admin(client, "ada")
    first = client.post("/users", json=imported(), headers=bearer(admin))
    again = client.post("/users", json=imported(display_name="Changed"), headers=bearer(admin))
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json() == first.json()
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        events = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    registered = [event for event in events if event.subject.endswith(".user.registered.v1")]
    assert len(registered) == 2  # ada's registration and one import
    # An imported account has no real address: only ada's registration tells the notifier one.
    assert [event.subject for event in events if "contact_updated" in event.subject] == [
        "events.restricted.user.contact_updated.v1"
    ]


def test_only_an_admin_imports_accounts(client: TestClient) -> None:
    register_admin(client, "ada")
    grace = register(client, "grace")
    response = client.post("/users", json=imported(), headers=bearer(grace))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert client.post("/users", json=imported()).status_code == 401


def test_an_imported_account_cannot_sign_in(client: TestClient) -> None:
    admin = register_admin(client, "ada")
    client.post("/users", json=imported(), headers=bearer(admin))
    for password in ("", "whatever1"):
        response = client.post("/auth/login", json={"login": "satoshi_42", "password": password})
        assert response.status_code in (401, 422)
    assert (
        client.post("/auth/login", json={"login": "satoshi_42", "password": "x"}).status_code == 401
    )


def test_importing_onto_a_taken_handle_is_409(client: TestClient) -> None:
    admin = register_admin(client, "ada")
    response = client.post("/users", json=imported(handle="ada"), headers=bearer(admin))
    assert response.status_code == 409


@pytest.mark.parametrize(
    "changes",
    [
        {"handle": "Not A Handle"},
        {"created_at": "2021-04-28T10:11:12"},  # no zone
        {"source": ""},
        {"source": "x" * 201},
        {"password": "secret-secret"},
        {"is_admin": True},
    ],
)
def test_bad_imports_are_422(client: TestClient, changes: dict[str, Any]) -> None:
    admin = register_admin(client, "ada")
    response = client.post("/users", json=imported(**changes), headers=bearer(admin))
    assert response.status_code == 422, response.text


def test_under_make_run_the_first_person_to_register_after_an_import_is_still_the_admin(
    service_client: ServiceClientFactory,
) -> None:
    # An import may run (with an ops token) before anybody has registered.
    with service_client(identity_app, name="identity", first_user_is_admin=True) as local:
        with Session(local.app.state.engine) as session:  # type: ignore[attr-defined]
            do_import_user(
                session=session,
                principal=Principal(user_id=new_id(), handle="knowflow-admin", is_admin=True),
                request=UserImport.model_validate(imported()),
            )
            session.commit()
        first = register(local, "ada")
        assert first["user"]["is_admin"] is True


def test_the_users_path_advertises_its_own_methods_only(client: TestClient) -> None:
    # At /users/import, GET /users/{user_id} matched too and OPTIONS advertised GET. Now
    # /users is the directory (GET) and the import (POST), and nothing else.
    response = client.options("/users")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
