"""Delete on request (GDPR erasure) and export of one's own data, identity's part, over HTTP."""

import json
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.models import Follow, Membership, User
from services.identity.tests.test_routes import bearer, identity_app, register
from shared.events.contracts import ErasureReported
from shared.events.outbox import OutboxMessage
from shared.ids import new_id, utcnow
from shared.testing.fixtures import ServiceClientFactory, wait_for


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    # The first account is the admin, as under `make run`: these tests are not about that rule.
    with service_client(identity_app, name="identity", first_user_is_admin=True) as test_client:
        yield test_client


def events(client: TestClient, event_type: str) -> list[dict[str, Any]]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    envelopes = [json.loads(row.payload) for row in rows]
    return [envelope["data"] for envelope in envelopes if envelope["type"] == event_type]


def every_user_row(client: TestClient) -> str:
    """All stored people, follows and memberships as one text (to look for a name in)."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows: list[Any] = [
            *session.exec(select(User)).all(),
            *session.exec(select(Follow)).all(),
            *session.exec(select(Membership)).all(),
        ]
        return json.dumps([row.model_dump(mode="json") for row in rows])


def group(client: TestClient, owner: dict[str, Any], slug: str, visibility: str) -> str:
    response = client.post(
        "/groups",
        json={"slug": slug, "name": slug.title(), "visibility": visibility},
        headers=bearer(owner),
    )
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    return group_id


def follow(client: TestClient, who: dict[str, Any], target_type: str, target: str) -> None:
    response = client.post(
        "/follows", json={"target_type": target_type, "target": target}, headers=bearer(who)
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def community(client: TestClient) -> dict[str, dict[str, Any]]:
    """An admin, Ada (who follows, is followed, and belongs to groups), and Grace."""
    admin = register(client, "root")
    ada = register(client, "ada")
    grace = register(client, "grace")
    ada_id = ada["user"]["id"]
    follow(client, ada, "user", grace["user"]["id"])
    follow(client, ada, "tag", "python")
    follow(client, grace, "user", ada_id)
    follow(client, grace, "tag", "python")
    group(client, ada, "adas-circle", "private")
    shared = group(client, grace, "guild", "open")
    assert client.post(f"/groups/{shared}/members", json={"user_id": ada_id}, headers=bearer(ada))
    return {"admin": admin, "ada": ada, "grace": grace}


def erase_me(client: TestClient, who: dict[str, Any], password: str = "correct horse") -> Any:
    return client.post("/users/me/erasure", json={"password": password}, headers=bearer(who))


def test_erasing_oneself_removes_every_personal_field_and_keeps_a_tombstone(
    client: TestClient, community: dict[str, dict[str, Any]]
) -> None:
    ada, grace = community["ada"], community["grace"]
    response = erase_me(client, ada)
    assert response.status_code == 202, response.text
    report = response.json()
    identity = next(part for part in report["reports"] if part["service"] == "identity")
    assert identity["removed"] == {
        "profile": 1,
        "email": 1,
        "password": 1,
        "follows": 2,
        "followers": 1,
        "memberships": 2,
    }
    assert report["complete"] is False
    assert report["pending"] == ["posts", "search", "digests", "notifications"]
    assert "ada" not in json.dumps(report).lower()

    stored = every_user_row(client).lower()
    assert "ada" not in stored.replace(ada["user"]["id"], "")
    tombstone = client.get(f"/users/{ada['user']['id']}", headers=bearer(grace)).json()
    assert tombstone["display_name"] == "Former member" and tombstone["active"] is False
    assert tombstone["handle"].startswith("former-") and tombstone["bio"] == ""
    # Grace's own follow of the tag stays; her follow of Ada went with Ada.
    follows = client.get("/follows", headers=bearer(grace)).json()["items"]
    assert [item["target"] for item in follows] == ["python"]


def test_erasure_revokes_access_and_tells_every_service(
    client: TestClient, community: dict[str, dict[str, Any]]
) -> None:
    ada = community["ada"]
    assert erase_me(client, ada).status_code == 202
    # Identity refuses the token at once (every verifier does once `AccessRevoked` reaches it).
    for path in ("/users/me", "/users/me/export"):
        assert client.get(path, headers=bearer(ada)).status_code == 401, path
    login = client.post("/auth/login", json={"login": "ada", "password": "correct horse"})
    assert login.status_code == 401
    login = client.post(
        "/auth/login", json={"login": "ada@example.org", "password": "correct horse"}
    )
    assert login.status_code == 401
    (requested,) = events(client, "knowflow.user.erasure_requested.v1")
    assert requested["user_id"] == ada["user"]["id"]
    assert (requested["handle"], requested["display_name"]) == ("ada", "Ada")
    assert requested["replacement_handle"].startswith("former-")
    assert requested["replacement_display_name"] == "Former member"
    revoked = events(client, "knowflow.auth.access_revoked.v1")
    assert [item["reason"] for item in revoked] == ["erased"]
    removed = events(client, "knowflow.group.member_removed.v1")
    assert {item["user_id"] for item in removed} == {ada["user"]["id"]}
    assert len(removed) == 2
    assert len(events(client, "knowflow.follow.deleted.v1")) == 3
    profile = events(client, "knowflow.user.profile_updated.v1")[-1]
    assert profile["display_name"] == "Former member" and profile["skills"] == []
    assert events(client, "knowflow.user.deactivated.v1")


def test_the_password_confirms_a_self_erasure(
    client: TestClient, community: dict[str, dict[str, Any]]
) -> None:
    ada = community["ada"]
    wrong = erase_me(client, ada, password="not my password")
    assert wrong.status_code == 403 and wrong.headers["content-type"] == "application/problem+json"
    missing = client.post("/users/me/erasure", json={}, headers=bearer(ada))
    assert missing.status_code == 422
    assert client.get("/users/me", headers=bearer(ada)).json()["handle"] == "ada"
    assert not events(client, "knowflow.user.erasure_requested.v1")


def test_an_admin_erases_a_person_once_and_a_second_time_is_a_clear_409(
    client: TestClient, community: dict[str, dict[str, Any]]
) -> None:
    admin, ada, grace = community["admin"], community["ada"], community["grace"]
    path = f"/users/{ada['user']['id']}/erasure"
    assert client.post(path, json={"confirm": False}, headers=bearer(admin)).status_code == 422
    assert client.post(path, json={}, headers=bearer(admin)).status_code == 422
    assert client.post(path, json={"confirm": True}, headers=bearer(grace)).status_code == 403
    own = f"/users/{admin['user']['id']}/erasure"
    assert client.post(own, json={"confirm": True}, headers=bearer(admin)).status_code == 403
    first = client.post(path, json={"confirm": True}, headers=bearer(admin))
    assert first.status_code == 202, first.text
    again = client.post(path, json={"confirm": True}, headers=bearer(admin))
    assert again.status_code == 409
    assert again.json()["erasure_id"] == first.json()["id"]
    assert "already erased" in again.json()["detail"]
    unknown = client.post(
        f"/users/{new_id()}/erasure", json={"confirm": True}, headers=bearer(admin)
    )
    assert unknown.status_code == 404
    assert len(events(client, "knowflow.user.erasure_requested.v1")) == 1
    # The erased person cannot erase again either: their token no longer works.
    assert erase_me(client, ada).status_code == 401


def test_each_services_report_joins_the_combined_report(
    client: TestClient,
    community: dict[str, dict[str, Any]],
    publish_events: Callable[..., None],
) -> None:
    erasure = erase_me(client, community["ada"]).json()
    user_id = UUID(community["ada"]["user"]["id"])
    for service, removed in (
        ("posts", {"authorship_anonymised": 2}),
        ("search", {"profile": 1}),
        ("digests", {"profile": 1}),
        ("notifications", {"inbox_items": 4, "email": 1}),
    ):
        publish_events(
            ErasureReported(
                erasure_id=UUID(erasure["id"]),
                user_id=user_id,
                service=service,
                removed=removed,
                reported_at=utcnow(),
            )
        )

    def report() -> dict[str, Any]:
        response = client.get("/users/erasure-report", params={"erasure_id": erasure["id"]})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    final = wait_for(lambda: (body := report())["complete"] and body)
    assert final["pending"] == []
    by_service = {part["service"]: part["removed"] for part in final["reports"]}
    assert by_service["notifications"] == {"inbox_items": 4, "email": 1}
    assert set(by_service) == {"identity", "posts", "search", "digests", "notifications"}
    missing = client.get("/users/erasure-report", params={"erasure_id": str(new_id())})
    assert missing.status_code == 404
    assert client.get("/users/erasure-report", params={"erasure_id": "x"}).status_code == 422


def test_export_holds_the_callers_profile_follows_and_memberships_only(
    client: TestClient, community: dict[str, dict[str, Any]]
) -> None:
    grace = community["grace"]
    secret = group(client, community["admin"], "admins-only", "private")
    response = client.get("/users/me/export", headers=bearer(grace))
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["profile"]["handle"] == "grace"
    assert export["profile"]["email"] == "grace@example.org"
    assert sorted(item["target"] for item in export["follows"]) == sorted(
        [community["ada"]["user"]["id"], "python"]
    )
    assert [item["slug"] for item in export["memberships"]] == ["guild"]
    assert secret not in json.dumps(export) and "adas-circle" not in json.dumps(export)
    assert set(export["parts"]) == {"posts", "notifications"}
    assert client.get("/users/me/export").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get("/users/me/export", headers=bad).status_code == 401
