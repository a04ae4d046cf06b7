"""The people directory (`GET /users`): search, pages, the admins' view, who never appears."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from services.identity.tests.test_routes import bearer, identity_app, register_admin
from shared.testing.fixtures import ServiceClientFactory

Json = dict[str, Any]
PUBLIC_FIELDS = {"id", "handle", "display_name", "bio", "skills", "created_at", "active"}
ADMIN_FIELDS = PUBLIC_FIELDS | {"email", "is_admin", "role", "deactivated_at"}


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def person(client: TestClient, handle: str, display_name: str) -> Json:
    response = client.post(
        "/auth/register",
        json={
            "handle": handle,
            "email": f"{handle}@example.org",
            "password": "correct horse",
            "display_name": display_name,
        },
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


@pytest.fixture
def people(client: TestClient) -> dict[str, Json]:
    admin = register_admin(client, "root")
    return {
        "root": admin,
        "ada": person(client, "ada", "Ada Lovelace"),
        "adam": person(client, "adam", "Adam Smith"),
        "bob": person(client, "bob", "Robert Jones-Ada"),
        "cy": person(client, "cy_x", "Cyrus Love"),
        "dee": person(client, "dee", "Dee Dee"),
    }


def directory(client: TestClient, who: Json, **params: Any) -> Json:
    response = client.get("/users", headers=bearer(who), params=params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def handles(page: Json) -> list[str]:
    return [item["handle"] for item in page["items"]]


def test_everyone_signed_in_gets_active_people_by_handle_with_public_fields_only(
    client: TestClient, people: dict[str, Json]
) -> None:
    page = directory(client, people["ada"])
    assert handles(page) == ["ada", "adam", "bob", "cy_x", "dee", "root"]
    assert page["next_cursor"] is None
    for item in page["items"]:
        assert set(item) == PUBLIC_FIELDS, item
    # The same public model as `GET /users/{id}` gives.
    one = client.get(f"/users/{people['bob']['user']['id']}", headers=bearer(people["ada"]))
    assert one.json() == next(i for i in page["items"] if i["handle"] == "bob")


def test_pages_follow_the_cursor_to_the_end_without_repeats(
    client: TestClient, people: dict[str, Json]
) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: Json = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = directory(client, people["dee"], **params)
        assert len(page["items"]) <= 4
        seen += handles(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["ada", "adam", "bob", "cy_x", "dee", "root"]


SEARCHES = [
    ("ad", ["ada", "adam"]),  # handle prefix
    ("ADA", ["ada", "adam"]),  # any letter case
    ("rob", ["bob"]),  # display name prefix
    ("love", ["ada", "cy_x"]),  # a later word of the display name
    ("cy_", ["cy_x"]),  # `_` is a character, not a wildcard
    ("c%", []),  # `%` too
    ("smi", ["adam"]),
    ("velace", []),  # prefixes only, not any substring
    ("  dee ", ["dee"]),  # surrounding blanks do not count
    ("  ", ["ada", "adam", "bob", "cy_x", "dee", "root"]),  # nothing typed yet
]


def test_q_matches_a_prefix_of_the_handle_or_of_a_word_of_the_name_in_any_case(
    client: TestClient, people: dict[str, Json]
) -> None:
    found = {q: handles(directory(client, people["ada"], q=q)) for q, _ in SEARCHES}
    assert found == dict(SEARCHES)


def test_deactivated_people_are_listed_to_admins_who_ask_with_the_admin_view(
    client: TestClient, people: dict[str, Json]
) -> None:
    root, ada = people["root"], people["ada"]
    deactivated = client.post(
        f"/users/{people['dee']['user']['id']}/deactivate", headers=bearer(root)
    )
    assert deactivated.status_code == 200, deactivated.text
    assert "dee" not in handles(directory(client, ada))
    assert "dee" not in handles(directory(client, root))  # admins too, unless they ask
    everyone = directory(client, root, include_inactive="true")
    assert handles(everyone) == ["ada", "adam", "bob", "cy_x", "dee", "root"]
    for item in everyone["items"]:
        assert set(item) == ADMIN_FIELDS, item
    dee = next(item for item in everyone["items"] if item["handle"] == "dee")
    assert dee["active"] is False and dee["deactivated_at"] is not None
    assert dee["email"] == "dee@example.org" and dee["role"] == "member"
    root_item = next(item for item in everyone["items"] if item["handle"] == "root")
    assert root_item["role"] == "admin" and root_item["deactivated_at"] is None


def test_admins_filter_by_role(client: TestClient, people: dict[str, Json]) -> None:
    root = people["root"]
    promoted = client.put(
        f"/users/{people['bob']['user']['id']}/role", headers=bearer(root), json={"role": "analyst"}
    )
    assert promoted.status_code == 200, promoted.text
    assert handles(directory(client, root, role="admin")) == ["root"]
    assert handles(directory(client, root, role="analyst")) == ["bob"]
    assert handles(directory(client, root, role="member", q="ad")) == ["ada", "adam"]


@pytest.mark.parametrize(
    "params", [{"include_inactive": "true"}, {"include_inactive": "false"}, {"role": "admin"}]
)
def test_admin_only_filters_from_anyone_else_are_403(
    client: TestClient, people: dict[str, Json], params: Json
) -> None:
    refused = client.get("/users", headers=bearer(people["ada"]), params=params)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"


def test_erased_people_never_appear_not_even_to_admins(
    client: TestClient, people: dict[str, Json]
) -> None:
    root = people["root"]
    erased = client.post(
        f"/users/{people['adam']['user']['id']}/erasure",
        headers=bearer(root),
        json={"confirm": True},
    )
    assert erased.status_code == 202, erased.text
    for who, params in ((people["ada"], {}), (root, {"include_inactive": "true"})):
        listed = directory(client, who, **params)
        assert "adam" not in handles(listed)
        assert not any(h.startswith("former-") for h in handles(listed))
        assert "Former member" not in str(listed)
    assert handles(directory(client, root, include_inactive="true", q="former")) == []


BAD_INPUT: list[tuple[Json, int]] = [
    ({"q": ""}, 422),
    ({"q": "a" * 101}, 422),
    ({"limit": 0}, 422),
    ({"limit": 101}, 422),
    ({"role": "king"}, 422),
    ({"include_inactive": "maybe"}, 422),
    ({"sort": "email"}, 422),  # unknown parameter
    ({"cursor": "not-a-cursor"}, 400),
    ({"cursor": "WzFd"}, 400),  # [1]: a cursor of the wrong kind
]


def test_bad_input_is_a_4xx_problem(client: TestClient, people: dict[str, Json]) -> None:
    for params, status in BAD_INPUT:
        response = client.get("/users", headers=bearer(people["root"]), params=params)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
def test_no_token_or_a_bad_one_is_401(
    client: TestClient, people: dict[str, Json], authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/users", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_a_page_takes_the_same_few_queries_however_many_people_it_holds(
    client: TestClient, people: dict[str, Json]
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(*args: Any) -> None:
        if "outbox" not in args[2]:  # the relay shares the engine
            statements.append(args[2])

    def queries(limit: int) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = directory(client, people["root"], limit=limit, include_inactive="true")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(page["items"]) == min(limit, 6)
        return len(statements)

    assert queries(1) == queries(6)
