"""Identity over HTTP: accounts, tokens, profiles, groups, follows and their events."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.main import create_app
from services.identity.models import User
from shared.auth import TokenVerifier
from shared.events.outbox import OutboxMessage
from shared.settings import Settings
from shared.testing.fixtures import ServiceClientFactory


def identity_app(settings: Settings, _verifier: TokenVerifier) -> Any:
    # Identity verifies with its own key, so the test issuer's key is not installed.
    return create_app(settings)


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def register(client: TestClient, handle: str, password: str = "correct horse") -> dict[str, Any]:
    response = client.post(
        "/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": password,
            "display_name": handle.title(),
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def register_admin(client: TestClient, handle: str) -> dict[str, Any]:
    """An admin as a deployment makes one: registered, promoted (what `knowflow-admin
    create-admin` does to an existing account), signed in again for a token with the role."""
    register(client, handle)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User).where(User.handle == handle)).one()
        user.role = "admin"
        session.add(user)
        session.commit()
    response = client.post("/auth/login", json={"login": handle, "password": "correct horse"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['access_token']}"}


def outbox_types(client: TestClient) -> list[str]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
        return [json.loads(row.payload)["type"] for row in rows]


def test_register_returns_a_token_that_reads_me_and_nobody_is_admin_by_registering_first(
    client: TestClient,
) -> None:
    ada = register(client, "ada")
    grace = register(client, "grace")
    me = client.get("/users/me", headers=bearer(ada)).json()
    assert me["handle"] == "ada" and me["is_admin"] is False and me["role"] == "member"
    assert client.get("/users/me", headers=bearer(grace)).json()["is_admin"] is False
    assert "knowflow.user.registered.v1" in outbox_types(client)


def test_with_first_user_is_admin_as_make_run_sets_it_the_first_account_is_admin(
    service_client: ServiceClientFactory,
) -> None:
    with service_client(identity_app, name="identity", first_user_is_admin=True) as local:
        ada, grace = register(local, "ada"), register(local, "grace")
        assert ada["user"]["is_admin"] is True and ada["user"]["role"] == "admin"
        assert grace["user"]["is_admin"] is False


def test_token_verifies_against_published_jwks(client: TestClient) -> None:
    ada = register(client, "ada")
    jwks = client.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier(issuer="knowflow-identity", audience="knowflow", jwks=jwks)
    assert verifier.verify(ada["access_token"]).handle == "ada"
    assert jwks["keys"][0]["alg"] == "EdDSA" and "d" not in jwks["keys"][0]


def test_password_is_stored_as_argon2id_hash(client: TestClient) -> None:
    register(client, "ada", password="s3cret-passphrase")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = session.exec(select(User)).one()
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret" not in user.password_hash


def test_login_by_handle_or_email_and_wrong_password_is_401(client: TestClient) -> None:
    register(client, "ada", password="correct horse")
    for login in ("ada", "ADA@example.org"):
        response = client.post("/auth/login", json={"login": login, "password": "correct horse"})
        assert response.status_code == 200, response.text
    wrong = client.post("/auth/login", json={"login": "ada", "password": "wrong horse"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    unknown = client.post("/auth/login", json={"login": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401


def test_duplicate_handle_or_email_is_409(client: TestClient) -> None:
    register(client, "ada")
    again = client.post(
        "/auth/register",
        json={
            "handle": "ada",
            "email": "x@example.org",
            "password": "12345678",
            "display_name": "A",
        },
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"handle": "ada", "email": "ada@example.org", "password": "short", "display_name": "A"},
        {
            "handle": "Bad Handle!",
            "email": "a@example.org",
            "password": "12345678",
            "display_name": "A",
        },
        {"handle": "ada", "email": "not-an-email", "password": "12345678", "display_name": "A"},
        {"handle": 5, "email": [], "password": None, "display_name": {}},
        {
            "handle": "ada",
            "email": "a@example.org",
            "password": "12345678",
            "display_name": "A",
            "admin": True,
        },
    ],
)
def test_bad_registration_is_422_problem(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


def test_malformed_json_and_oversized_body_are_4xx(client: TestClient) -> None:
    broken = client.post(
        "/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    huge = client.post("/auth/register", content=b"x" * 2_000_000)
    assert huge.status_code == 413
    assert huge.json()["status"] == 413


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
def test_me_without_a_valid_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_token_from_another_issuer_key_is_rejected(client: TestClient, token_issuer: Any) -> None:
    forged = token_issuer.issue(user_id=register(client, "ada")["user"]["id"], handle="ada")
    assert client.get("/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_profile_update_emits_event_and_is_public(client: TestClient) -> None:
    ada, grace = register(client, "ada"), register(client, "grace")
    response = client.patch(
        "/users/me", headers=bearer(ada), json={"bio": "PKM nerd", "skills": ["pkm", "python"]}
    )
    assert response.status_code == 200
    seen = client.get(f"/users/{ada['user']['id']}", headers=bearer(grace)).json()
    assert seen["skills"] == ["pkm", "python"] and "email" not in seen
    assert "knowflow.user.profile_updated.v1" in outbox_types(client)


def test_unknown_user_is_404_and_bad_uuid_is_422(client: TestClient) -> None:
    ada = register(client, "ada")
    missing = client.get("/users/00000000-0000-7000-8000-000000000000", headers=bearer(ada))
    assert missing.status_code == 404
    assert client.get("/users/not-a-uuid", headers=bearer(ada)).status_code == 422


def test_private_group_is_invisible_to_non_members_until_added(client: TestClient) -> None:
    ada, bob, carol = register(client, "ada"), register(client, "bob"), register(client, "carol")
    group = client.post(
        "/groups",
        headers=bearer(ada),
        json={"name": "PKM guild", "slug": "pkm-guild", "visibility": "private"},
    ).json()
    assert client.get(f"/groups/{group['id']}", headers=bearer(bob)).status_code == 404
    assert group["id"] not in [
        g["id"] for g in client.get("/groups", headers=bearer(bob)).json()["items"]
    ]
    added = client.post(
        f"/groups/{group['id']}/members", headers=bearer(ada), json={"user_id": bob["user"]["id"]}
    )
    assert added.status_code == 201
    assert client.get(f"/groups/{group['id']}", headers=bearer(bob)).json()["is_member"] is True
    # A member who is not the owner cannot add others; a stranger cannot even see it.
    by_member = client.post(
        f"/groups/{group['id']}/members", headers=bearer(bob), json={"user_id": carol["user"]["id"]}
    )
    assert by_member.status_code == 403
    by_stranger = client.post(
        f"/groups/{group['id']}/members",
        headers=bearer(carol),
        json={"user_id": carol["user"]["id"]},
    )
    assert by_stranger.status_code == 404
    assert client.get(f"/groups/{group['id']}/members", headers=bearer(carol)).status_code == 404


def test_private_group_events_are_restricted(client: TestClient) -> None:
    ada = register(client, "ada")
    client.post(
        "/groups",
        headers=bearer(ada),
        json={"name": "Secret", "slug": "secret", "visibility": "private"},
    )
    client.post("/groups", headers=bearer(ada), json={"name": "Open", "slug": "open"})
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        subjects = [row.subject for row in session.exec(select(OutboxMessage)).all()]
    assert subjects.count("events.restricted.group.created.v1") == 1
    assert subjects.count("events.public.group.created.v1") == 1
    assert "events.restricted.group.member_added.v1" in subjects


def test_anyone_may_join_an_open_group_and_leave_it(client: TestClient) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    group = client.post(
        "/groups", headers=bearer(ada), json={"name": "Open", "slug": "open"}
    ).json()
    joined = client.post(
        f"/groups/{group['id']}/members", headers=bearer(bob), json={"user_id": bob["user"]["id"]}
    )
    assert joined.status_code == 201
    left = client.delete(f"/groups/{group['id']}/members/{bob['user']['id']}", headers=bearer(bob))
    assert left.status_code == 204
    owner_leaves = client.delete(
        f"/groups/{group['id']}/members/{ada['user']['id']}", headers=bearer(ada)
    )
    assert owner_leaves.status_code == 400


def test_follow_person_tag_and_group_then_unfollow(client: TestClient) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    group = client.post(
        "/groups", headers=bearer(ada), json={"name": "Open", "slug": "open"}
    ).json()
    for target_type, target in (
        ("user", ada["user"]["id"]),
        ("tag", "#PKM"),
        ("group", group["id"]),
    ):
        response = client.post(
            "/follows", headers=bearer(bob), json={"target_type": target_type, "target": target}
        )
        assert response.status_code == 201, response.text
    follows = client.get("/follows", headers=bearer(bob)).json()["items"]
    assert {(f["target_type"], f["target"]) for f in follows} == {
        ("user", ada["user"]["id"]),
        ("tag", "pkm"),
        ("group", group["id"]),
    }
    duplicate = client.post(
        "/follows", headers=bearer(bob), json={"target_type": "tag", "target": "pkm"}
    )
    assert duplicate.status_code == 409
    assert client.delete(f"/follows/{follows[0]['id']}", headers=bearer(ada)).status_code == 404
    assert client.delete(f"/follows/{follows[0]['id']}", headers=bearer(bob)).status_code == 204
    assert "knowflow.follow.deleted.v1" in outbox_types(client)


def test_following_a_private_group_needs_membership(client: TestClient) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    group = client.post(
        "/groups",
        headers=bearer(ada),
        json={"name": "S", "slug": "secret", "visibility": "private"},
    ).json()
    response = client.post(
        "/follows", headers=bearer(bob), json={"target_type": "group", "target": group["id"]}
    )
    assert response.status_code == 404
    bad_tag = client.post(
        "/follows", headers=bearer(bob), json={"target_type": "tag", "target": "a b"}
    )
    assert bad_tag.status_code == 400
    bad_kind = client.post(
        "/follows", headers=bearer(bob), json={"target_type": "planet", "target": "x"}
    )
    assert bad_kind.status_code == 422


def test_leaving_a_private_group_drops_the_follow_of_it(client: TestClient) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    group = client.post(
        "/groups",
        headers=bearer(ada),
        json={"name": "S", "slug": "secret", "visibility": "private"},
    ).json()
    client.post(
        f"/groups/{group['id']}/members", headers=bearer(ada), json={"user_id": bob["user"]["id"]}
    )
    client.post(
        "/follows", headers=bearer(bob), json={"target_type": "group", "target": group["id"]}
    )
    client.delete(f"/groups/{group['id']}/members/{bob['user']['id']}", headers=bearer(bob))
    assert client.get("/follows", headers=bearer(bob)).json()["items"] == []


def test_events_reach_the_bus_with_message_id_and_the_requests_trace(
    client: TestClient, nats_url: str
) -> None:
    import asyncio

    import nats

    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = client.post(
        "/auth/register",
        headers={"traceparent": trace},
        json={
            "handle": "ada",
            "email": "ada@example.org",
            "password": "correct horse",
            "display_name": "Ada",
        },
    )
    assert response.status_code == 201

    async def first_event() -> tuple[dict[str, Any], dict[str, str]]:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            subscription = await js.subscribe(
                "events.public.user.registered.v1", ordered_consumer=True
            )
            message = await subscription.next_msg(timeout=10)
            return json.loads(message.data), dict(message.headers or {})
        finally:
            await connection.close()

    envelope, headers = asyncio.run(first_event())
    assert envelope["specversion"] == "1.0" and envelope["type"] == "knowflow.user.registered.v1"
    assert envelope["id"] == headers["Nats-Msg-Id"] and envelope["data"]["handle"] == "ada"
    # The trace of the HTTP request continues on the bus (header and envelope).
    assert headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert envelope["traceparent"] == headers["traceparent"]
