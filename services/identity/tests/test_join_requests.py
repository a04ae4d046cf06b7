"""Requests to join a private group: asked, listed, approved or declined, and what leaks."""

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from services.identity.tests.test_routes import bearer, identity_app, register, register_admin
from shared.events.outbox import OutboxMessage
from shared.testing.fixtures import ServiceClientFactory

Json = dict[str, Any]
REQUESTER_FIELDS = {"id", "group_id", "user_id", "status", "message", "created_at", "decided_at"}
MANAGER_FIELDS = REQUESTER_FIELDS | {"handle", "display_name", "decided_by"}


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


@pytest.fixture
def world(client: TestClient) -> Json:
    """ada owns a private group (Vault) with dan as moderator and eve as member, and an open
    group; bob and cy are outsiders; root is an admin outside the group."""
    people = {name: register(client, name) for name in ("ada", "bob", "cy", "dan", "eve")}
    people["root"] = register_admin(client, "root")
    ada = bearer(people["ada"])
    vault = client.post(
        "/groups", headers=ada, json={"name": "Vault", "slug": "vault", "visibility": "private"}
    ).json()
    agora = client.post("/groups", headers=ada, json={"name": "Agora", "slug": "agora"}).json()
    for name in ("dan", "eve"):
        added = client.post(
            f"/groups/{vault['id']}/members",
            headers=ada,
            json={"user_id": people[name]["user"]["id"]},
        )
        assert added.status_code == 201, added.text
    promoted = client.put(
        f"/groups/{vault['id']}/members/{people['dan']['user']['id']}/role",
        headers=ada,
        json={"role": "moderator"},
    )
    assert promoted.status_code == 200, promoted.text
    return {"people": people, "vault": vault["id"], "agora": agora["id"]}


def as_(world: Json, name: str) -> dict[str, str]:
    return bearer(world["people"][name])


def ask(client: TestClient, world: Json, name: str, message: str = "") -> Any:
    return client.post(
        f"/groups/{world['vault']}/join-requests",
        headers=as_(world, name),
        json={"message": message},
    )


def events(client: TestClient, event_type: str) -> list[Json]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    found = [json.loads(row.payload) for row in rows]
    return [event["data"] for event in found if event["type"] == event_type]


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_asking_answers_ids_and_status_only_and_names_nothing_of_the_group(
    client: TestClient, world: Json
) -> None:
    asked = ask(client, world, "bob", "I work on the vault project")
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert set(body) == REQUESTER_FIELDS
    assert (
        body["group_id"] == world["vault"]
        and body["user_id"] == world["people"]["bob"]["user"]["id"]
    )
    assert body["status"] == "pending" and body["decided_at"] is None
    assert "Vault" not in asked.text and 'vault"' not in asked.text
    mine = client.get("/users/me/join-requests", headers=as_(world, "bob"))
    assert mine.status_code == 200, mine.text
    assert mine.json() == {"items": [body], "next_cursor": None}
    # The group stays as hidden as before: asking made bob no member.
    assert_problem(client.get(f"/groups/{world['vault']}", headers=as_(world, "bob")), 404)
    assert_problem(client.get(f"/groups/{world['vault']}/members", headers=as_(world, "bob")), 404)


def test_asking_twice_being_a_member_an_open_group_or_no_group_are_refused(
    client: TestClient, world: Json
) -> None:
    assert ask(client, world, "bob").status_code == 201
    again = ask(client, world, "bob")
    assert_problem(again, 409)
    for member in ("ada", "dan", "eve"):
        assert_problem(ask(client, world, member), 409)
    opened = client.post(
        f"/groups/{world['agora']}/join-requests", headers=as_(world, "cy"), json={}
    )
    assert_problem(opened, 400)
    unknown = client.post(f"/groups/{uuid4()}/join-requests", headers=as_(world, "cy"), json={})
    assert_problem(unknown, 404)
    too_long = ask(client, world, "cy", "x" * 501)
    assert_problem(too_long, 422)
    extra = client.post(
        f"/groups/{world['vault']}/join-requests",
        headers=as_(world, "cy"),
        json={"message": "hi", "status": "approved"},
    )
    assert_problem(extra, 422)


def test_the_owner_and_moderators_list_requests_with_who_asks_and_nobody_else_does(
    client: TestClient, world: Json
) -> None:
    ask(client, world, "bob", "let me in")
    path = f"/groups/{world['vault']}/join-requests"
    for manager in ("ada", "dan"):
        listed = client.get(path, headers=as_(world, manager))
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert set(item) == MANAGER_FIELDS
        assert item["handle"] == "bob" and item["display_name"] == "Bob"
        assert item["message"] == "let me in" and item["status"] == "pending"
    assert_problem(client.get(path, headers=as_(world, "eve")), 403)  # a plain member
    for outsider in ("bob", "cy", "root"):  # the requester, an outsider, an admin outside it
        assert_problem(client.get(path, headers=as_(world, outsider)), 404)
    assert_problem(client.get(f"/groups/{uuid4()}/join-requests", headers=as_(world, "ada")), 404)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        assert_problem(client.get(path, headers=headers), 401)
        assert_problem(client.post(path, headers=headers, json={}), 401)
        assert_problem(client.get("/users/me/join-requests", headers=headers), 401)
    # An open group never has requests; its managers see none, others may not look.
    agora = f"/groups/{world['agora']}/join-requests"
    assert client.get(agora, headers=as_(world, "ada")).json() == {"items": [], "next_cursor": None}
    assert_problem(client.get(agora, headers=as_(world, "cy")), 403)


