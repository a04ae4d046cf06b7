"""Tokens, input validation and the admin-only endpoint; errors are problem+json, never 5xx."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services.digests.tests.factories import content, shown_ids
from shared.events.contracts import FollowCreated, UserRegistered
from shared.ids import new_id, utcnow

AuthHeader = Callable[..., dict[str, str]]


@pytest.mark.parametrize("path", ["/digests/me", f"/digests/users/{new_id()}"])
def test_no_token_is_401_problem(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_bad_token_is_401(client: TestClient) -> None:
    response = client.get("/digests/me", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401


@pytest.mark.parametrize("period", ["hourly", "", "DAILY"])
def test_bad_period_is_422_problem(
    client: TestClient, auth_header: AuthHeader, period: str
) -> None:
    response = client.get("/digests/me", params={"period": period}, headers=auth_header())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("until", "status"),
    [
        ("yesterday", 422),
        ("2025-13-45T00:00:00Z", 422),
        ((utcnow() + timedelta(days=1)).isoformat(), 400),
        ("0001-01-01T00:00:00+00:00", 400),
        ("0001-01-01T00:00:00+05:00", 400),
        ("9999-12-31T23:59:59-05:00", 400),
        ((utcnow() - timedelta(days=400)).isoformat(), 400),
    ],
)
def test_bad_until_is_4xx_problem(
    client: TestClient, auth_header: AuthHeader, until: str, status: int
) -> None:
    response = client.get("/digests/me", params={"until": until}, headers=auth_header())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_naive_until_is_read_as_utc(client: TestClient, auth_header: AuthHeader) -> None:
    naive = (utcnow() - timedelta(hours=3)).replace(tzinfo=None).isoformat()
    response = client.get("/digests/me", params={"until": naive}, headers=auth_header())
    assert response.status_code == 200
    assert response.json()["until"].startswith(naive[:19])


def test_empty_digest_for_someone_who_follows_nothing(
    client: TestClient, auth_header: AuthHeader
) -> None:
    me = new_id()
    body = client.get("/digests/me", headers=auth_header(me)).json()
    assert body["user_id"] == str(me)
    assert body["sections"] == []
    assert body["total_items"] == 0


def test_admin_digest_endpoint_is_403_for_non_admins_even_for_their_own_id(
    client: TestClient, auth_header: AuthHeader
) -> None:
    me = new_id()
    for target in (me, new_id()):
        response = client.get(f"/digests/users/{target}", headers=auth_header(me))
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"


def test_admin_reads_someones_digest_as_they_would_see_it(
    client: TestClient,
    publish: Callable[..., None],
    auth_header: AuthHeader,
    admin_header: dict[str, str],
) -> None:
    alice, bob = new_id(), new_id()
    item = content(author=bob)
    publish(
        UserRegistered(user_id=alice, handle="alice", display_name="Alice"),
        FollowCreated(follower_id=alice, target_type="user", target=str(bob)),
        item,
    )

    response = client.get(
        f"/digests/users/{alice}", params={"period": "weekly"}, headers=admin_header
    )

    assert response.status_code == 200
    assert response.json()["period"] == "weekly"
    assert shown_ids(response.json()) == [str(item.content_id)]
    assert client.get("/digests/users/not-a-uuid", headers=admin_header).status_code == 422
    unknown = client.get(f"/digests/users/{new_id()}", headers=admin_header)
    assert unknown.status_code == 404
