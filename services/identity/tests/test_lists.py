"""Identity's lists (`/groups`, `/groups/{id}/members`, `/follows`, `/scim-clients`) are
keyset pages: each item once across the pages, `limit` honoured and capped, a forged cursor
a 400 problem, and a private group's members still hidden from whoever is not in it."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, update

from services.identity.models import Membership
from services.identity.tests.test_routes import bearer, identity_app, register, register_admin
from shared.pagination import MAX_PAGE_SIZE, encode_cursor
from shared.testing.fixtures import ServiceClientFactory

Json = dict[str, Any]
FORGED_CURSORS = [
    "not a cursor!",
    "e30",  # {} in base64: JSON, but no list
    encode_cursor([]),
    encode_cursor(["x", "y", "z"]),
    encode_cursor([7]),
    encode_cursor([7, 8]),
    encode_cursor(["not-a-uuid"]),
    encode_cursor(["name", "not-a-uuid"]),
    encode_cursor([None, None]),
]
# A group's name is any text, so these are forged for the members' list only.
FORGED_TIME_CURSORS = [
    encode_cursor([time, "00000000-0000-0000-0000-000000000000"])
    for time in ("2026-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "yesterday", "")
]


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def create_group(client: TestClient, owner: Json, name: str, slug: str, visibility: str) -> Json:
    response = client.post(
        "/groups",
        headers=bearer(owner),
        json={"name": name, "slug": slug, "visibility": visibility},
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def every_page(client: TestClient, path: str, who: Json, limit: int) -> list[list[Json]]:
    """Each page of a list, following `next_cursor` to the end."""
    pages: list[list[Json]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get(path, headers=bearer(who), params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not move on"


def flat(pages: list[list[Json]]) -> list[Json]:
    return [item for page in pages for item in page]


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


def test_groups_come_in_pages_by_name_each_once_and_private_ones_only_to_their_members(
    client: TestClient,
) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    # Three groups share a name: the id orders them, and none is lost between pages.
    same = [create_group(client, ada, "Same", f"same-{n}", "open")["id"] for n in range(3)]
    alpha = create_group(client, bob, "Alpha", "alpha", "open")["id"]
    secret = create_group(client, ada, "Secret", "secret", "private")["id"]
    hidden = create_group(client, bob, "Hidden", "hidden", "private")["id"]

    pages = every_page(client, "/groups", ada, limit=2)
    assert all(len(page) <= 2 for page in pages) and len(pages) == 3
    listed = flat(pages)
    assert [group["id"] for group in listed] == [alpha, *sorted(same, key=UUID), secret]
    assert {group["id"]: group["is_member"] for group in listed} == {
        alpha: False,
        **dict.fromkeys(same, True),
        secret: True,
    }
    # Bob sees his own private group and the open ones, never Ada's private one.
    seen_by_bob = [group["id"] for group in flat(every_page(client, "/groups", bob, limit=1))]
    assert seen_by_bob == [alpha, hidden, *sorted(same, key=UUID)]
    assert secret not in seen_by_bob


def test_members_come_in_pages_in_joining_order_each_once_even_when_joined_at_once(
    client: TestClient,
) -> None:
    owner = register(client, "owner")
    people = [register(client, f"p{n}") for n in range(5)]
    group = create_group(client, owner, "Club", "club", "open")
    path = f"/groups/{group['id']}/members"
    for person in people:
        added = client.post(path, headers=bearer(owner), json={"user_id": person["user"]["id"]})
        assert added.status_code == 201, added.text
    # Three joined in the same microsecond (a bulk import): their ids order them.
    tied = [UUID(person["user"]["id"]) for person in people[1:4]]
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.exec(
            update(Membership).where(col(Membership.user_id).in_(tied)).values(created_at=at)
        )
        session.commit()

    pages = every_page(client, path, owner, limit=2)
    assert [len(page) for page in pages] == [2, 2, 2]
    listed = [member["user_id"] for member in flat(pages)]
    assert listed == [
        *map(str, sorted(tied)),
        owner["user"]["id"],
        people[0]["user"]["id"],
        people[4]["user"]["id"],
    ]
    assert flat(pages)[0]["joined_at"].startswith("2026-01-02T03:04:05.678901")


def test_a_private_groups_members_stay_hidden_from_outsiders_with_or_without_a_cursor(
    client: TestClient,
) -> None:
    owner, member, outsider = (register(client, name) for name in ("owner", "member", "out"))
    group = create_group(client, owner, "Vault", "vault", "private")
    path = f"/groups/{group['id']}/members"
    added = client.post(path, headers=bearer(owner), json={"user_id": member["user"]["id"]})
    assert added.status_code == 201, added.text
    first = client.get(path, headers=bearer(member), params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"] is not None

    for params in ({}, {"limit": 1}, {"cursor": first["next_cursor"]}):
        assert_problem(client.get(path, headers=bearer(outsider), params=params), 404)
    # A forged cursor does not tell an outsider the group exists either.
    assert_problem(client.get(path, headers=bearer(outsider), params={"cursor": "x!"}), 404)
    assert client.get(path, params={"limit": 1}).status_code == 401
    # Once out, the member's cursor opens nothing.
    left = client.delete(f"{path}/{member['user']['id']}", headers=bearer(member))
    assert left.status_code == 204
    assert_problem(
        client.get(path, headers=bearer(member), params={"cursor": first["next_cursor"]}), 404
    )


def test_follows_come_in_pages_oldest_first_each_once(client: TestClient) -> None:
    bob = register(client, "bob")
    tags = [f"tag{n}" for n in range(5)]
    for tag in tags:
        followed = client.post(
            "/follows", headers=bearer(bob), json={"target_type": "tag", "target": tag}
        )
        assert followed.status_code == 201, followed.text
    pages = every_page(client, "/follows", bob, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [item["target"] for item in flat(pages)] == tags
    # Another person's follows are not in anyone else's list.
    assert client.get("/follows", headers=bearer(register(client, "eve"))).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_provisioning_clients_come_in_pages_for_admins_only(client: TestClient) -> None:
    admin, member = register_admin(client, "root"), register(client, "mia")
    names = [f"client-{n}" for n in range(3)]
    for name in names:
        created = client.post("/scim-clients", headers=bearer(admin), json={"name": name})
        assert created.status_code == 201, created.text
    pages = every_page(client, "/scim-clients", admin, limit=2)
    assert [[item["name"] for item in page] for page in pages] == [names[:2], names[2:]]
    assert all("token" not in item for item in flat(pages))
    assert_problem(client.get("/scim-clients", headers=bearer(member)), 403)
    cursor = client.get("/scim-clients", headers=bearer(admin), params={"limit": 1}).json()
    assert_problem(
        client.get(
            "/scim-clients", headers=bearer(member), params={"cursor": cursor["next_cursor"]}
        ),
        403,
    )


def test_limit_is_honoured_capped_and_unknown_parameters_refused(client: TestClient) -> None:
    ada = register(client, "ada")
    group = create_group(client, ada, "Club", "club", "open")
    for n in range(MAX_PAGE_SIZE + 1):
        create_group(client, ada, f"Group {n:03}", f"group-{n}", "open")
        followed = client.post(
            "/follows", headers=bearer(ada), json={"target_type": "tag", "target": f"t{n}"}
        )
        assert followed.status_code == 201, followed.text
    for path in ("/groups", "/follows"):
        default = client.get(path, headers=bearer(ada)).json()
        assert len(default["items"]) == 20 and default["next_cursor"] is not None
        largest = client.get(path, headers=bearer(ada), params={"limit": MAX_PAGE_SIZE}).json()
        assert len(largest["items"]) == MAX_PAGE_SIZE and largest["next_cursor"] is not None
    lists = ("/groups", "/follows", f"/groups/{group['id']}/members")
    for path in lists:
        for bad in ({"limit": 0}, {"limit": MAX_PAGE_SIZE + 1}, {"limit": "x"}, {"sort": "x"}):
            assert_problem(client.get(path, headers=bearer(ada), params=bad), 422)


def test_a_forged_cursor_is_a_400_problem_on_every_list(client: TestClient) -> None:
    admin = register_admin(client, "root")
    group = create_group(client, admin, "Club", "club", "open")
    members = f"/groups/{group['id']}/members"
    forged = [
        *(
            (path, cursor)
            for path in ("/groups", "/follows", members, "/scim-clients")
            for cursor in FORGED_CURSORS
        ),
        *(
            (path, cursor)
            for path in ("/follows", members, "/scim-clients")
            for cursor in FORGED_TIME_CURSORS
        ),
    ]
    for path, cursor in forged:
        response = client.get(path, headers=bearer(admin), params={"cursor": cursor})
        assert_problem(response, 400)
        assert response.json()["detail"] == "malformed cursor"
