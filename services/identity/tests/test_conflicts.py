"""Clashing writes are a 409, never a 500: letter case, and identical requests racing."""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.identity.tests.test_routes import bearer, identity_app, register
from shared.testing.fixtures import ServiceClientFactory

RACERS = 6


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def all_at_once(count: int, send: Any) -> list[Any]:
    """`count` calls of `send()` from as many threads at the same moment."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _i: send(), range(count)))


def test_an_email_registered_again_in_another_letter_case_is_409(client: TestClient) -> None:
    register(client, "ada")
    again = client.post(
        "/auth/register",
        json={
            "handle": "ada2",
            "email": "ADA@Example.ORG",
            "password": "correct horse",
            "display_name": "Ada",
        },
    )
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    assert "email" in again.json()["detail"]


@pytest.mark.parametrize("attempt", range(3))
def test_identical_registrations_sent_at_once_make_one_account_and_409s(
    client: TestClient, attempt: int
) -> None:
    body = {
        "handle": f"twin{attempt}",
        "email": f"twin{attempt}@example.org",
        "password": "correct horse",
        "display_name": "Twin",
    }
    responses = all_at_once(RACERS, lambda: client.post("/auth/register", json=body))
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: RACERS - 1}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["request_id"]


@pytest.mark.parametrize("attempt", range(3))
def test_identical_member_adds_sent_at_once_add_once_and_409(
    client: TestClient, attempt: int
) -> None:
    ada = register(client, f"ada{attempt}")
    bob = register(client, f"bob{attempt}")
    group = client.post(
        "/groups", headers=bearer(ada), json={"name": "Open", "slug": f"open-{attempt}"}
    ).json()

    def join() -> Any:
        return client.post(
            f"/groups/{group['id']}/members",
            headers=bearer(bob),
            json={"user_id": bob["user"]["id"]},
        )

    responses = all_at_once(RACERS, join)
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: RACERS - 1}, [r.text for r in responses]
    members = client.get(f"/groups/{group['id']}/members", headers=bearer(ada)).json()["items"]
    assert sorted(member["handle"] for member in members) == sorted(
        [f"ada{attempt}", f"bob{attempt}"]
    )


def create_group(client: TestClient, owner: dict[str, Any], slug: str, visibility: str) -> Any:
    return client.post(
        "/groups",
        headers=bearer(owner),
        json={"name": slug.title(), "slug": slug, "visibility": visibility},
    )


def test_a_private_groups_slug_does_not_reveal_it_to_a_non_member(client: TestClient) -> None:
    ada, mallory = register(client, "ada"), register(client, "mallory")
    assert create_group(client, ada, "layoffs-2027", "private").status_code == 201
    for visibility in ("private", "open"):
        probe = create_group(client, mallory, "layoffs-2027", visibility)
        assert probe.status_code == 201, probe.text  # the same answer as for a free slug
        assert probe.json()["owner_id"] == mallory["user"]["id"]
    mine = {
        g["slug"]: g["owner_id"]
        for g in client.get("/groups", headers=bearer(mallory)).json()["items"]
    }
    assert mine == {"layoffs-2027": mallory["user"]["id"]}


def test_an_open_groups_slug_is_taken_for_everyone(client: TestClient) -> None:
    ada, bob = register(client, "ada"), register(client, "bob")
    assert create_group(client, ada, "python", "open").status_code == 201
    for visibility in ("open", "private"):
        taken = create_group(client, bob, "python", visibility)
        assert taken.status_code == 409, taken.text
        assert "python" in taken.json()["detail"]


def test_identical_open_groups_created_at_once_make_one_group(client: TestClient) -> None:
    ada = register(client, "ada")
    responses = all_at_once(RACERS, lambda: create_group(client, ada, "racing", "open"))
    assert Counter(r.status_code for r in responses) == {201: 1, 409: RACERS - 1}
