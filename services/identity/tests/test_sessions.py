"""Sessions: rotating refresh tokens, reuse ending a session, logout, password change and
reset; each revocation an `AccessRevoked` naming the session, each step in the audit log."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.accounts import deactivate
from services.identity.audit import AuditEntry, verify_chain
from services.identity.models import PasswordReset, RefreshToken, User
from services.identity.sessions import token_hash
from services.identity.tests.test_routes import bearer, identity_app, register
from shared.auth import TokenVerifier
from shared.events.outbox import OutboxMessage
from shared.ids import utcnow
from shared.testing.fixtures import ServiceClientFactory, wait_for

PASSWORD = "correct horse"


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def engine_of(client: TestClient) -> Any:
    return client.app.state.engine  # type: ignore[attr-defined]


def events(client: TestClient, event_type: str) -> list[dict[str, Any]]:
    """The data of every outbox event of one type, oldest first."""
    with Session(engine_of(client)) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    found = []
    for row in rows:
        envelope = json.loads(row.payload)
        if envelope["type"] == event_type:
            found.append(envelope["data"])
    return found


def revocations(client: TestClient) -> list[tuple[str | None, str]]:
    return [
        (data.get("session_id"), data["reason"])
        for data in events(client, "knowflow.auth.access_revoked.v1")
    ]


def audit_actions(client: TestClient) -> list[str]:
    with Session(engine_of(client)) as session:
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence))).all()
        assert verify_chain(session)[1] is None
    return [entry.action for entry in entries]


def login(client: TestClient, handle: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", json={"login": handle, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/auth/refresh", json={"refresh_token": token})


def session_claim(client: TestClient, access_token: str) -> str:
    jwks = client.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier(issuer="knowflow-identity", audience="knowflow", jwks=jwks)
    return str(verifier.verify(access_token).session_id)


def test_sign_in_returns_a_refresh_token_and_an_access_token_naming_the_session(
    client: TestClient,
) -> None:
    ada = register(client, "ada")
    assert ada["refresh_token"] and ada["refresh_expires_in"] == 14 * 86400
    assert session_claim(client, ada["access_token"]) == ada["session_id"]
    again = login(client, "ada")
    assert again["session_id"] != ada["session_id"]
    assert session_claim(client, again["access_token"]) == again["session_id"]
    # Only the hash is stored.
    with Session(engine_of(client)) as session:
        stored = {row.token_hash for row in session.exec(select(RefreshToken)).all()}
    assert ada["refresh_token"] not in stored and len(stored) == 2
    assert audit_actions(client).count("auth.signed_in") == 2


def test_refresh_rotates_the_token_within_the_same_session(client: TestClient) -> None:
    ada = register(client, "ada")
    first = refresh(client, ada["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["session_id"] == ada["session_id"]
    assert rotated["refresh_token"] != ada["refresh_token"]
    assert session_claim(client, rotated["access_token"]) == ada["session_id"]
    assert client.get("/users/me", headers=bearer(rotated)).status_code == 200
    second = refresh(client, rotated["refresh_token"])
    assert second.status_code == 200, second.text
    assert refresh(client, "not-a-token").status_code == 401


def test_reusing_a_spent_refresh_token_ends_the_whole_session(client: TestClient) -> None:
    ada = register(client, "ada")
    other = login(client, "ada")
    rotated = refresh(client, ada["refresh_token"]).json()
    # The stolen copy of the first token comes back: the session ends for both holders.
    reused = refresh(client, ada["refresh_token"])
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"
    assert "already used" in reused.json()["detail"]
    assert refresh(client, rotated["refresh_token"]).status_code == 401
    assert revocations(client) == [(ada["session_id"], "refresh_reuse")]
    assert "auth.refresh_reused" in audit_actions(client)
    # Another session of the same person is untouched.
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_an_expired_refresh_token_is_refused(client: TestClient) -> None:
    ada = register(client, "ada")
    with Session(engine_of(client)) as session:
        for row in session.exec(select(RefreshToken)).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
        session.commit()
    response = refresh(client, ada["refresh_token"])
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_deactivated_person_cannot_refresh(client: TestClient) -> None:
    ada = register(client, "ada")
    with Session(engine_of(client)) as session:
        user = session.exec(select(User).where(User.handle == "ada")).one()
        deactivate(session, user, actor_id=None, actor_kind="system")
        session.commit()
    assert refresh(client, ada["refresh_token"]).status_code == 401


def test_logout_ends_the_session_and_revokes_its_tokens(client: TestClient) -> None:
    ada = register(client, "ada")
    other = login(client, "ada")
    response = client.post("/auth/logout", headers=bearer(ada))
    assert response.status_code == 204, response.text
    assert revocations(client) == [(ada["session_id"], "logout")]
    assert refresh(client, ada["refresh_token"]).status_code == 401
    assert refresh(client, other["refresh_token"]).status_code == 200
    # The revocation reaches this service's verifier over the bus: the token is refused,
    # so logging out again ends nothing more and emits no second event.
    wait_for(lambda: client.get("/users/me", headers=bearer(ada)).status_code == 401, timeout=5)
    assert client.post("/auth/logout", headers=bearer(ada)).status_code == 401
    assert client.get("/users/me", headers=bearer(other)).status_code == 200
    assert len(revocations(client)) == 1
    assert audit_actions(client).count("auth.logged_out") == 1
    assert client.post("/auth/logout").status_code == 401


def test_password_change_ends_the_other_sessions_and_keeps_this_one(client: TestClient) -> None:
    ada = register(client, "ada")
    laptop, phone = login(client, "ada"), login(client, "ada")
    change = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    response = client.post("/auth/password", json=change, headers=bearer(ada))
    assert response.status_code == 204, response.text
    assert sorted(revocations(client)) == sorted(
        [(laptop["session_id"], "password_changed"), (phone["session_id"], "password_changed")]
    )
    assert refresh(client, laptop["refresh_token"]).status_code == 401
    assert refresh(client, phone["refresh_token"]).status_code == 401
    assert refresh(client, ada["refresh_token"]).status_code == 200
    login(client, "ada", "a brand new secret")
    wrong = client.post("/auth/login", json={"login": "ada", "password": PASSWORD})
    assert wrong.status_code == 401
    assert "auth.password_changed" in audit_actions(client)


def test_password_change_needs_the_current_password_and_a_good_new_one(
    client: TestClient,
) -> None:
    ada = register(client, "ada")
    wrong = client.post(
        "/auth/password",
        json={"current_password": "not it at all", "new_password": "a brand new secret"},
        headers=bearer(ada),
    )
    assert wrong.status_code == 403
    common = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=bearer(ada),
    )
    assert common.status_code == 422
    assert "common" in common.json()["detail"]
    assert common.json()["errors"][0]["loc"] == ["body", "new_password"]
    assert client.post("/auth/password", json={}, headers=bearer(ada)).status_code == 422
    assert revocations(client) == []
    login(client, "ada")


def test_failed_sign_ins_are_audited_with_the_account_or_a_hash_of_the_name_tried(
    client: TestClient,
) -> None:
    register(client, "ada")
    assert client.post("/auth/login", json={"login": "ada", "password": "nope"}).status_code == 401
    unknown = client.post("/auth/login", json={"login": "ghost", "password": "nope"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"] == "Bearer"
    with Session(engine_of(client)) as session:
        failed = session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "auth.sign_in_failed")
            .order_by(col(AuditEntry.sequence))
        ).all()
        ada = session.exec(select(User).where(User.handle == "ada")).one()
    # An unknown name may be a mistyped password: only a short hash of it is kept.
    assert [entry.target for entry in failed] == [
        f"user:{ada.id}",
        f"login:{token_hash('ghost')[:16]}",
    ]
    assert all(entry.actor_id is None for entry in failed)


# --- password reset by e-mail ---------------------------------------------------------------


def request_reset(client: TestClient, email: str) -> None:
    response = client.post("/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text


def reset_tokens(client: TestClient) -> list[str]:
    return [data["token"] for data in events(client, "knowflow.auth.password_reset_requested.v1")]


def test_a_reset_request_never_reveals_whether_the_account_exists(client: TestClient) -> None:
    register(client, "ada")
    request_reset(client, "nobody@example.org")
    assert reset_tokens(client) == []
    request_reset(client, "ADA@example.org")
    [data] = events(client, "knowflow.auth.password_reset_requested.v1")
    assert data["email"] == "ada@example.org" and data["token"]
    with Session(engine_of(client)) as session:
        stored = session.exec(select(PasswordReset)).one()
    assert stored.token_hash != data["token"]  # only the hash is kept
    subjects = []
    with Session(engine_of(client)) as session:
        for row in session.exec(select(OutboxMessage)).all():
            subjects.append(row.subject)
    assert "events.restricted.auth.password_reset_requested.v1" in subjects


def test_a_reset_link_sets_the_password_once_and_ends_every_session(client: TestClient) -> None:
    ada = register(client, "ada")
    phone = login(client, "ada")
    request_reset(client, "ada@example.org")
    [token] = reset_tokens(client)
    body = {"token": token, "new_password": "a brand new secret"}
    response = client.post("/auth/password-reset/confirm", json=body)
    assert response.status_code == 204, response.text
    assert sorted(revocations(client)) == sorted(
        [(ada["session_id"], "password_reset"), (phone["session_id"], "password_reset")]
    )
    assert refresh(client, ada["refresh_token"]).status_code == 401
    assert refresh(client, phone["refresh_token"]).status_code == 401
    login(client, "ada", "a brand new secret")
    again = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert again.status_code == 400
    login(client, "ada", "a brand new secret")
    actions = audit_actions(client)
    assert "auth.password_reset_requested" in actions and "auth.password_reset" in actions


def test_an_expired_or_unknown_reset_link_is_refused(client: TestClient) -> None:
    register(client, "ada")
    request_reset(client, "ada@example.org")
    [token] = reset_tokens(client)
    with Session(engine_of(client)) as session:
        stored = session.exec(select(PasswordReset)).one()
        stored.expires_at = utcnow() - timedelta(seconds=1)
        session.add(stored)
        session.commit()
    body = {"token": token, "new_password": "a brand new secret"}
    assert client.post("/auth/password-reset/confirm", json=body).status_code == 400
    body["token"] = "made-up"
    assert client.post("/auth/password-reset/confirm", json=body).status_code == 400
    login(client, "ada")


def test_a_reset_to_a_refused_password_keeps_the_link(client: TestClient) -> None:
    register(client, "ada")
    request_reset(client, "ada@example.org")
    [token] = reset_tokens(client)
    weak = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "my-ada-password"}
    )
    assert weak.status_code == 422 and "handle" in weak.json()["detail"]
    good = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "a brand new secret"}
    )
    assert good.status_code == 204


def test_one_refresh_token_sent_twice_at_once_never_yields_two_sessions_of_tokens(
    client: TestClient,
) -> None:
    """Two refreshes racing with one token: at most one succeeds (the row lock on PostgreSQL,
    the single writer on SQLite); the other is refused or told to retry, never a 5xx."""
    ada = register(client, "ada")
    barrier = threading.Barrier(4)

    def race(_: int) -> int:
        barrier.wait()
        return int(refresh(client, ada["refresh_token"]).status_code)

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(race, range(4)))
    assert statuses.count(200) <= 1, statuses
    assert all(status in (200, 401, 409, 503) for status in statuses), statuses
    with Session(engine_of(client)) as session:
        unspent = session.exec(select(RefreshToken).where(col(RefreshToken.spent_at).is_(None)))
        assert len(unspent.all()) <= 1
