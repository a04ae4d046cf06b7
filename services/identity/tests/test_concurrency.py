"""Optimistic concurrency on profiles and groups: ETag on reads, If-Match on the profile's PATCH."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.identity.tests.test_routes import bearer, identity_app, register
from shared.testing.fixtures import ServiceClientFactory


@pytest.fixture
def client(service_client: ServiceClientFactory) -> Iterator[TestClient]:
    with service_client(identity_app, name="identity") as test_client:
        yield test_client


def test_a_profile_read_carries_an_etag_and_a_matching_if_match_edits(client: TestClient) -> None:
    ada = register(client, "ada")
    me = client.get("/users/me", headers=bearer(ada))
    etag = me.headers["etag"]
    assert etag.startswith('"')
    public = client.get(f"/users/{ada['user']['id']}", headers=bearer(register(client, "bob")))
    assert public.headers["etag"] == etag
    edited = client.patch(
        "/users/me", json={"bio": "Engines"}, headers={**bearer(ada), "If-Match": etag}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["bio"] == "Engines"
    assert edited.headers["etag"] != etag
    assert client.get("/users/me", headers=bearer(ada)).headers["etag"] == edited.headers["etag"]


def test_a_profile_edit_with_a_stale_etag_is_412_and_changes_nothing(client: TestClient) -> None:
    ada = register(client, "ada")
    stale = client.get("/users/me", headers=bearer(ada)).headers["etag"]
    assert client.patch("/users/me", json={"bio": "first"}, headers=bearer(ada)).status_code == 200
    refused = client.patch(
        "/users/me", json={"bio": "second"}, headers={**bearer(ada), "If-Match": stale}
    )
    assert refused.status_code == 412, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/users/me", headers=bearer(ada)).json()["bio"] == "first"


def test_if_match_star_or_none_edits_a_profile_unconditionally(client: TestClient) -> None:
    ada = register(client, "ada")
    star = client.patch("/users/me", json={"bio": "a"}, headers={**bearer(ada), "If-Match": "*"})
    assert star.status_code == 200
    assert client.patch("/users/me", json={"bio": "b"}, headers=bearer(ada)).status_code == 200
    assert client.get("/users/me", headers=bearer(ada)).json()["bio"] == "b"


def test_a_group_read_carries_a_stable_etag(client: TestClient) -> None:
    ada = register(client, "ada")
    group = client.post(
        "/groups", headers=bearer(ada), json={"name": "Engines", "slug": "engines"}
    ).json()
    first = client.get(f"/groups/{group['id']}", headers=bearer(ada))
    assert first.status_code == 200 and first.headers["etag"].startswith('"')
    assert (
        client.get(f"/groups/{group['id']}", headers=bearer(ada)).headers["etag"]
        == (first.headers["etag"])
    )


def test_the_openapi_document_declares_etag_if_match_and_412(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    me = spec["paths"]["/users/me"]
    assert "ETag" in me["get"]["responses"]["200"]["headers"]
    assert "ETag" in me["patch"]["responses"]["200"]["headers"]
    assert "412" in me["patch"]["responses"]
    assert "If-Match" in {parameter["name"] for parameter in me["patch"]["parameters"]}
    for path in ("/users/{user_id}", "/groups/{group_id}"):
        assert "ETag" in spec["paths"][path]["get"]["responses"]["200"]["headers"]