def test_approving_makes_a_member_with_the_membership_event_and_an_audit_entry(
    client: TestClient, world: Json
) -> None:
    request = ask(client, world, "bob").json()
    path = f"/groups/{world['vault']}/join-requests/{request['id']}"
    approved = client.post(f"{path}/approve", headers=as_(world, "dan"))
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["decided_at"] is not None
    assert body["decided_by"] == world["people"]["dan"]["user"]["id"]
    bob_id = world["people"]["bob"]["user"]["id"]
    group = client.get(f"/groups/{world['vault']}", headers=as_(world, "bob"))
    assert group.status_code == 200 and group.json()["role"] == "member"
    added = [e for e in events(client, "knowflow.group.member_added.v1") if e["user_id"] == bob_id]
    assert len(added) == 1
    assert added[0]["group_id"] == world["vault"] and added[0]["visibility"] == "private"
    assert added[0]["added_by"] == world["people"]["dan"]["user"]["id"]
    audit = client.get(
        "/audit", headers=as_(world, "root"), params={"action": "group.join_request_approved"}
    ).json()["items"]
    assert [(e["target"], e["actor_id"], e["details"]) for e in audit] == [
        (
            f"group:{world['vault']}",
            world["people"]["dan"]["user"]["id"],
            {"request_id": request["id"], "user_id": bob_id},
        )
    ]
    # Deciding twice, either way, is a 409; nothing more is added.
    assert_problem(client.post(f"{path}/approve", headers=as_(world, "ada")), 409)
    assert_problem(client.post(f"{path}/decline", headers=as_(world, "ada")), 409)
    again = [e for e in events(client, "knowflow.group.member_added.v1") if e["user_id"] == bob_id]
    assert again == added
    mine = client.get("/users/me/join-requests", headers=as_(world, "bob")).json()["items"]
    assert [(r["id"], r["status"]) for r in mine] == [(request["id"], "approved")]
    assert "decided_by" not in mine[0]  # who decided is a member: not the requester's to know
    # A member leaves by removing themselves; the group is hidden again; they may ask again.
    left = client.delete(f"/groups/{world['vault']}/members/{bob_id}", headers=as_(world, "bob"))
    assert left.status_code == 204, left.text
    assert_problem(client.get(f"/groups/{world['vault']}", headers=as_(world, "bob")), 404)
    assert ask(client, world, "bob").status_code == 201


def test_declining_leaves_the_requester_out_and_free_to_ask_again(
    client: TestClient, world: Json
) -> None:
    first = ask(client, world, "cy").json()
    path = f"/groups/{world['vault']}/join-requests/{first['id']}"
    declined = client.post(f"{path}/decline", headers=as_(world, "ada"))
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    assert_problem(client.get(f"/groups/{world['vault']}", headers=as_(world, "cy")), 404)
    cy_id = world["people"]["cy"]["user"]["id"]
    assert not [
        e for e in events(client, "knowflow.group.member_added.v1") if e["user_id"] == cy_id
    ]
    audit = client.get(
        "/audit", headers=as_(world, "root"), params={"action": "group.join_request_declined"}
    ).json()["items"]
    assert len(audit) == 1 and audit[0]["actor_id"] == world["people"]["ada"]["user"]["id"]
    assert_problem(client.post(f"{path}/approve", headers=as_(world, "ada")), 409)
    second = ask(client, world, "cy")
    assert second.status_code == 201, second.text
    mine = client.get("/users/me/join-requests", headers=as_(world, "cy")).json()["items"]
    assert [r["status"] for r in mine] == ["pending", "declined"]  # newest first


def test_only_the_groups_managers_decide_and_others_learn_nothing(
    client: TestClient, world: Json
) -> None:
    request = ask(client, world, "bob").json()
    path = f"/groups/{world['vault']}/join-requests/{request['id']}"
    for action in ("approve", "decline"):
        assert_problem(client.post(f"{path}/{action}", headers=as_(world, "eve")), 403)
        for outsider in ("bob", "cy", "root"):  # the requester cannot approve themselves
            assert_problem(client.post(f"{path}/{action}", headers=as_(world, outsider)), 404)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            assert_problem(client.post(f"{path}/{action}", headers=headers), 401)
    # A request is found only in its own group.
    other = client.post(
        "/groups",
        headers=as_(world, "dan"),
        json={"name": "Den", "slug": "den", "visibility": "private"},
    ).json()
    elsewhere = f"/groups/{other['id']}/join-requests/{request['id']}/approve"
    assert_problem(client.post(elsewhere, headers=as_(world, "dan")), 404)
    missing = f"/groups/{world['vault']}/join-requests/{uuid4()}/approve"
    assert_problem(client.post(missing, headers=as_(world, "ada")), 404)
    listed = client.get(f"/groups/{world['vault']}/join-requests", headers=as_(world, "ada"))
    assert [r["status"] for r in listed.json()["items"]] == ["pending"]


