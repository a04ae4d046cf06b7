"""Admins deactivate and reactivate people: sign-in refused, tokens revoked, content kept."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.audit import AuditEntry, verify_chain
from services.identity.tests.test_routes import bearer, identity_app, outbox_types, register
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory

PASSWORD = "correct horse"


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    # The first account is the admin, as under `make run`: these tests are not about that rule.
    with service_client(identity_app, name="identity", first_user_is_admin=True) as test_client:
        yield test_client


def login(client: TestClient, handle: str, password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"login": handle, "password": password})


def refused_within(client: TestClient, headers: dict[str, str], seconds: float) -> float:
    started = time.monotonic()
    while client.get("/users/me", headers=headers).status_code != 401:
        assert time.monotonic() - started < seconds, f"token still accepted after {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def audit_actions(client: TestClient) -> list[tuple[str, str, str | None]]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).all()
        assert verify_chain(session)[1] is None
        return [(entry.action, entry.target, str(entry.actor_id)) for entry in entries]


def test_a_deactivated_person_cannot_sign_in_their_tokens_are_refused_and_they_show_as_former(
    client: TestClient,
) -> None:
    admin, dana = register(client, "root"), register(client, "dana")
    dana_id = dana["user"]["id"]
    answer = client.post(f"/users/{dana_id}/deactivate", headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is False
    refused_within(client, bearer(dana), 5.0)
    # The account check refuses at once; the revocation reaches the verifier over the bus
    # within seconds (asserting it on the very next request raced the event).
    started = time.monotonic()
    while (refusal := client.get("/users/me", headers=bearer(dana))).json()["detail"] != (
        "token revoked"
    ):
        assert refusal.status_code == 401, refusal.text
        assert time.monotonic() - started < 5.0, "the token was not revoked within 5 s"
        time.sleep(0.02)
    # Told only with the right password: a guesser learns nothing about the account.
    assert login(client, "dana").status_code == 403
    assert login(client, "dana", "wrong password").status_code == 401
    profile = client.get(f"/users/{dana_id}", headers=bearer(admin))
    assert profile.status_code == 200 and profile.json()["active"] is False
    assert outbox_types(client).count("knowflow.user.deactivated.v1") == 1
    assert outbox_types(client).count("knowflow.auth.access_revoked.v1") == 1
    admin_id = admin["user"]["id"]
    assert ("user.deactivated", f"user:{dana_id}", admin_id) in audit_actions(client)

    again = client.post(f"/users/{dana_id}/deactivate", headers=bearer(admin))
    assert again.status_code == 200 and again.json()["active"] is False
    assert outbox_types(client).count("knowflow.auth.access_revoked.v1") == 1  # no change


def test_reactivation_restores_sign_in_but_tokens_from_before_stay_refused(
    client: TestClient,
) -> None:
    admin, dana = register(client, "root"), register(client, "dana")
    dana_id = dana["user"]["id"]
    assert client.post(f"/users/{dana_id}/deactivate", headers=bearer(admin)).status_code == 200
    refused_within(client, bearer(dana), 5.0)
    answer = client.post(f"/users/{dana_id}/reactivate", headers=bearer(admin))
    assert answer.status_code == 200 and answer.json()["active"] is True
    signed_in = login(client, "dana")
    assert signed_in.status_code == 200, signed_in.text
    assert client.get("/users/me", headers=bearer(signed_in.json())).status_code == 200
    assert client.get("/users/me", headers=bearer(dana)).status_code == 401
    again = client.post(f"/users/{dana_id}/reactivate", headers=bearer(admin))
    assert again.status_code == 200
    assert outbox_types(client).count("knowflow.user.reactivated.v1") == 1
    assert ("user.reactivated", f"user:{dana_id}", admin["user"]["id"]) in audit_actions(client)


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_only_an_admin_deactivates_or_reactivates_and_an_unknown_person_is_404(
    client: TestClient, action: str
) -> None:
    admin, dana, eve = register(client, "root"), register(client, "dana"), register(client, "eve")
    path = f"/users/{dana['user']['id']}/{action}"
    assert client.post(path, headers=bearer(eve)).status_code == 403
    assert client.post(path).status_code == 401
    assert client.post(path, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.post(f"/users/{new_id()}/{action}", headers=bearer(admin)).status_code == 404
    assert client.post(f"/users/{new_id()}/{action}", headers=bearer(eve)).status_code == 403
    assert client.get("/users/me", headers=bearer(dana)).json()["active"] is True


def test_an_admin_cannot_deactivate_themselves(client: TestClient) -> None:
    admin = register(client, "root")
    answer = client.post(f"/users/{admin['user']['id']}/deactivate", headers=bearer(admin))
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
