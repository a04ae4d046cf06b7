"""Roles over HTTP: organisation roles, group roles, group edits, ownership, the audit log."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.audit import verify_chain
from services.identity.tests.test_routes import bearer, identity_app, outbox_types, register
from shared.events.outbox import OutboxMessage
from shared.testing.fixtures import ServiceClientFactory

Json = dict[str, Any]


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    # The first account is the admin, as under `make run`: these tests are not about that rule.
    with service_client(identity_app, name="identity", first_user_is_admin=True) as test_client:
        yield test_client


def events_of(client: TestClient, event_type: str) -> list[Json]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
        found = [json.loads(row.payload) for row in rows]
    return [event["data"] for event in found if event["type"] == event_type]


def audit(client: TestClient, admin: Json, **params: str) -> list[Json]:
    response = client.get("/audit", headers=bearer(admin), params=params)
    assert response.status_code == 200, response.text
    items: list[Json] = response.json()["items"]
    return items


@pytest.fixture
def people(client: TestClient) -> dict[str, Json]:
    return {name: register(client, name) for name in ("ada", "bob", "cat", "dan")}


def test_an_admin_changes_a_role_with_an_event_a_revocation_and_an_audit_entry(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob = people["ada"], people["bob"]
    changed = client.put(
        f"/users/{bob['user']['id']}/role", headers=bearer(ada), json={"role": "analyst"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"user_id": bob["user"]["id"], "role": "analyst"}
    signed_in = client.post("/auth/login", json={"login": "bob", "password": "correct horse"})
    assert signed_in.json()["user"]["role"] == "analyst"
    assert events_of(client, "knowflow.user.role_changed.v1")[-1]["role"] == "analyst"
    revoked = events_of(client, "knowflow.auth.access_revoked.v1")
    assert revoked[-1]["user_id"] == bob["user"]["id"] and revoked[-1]["reason"] == "role_changed"
    [entry] = audit(client, ada, action="user.role_changed")
    assert entry["target"] == f"user:{bob['user']['id']}"
    assert entry["actor_id"] == ada["user"]["id"]
    assert entry["details"] == {"from": "member", "to": "analyst"}
    # The same role again changes nothing and records nothing.
    client.put(f"/users/{bob['user']['id']}/role", headers=bearer(ada), json={"role": "analyst"})
    assert len(audit(client, ada, action="user.role_changed")) == 1


def test_only_an_admin_changes_roles_and_bad_input_is_a_4xx(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob, cat = people["ada"], people["bob"], people["cat"]
    path = f"/users/{cat['user']['id']}/role"
    refused = client.put(path, headers=bearer(bob), json={"role": "admin"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    own = client.put(
        f"/users/{bob['user']['id']}/role", headers=bearer(bob), json={"role": "admin"}
    )
    assert own.status_code == 403
    assert client.put(path, json={"role": "admin"}).status_code == 401
    unknown = client.put(
        "/users/00000000-0000-7000-8000-000000000000/role",
        headers=bearer(ada),
        json={"role": "admin"},
    )
    assert unknown.status_code == 404
    assert client.put(path, headers=bearer(ada), json={"role": "owner"}).status_code == 422
    assert client.get("/users/me", headers=bearer(cat)).json()["role"] == "member"


def test_the_last_admin_cannot_be_demoted(client: TestClient, people: dict[str, Json]) -> None:
    ada, bob = people["ada"], people["bob"]
    alone = client.put(
        f"/users/{ada['user']['id']}/role", headers=bearer(ada), json={"role": "member"}
    )
    assert alone.status_code == 409, alone.text
    promoted = client.put(
        f"/users/{bob['user']['id']}/role", headers=bearer(ada), json={"role": "admin"}
    )
    assert promoted.status_code == 200
    # Two admins: one may step down; then the other is the last one.
    stepped = client.put(
        f"/users/{ada['user']['id']}/role", headers=bearer(ada), json={"role": "member"}
    )
    assert stepped.status_code == 200, stepped.text
    bob_token = client.post("/auth/login", json={"login": "bob", "password": "correct horse"})
    last = client.put(
        f"/users/{bob['user']['id']}/role",
        headers=bearer(bob_token.json()),
        json={"role": "analyst"},
    )
    assert last.status_code == 409


def make_group(client: TestClient, owner: Json, visibility: str = "private") -> Json:
    response = client.post(
        "/groups",
        headers=bearer(owner),
        json={"name": "Vault", "slug": "vault", "visibility": visibility},
    )
    assert response.status_code == 201, response.text
    group: Json = response.json()
    return group


def add(client: TestClient, group: Json, by: Json, who: Json) -> int:
    response = client.post(
        f"/groups/{group['id']}/members", headers=bearer(by), json={"user_id": who["user"]["id"]}
    )
    return response.status_code


def set_role(client: TestClient, group: Json, by: Json, who: Json, role: str) -> int:
    response = client.put(
        f"/groups/{group['id']}/members/{who['user']['id']}/role",
        headers=bearer(by),
        json={"role": role},
    )
    return response.status_code


def test_moderators_manage_members_but_not_moderators_or_the_owner(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob, cat, dan = people["ada"], people["bob"], people["cat"], people["dan"]
    group = make_group(client, ada)
    assert add(client, group, ada, bob) == 201
    assert set_role(client, group, ada, bob, "moderator") == 200
    added = [e for e in events_of(client, "knowflow.group.member_added.v1")]
    assert added[-1]["role"] == "moderator" and added[-1]["user_id"] == bob["user"]["id"]
    assert client.get(f"/groups/{group['id']}", headers=bearer(bob)).json()["role"] == "moderator"
    # A moderator adds and removes plain members.
    assert add(client, group, bob, cat) == 201
    assert add(client, group, bob, dan) == 201
    removed = client.delete(
        f"/groups/{group['id']}/members/{dan['user']['id']}", headers=bearer(bob)
    )
    assert removed.status_code == 204
    # ...but changes nobody's role, removes no moderator and never the owner.
    assert set_role(client, group, bob, cat, "moderator") == 403
    assert set_role(client, group, ada, cat, "moderator") == 200
    moderator = client.delete(
        f"/groups/{group['id']}/members/{cat['user']['id']}", headers=bearer(bob)
    )
    assert moderator.status_code == 403
    owner = client.delete(f"/groups/{group['id']}/members/{ada['user']['id']}", headers=bearer(bob))
    assert owner.status_code == 400
    # A plain member manages nobody.
    assert set_role(client, group, ada, cat, "member") == 200
    assert add(client, group, cat, dan) == 403
    assert (
        client.delete(
            f"/groups/{group['id']}/members/{bob['user']['id']}", headers=bearer(cat)
        ).status_code
        == 403
    )
    # The owner's role moves only by transfer; someone outside the group is not found.
    assert set_role(client, group, ada, ada, "member") == 400
    assert set_role(client, group, ada, dan, "moderator") == 404
    actions = [entry["action"] for entry in audit(client, ada, target=f"group:{group['id']}")]
    assert actions.count("group.member_role_changed") == 3
    assert actions.count("group.member_added") == 3 and actions.count("group.member_removed") == 1


def test_the_owner_edits_the_group_with_if_match(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob = people["ada"], people["bob"]
    group = make_group(client, ada)
    add(client, group, ada, bob)
    path = f"/groups/{group['id']}"
    etag = client.get(path, headers=bearer(ada)).headers["etag"]
    edited = client.patch(
        path,
        headers={**bearer(ada), "If-Match": etag},
        json={"name": "The Vault", "description": "where plans live"},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["name"] == "The Vault" and edited.headers["etag"] != etag
    stale = client.patch(path, headers={**bearer(ada), "If-Match": etag}, json={"name": "Old"})
    assert stale.status_code == 412
    assert client.patch(path, headers=bearer(bob), json={"name": "Mine"}).status_code == 403
    assert client.patch(path, headers=bearer(people["cat"]), json={"name": "x"}).status_code == 404
    assert client.patch(path, headers=bearer(ada), json={"visibility": "open"}).status_code == 422
    [updated] = events_of(client, "knowflow.group.updated.v1")
    assert updated["name"] == "The Vault" and updated["description"] == "where plans live"
    [entry] = audit(client, ada, action="group.updated")
    assert entry["details"] == {"changed": "description,name"}


def test_the_owner_transfers_ownership_to_a_member(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob, cat = people["ada"], people["bob"], people["cat"]
    group = make_group(client, ada)
    add(client, group, ada, bob)
    path = f"/groups/{group['id']}/transfer"
    outsider = client.post(path, headers=bearer(ada), json={"user_id": cat["user"]["id"]})
    assert outsider.status_code == 400
    assert (
        client.post(path, headers=bearer(bob), json={"user_id": bob["user"]["id"]}).status_code
        == 403
    )
    moved = client.post(
        path,
        headers=bearer(ada),
        json={"user_id": bob["user"]["id"], "previous_owner_role": "member"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_id"] == bob["user"]["id"] and moved.json()["role"] == "member"
    members = client.get(f"/groups/{group['id']}/members", headers=bearer(bob)).json()["items"]
    assert {m["handle"]: m["role"] for m in members} == {"ada": "member", "bob": "owner"}
    # The old owner is an ordinary member now; the new one runs the group.
    assert (
        client.patch(f"/groups/{group['id']}", headers=bearer(ada), json={"name": "x"}).status_code
        == 403
    )
    assert (
        client.delete(
            f"/groups/{group['id']}/members/{ada['user']['id']}", headers=bearer(bob)
        ).status_code
        == 204
    )
    assert events_of(client, "knowflow.group.updated.v1")[-1]["owner_id"] == bob["user"]["id"]
    [entry] = audit(client, ada, action="group.ownership_transferred")
    assert entry["details"]["to"] == bob["user"]["id"]


def test_the_audit_log_filters_and_pages_for_admins_only(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob = people["ada"], people["bob"]
    for person in ("bob", "cat", "dan"):
        client.put(
            f"/users/{people[person]['user']['id']}/role",
            headers=bearer(ada),
            json={"role": "analyst"},
        )
    # A role change revokes the person's tokens: bob signs in again.
    bob = client.post("/auth/login", json={"login": "bob", "password": "correct horse"}).json()
    group = make_group(client, bob, visibility="open")
    client.post(
        f"/groups/{group['id']}/members",
        headers=bearer(people["cat"]),
        json={"user_id": people["cat"]["user"]["id"]},
    )
    everything = audit(client, ada)
    sequences = [e["sequence"] for e in everything]
    # Newest first, every entry (sign-ins are audited too), the three role changes among them.
    assert sequences == list(range(len(everything), 0, -1))
    assert [e["action"] for e in everything].count("user.role_changed") == 3
    by_ada = [e for e in everything if e["actor_id"] == ada["user"]["id"]]
    assert audit(client, ada, actor_id=ada["user"]["id"]) == by_ada
    about_bob = [e for e in everything if e["target"] == f"user:{bob['user']['id']}"]
    assert len(about_bob) >= 1
    assert audit(client, ada, target=f"user:{bob['user']['id']}") == about_bob
    roles = audit(client, ada, action="user.role_changed")
    middle = roles[1]["at"]
    assert [e["sequence"] for e in audit(client, ada, since=middle)] == [
        e["sequence"] for e in everything if e["at"] >= middle
    ]
    assert [e["sequence"] for e in audit(client, ada, until=middle)] == [
        e["sequence"] for e in everything if e["at"] < middle
    ]
    # Paging: pages of three, in order, until there is no cursor.
    paged: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/audit", headers=bearer(ada), params=params).json()
        assert len(page["items"]) <= 3
        paged += [e["sequence"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == sequences
    # Only admins; malformed input is a 4xx problem.
    assert client.get("/audit", headers=bearer(bob)).status_code == 403
    assert client.get("/audit").status_code == 401
    assert client.get("/audit", headers=bearer(ada), params={"cursor": "bad"}).status_code == 400
    assert (
        client.get("/audit", headers=bearer(ada), params={"cursor": "WyJ4Il0"}).status_code == 400
    )
    for bad_time in ("yesterday", "0", "2026-01-01"):
        refused = client.get("/audit", headers=bearer(ada), params={"since": bad_time})
        assert refused.status_code == 422, bad_time
    assert client.get("/audit", headers=bearer(ada), params={"sort": "x"}).status_code == 422
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert verify_chain(session) == (len(everything), None)
    assert "knowflow.audit.recorded.v1" in outbox_types(client)


def test_an_admins_import_is_in_the_audit_log_once(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada = people["ada"]
    body = {
        "handle": "imported_one",
        "display_name": "Imported",
        "created_at": "2020-01-01T00:00:00Z",
        "source": "https://example.org/users/1",
    }
    first = client.post("/users", headers=bearer(ada), json=body)
    assert first.status_code == 201, first.text
    assert client.post("/users", headers=bearer(ada), json=body).status_code == 200
    [entry] = audit(client, ada, action="user.imported")
    assert entry["target"] == f"user:{first.json()['id']}"
    assert entry["details"] == {"source": "https://example.org/users/1"}
    assert client.post("/users", headers=bearer(people["bob"]), json=body).status_code == 403


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: TestClient, people: dict[str, Json]
) -> None:
    ada, bob = people["ada"], people["bob"]
    client.put(f"/users/{bob['user']['id']}/role", headers=bearer(ada), json={"role": "admin"})
    bob = client.post("/auth/login", json={"login": "bob", "password": "correct horse"}).json()
    barrier = threading.Barrier(2)

    def demote(actor: Json, target: Json) -> int:
        barrier.wait()
        response = client.put(
            f"/users/{target['user']['id']}/role", headers=bearer(actor), json={"role": "member"}
        )
        return response.status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(demote, (ada, bob), (bob, ada)))
    assert statuses == [200, 409], statuses
    # The demoted one's tokens are revoked: each signs in again to read their role.
    roles = [
        client.post("/auth/login", json={"login": name, "password": "correct horse"}).json()[
            "user"
        ]["role"]
        for name in ("ada", "bob")
    ]
    assert sorted(roles) == ["admin", "member"]