def test_pending_requests_come_first_oldest_first_then_decided_ones_latest_first(
    client: TestClient, world: Json
) -> None:
    people = world["people"]
    for name in ("fay", "gus", "hal", "ivy"):
        people[name] = register(client, name)
    ids = {
        name: ask(client, world, name).json()["id"]
        for name in ("bob", "cy", "fay", "gus", "hal", "ivy")
    }
    base = f"/groups/{world['vault']}/join-requests"
    for name, action in (("cy", "decline"), ("gus", "approve"), ("fay", "decline")):
        decided = client.post(f"{base}/{ids[name]}/{action}", headers=as_(world, "ada"))
        assert decided.status_code == 200, decided.text
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: Json = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(base, headers=as_(world, "dan"), params=params)
        assert page.status_code == 200, page.text
        seen += [item["handle"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    # Decided ones: the most recent request first.
    assert seen == ["bob", "hal", "ivy", "gus", "fay", "cy"]
    pending = client.get(base, headers=as_(world, "dan"), params={"status": "pending"}).json()
    assert [item["handle"] for item in pending["items"]] == ["bob", "hal", "ivy"]
    for params, status in (
        ({"cursor": "bad"}, 400),
        ({"cursor": "WzIsIngiXQ"}, 400),  # [2,"x"]
        ({"status": "maybe"}, 422),
        ({"limit": 101}, 422),
        ({"sort": "old"}, 422),
    ):
        assert_problem(client.get(base, headers=as_(world, "dan"), params=params), status)


def test_two_managers_deciding_at_once_decide_once(client: TestClient, world: Json) -> None:
    request = ask(client, world, "bob").json()
    path = f"/groups/{world['vault']}/join-requests/{request['id']}"
    deciders = [("ada", "approve"), ("dan", "approve"), ("ada", "decline"), ("dan", "decline")]
    with ThreadPoolExecutor(max_workers=len(deciders)) as pool:
        answers = list(
            pool.map(lambda d: client.post(f"{path}/{d[1]}", headers=as_(world, d[0])), deciders)
        )
    assert Counter(a.status_code for a in answers) == {200: 1, 409: 3}, [a.text for a in answers]
    [winner] = [a.json() for a in answers if a.status_code == 200]
    member = client.get(f"/groups/{world['vault']}", headers=as_(world, "bob")).status_code
    assert member == (200 if winner["status"] == "approved" else 404)


def test_requests_sent_at_once_make_one_pending_request(client: TestClient, world: Json) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _i: ask(client, world, "bob"), range(4)))
    assert Counter(a.status_code for a in answers) == {201: 1, 409: 3}, [a.text for a in answers]


def test_an_erased_persons_requests_go_with_them_and_an_export_holds_ones_own(
    client: TestClient, world: Json
) -> None:
    ask(client, world, "bob", "bob's reasons")
    ask(client, world, "cy", "cy's reasons")
    exported = client.get("/users/me/export", headers=as_(world, "cy")).json()
    assert [r["message"] for r in exported["join_requests"]] == ["cy's reasons"]
    erased = client.post(
        f"/users/{world['people']['cy']['user']['id']}/erasure",
        headers=as_(world, "root"),
        json={"confirm": True},
    )
    assert erased.status_code == 202, erased.text
    [identity_part] = [r for r in erased.json()["reports"] if r["service"] == "identity"]
    assert identity_part["removed"]["join_requests"] == 1
    listed = client.get(f"/groups/{world['vault']}/join-requests", headers=as_(world, "ada"))
    assert [item["handle"] for item in listed.json()["items"]] == ["bob"]
    assert "cy's reasons" not in listed.text


def test_approving_someone_added_meanwhile_records_the_decision_and_keeps_the_membership(
    client: TestClient, world: Json
) -> None:
    request = ask(client, world, "bob").json()
    bob_id = world["people"]["bob"]["user"]["id"]
    added = client.post(
        f"/groups/{world['vault']}/members", headers=as_(world, "ada"), json={"user_id": bob_id}
    )
    assert added.status_code == 201, added.text
    approved = client.post(
        f"/groups/{world['vault']}/join-requests/{request['id']}/approve", headers=as_(world, "ada")
    )
    assert approved.status_code == 200, approved.text
    adds = [e for e in events(client, "knowflow.group.member_added.v1") if e["user_id"] == bob_id]
    assert len(adds) == 1
