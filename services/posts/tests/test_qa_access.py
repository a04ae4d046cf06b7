"""Every Q&A endpoint: no token is a 401, and a private group's thread is a 404 to outsiders."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, answer, ask

SOME_ID = "0190a0a0-0000-7000-8000-000000000000"
ENDPOINTS = [
    ("POST", "/questions"),
    ("GET", "/questions"),
    ("GET", f"/questions/{SOME_ID}"),
    ("PATCH", f"/questions/{SOME_ID}"),
    ("DELETE", f"/questions/{SOME_ID}"),
    ("GET", f"/questions/{SOME_ID}/revisions"),
    ("GET", f"/questions/{SOME_ID}/revisions/1"),
    ("PUT", f"/questions/{SOME_ID}/vote"),
    ("DELETE", f"/questions/{SOME_ID}/vote"),
    ("PUT", f"/questions/{SOME_ID}/accepted-answer"),
    ("DELETE", f"/questions/{SOME_ID}/accepted-answer"),
    ("POST", f"/questions/{SOME_ID}/close"),
    ("POST", f"/questions/{SOME_ID}/formalize"),
    ("GET", f"/questions/{SOME_ID}/answers"),
    ("POST", f"/questions/{SOME_ID}/answers"),
    ("POST", f"/questions/{SOME_ID}/comments"),
    ("GET", f"/answers/{SOME_ID}"),
    ("PATCH", f"/answers/{SOME_ID}"),
    ("DELETE", f"/answers/{SOME_ID}"),
    ("GET", f"/answers/{SOME_ID}/revisions"),
    ("PUT", f"/answers/{SOME_ID}/vote"),
    ("DELETE", f"/answers/{SOME_ID}/vote"),
    ("POST", f"/answers/{SOME_ID}/comments"),
    ("PATCH", f"/comments/{SOME_ID}"),
    ("DELETE", f"/comments/{SOME_ID}"),
    ("GET", "/knowledge-health/tags"),
    ("GET", f"/knowledge-health/groups/{SOME_ID}"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_qa_endpoint_needs_a_valid_token(posts: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = posts.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"


def test_a_private_groups_thread_is_a_404_to_outsiders_on_every_endpoint(
    posts: TestClient, user: Callable[[str], User], groups: Groups, admin: User
) -> None:
    owner, member, eve = user("olga"), user("mia"), user("eve")
    secret = groups.create(owner)
    groups.add(secret, member)
    question = ask(posts, owner, group_id=str(secret), tags=["vaultops"])
    reply = answer(posts, member, question["id"])
    comment = posts.post(
        f"/answers/{reply['id']}/comments", json={"body": "ok"}, headers=owner.headers
    ).json()
    q, a, c = question["id"], reply["id"], comment["id"]
    calls: list[tuple[str, str, Any]] = [
        ("GET", f"/questions/{q}", None),
        ("PATCH", f"/questions/{q}", {"title": "x"}),
        ("DELETE", f"/questions/{q}", None),
        ("GET", f"/questions/{q}/revisions", None),
        ("GET", f"/questions/{q}/revisions/1", None),
        ("PUT", f"/questions/{q}/vote", {"value": 1}),
        ("DELETE", f"/questions/{q}/vote", None),
        ("PUT", f"/questions/{q}/accepted-answer", {"answer_id": a}),
        ("DELETE", f"/questions/{q}/accepted-answer", None),
        ("POST", f"/questions/{q}/close", {"duplicate_of": q}),
        ("POST", f"/questions/{q}/formalize", {"title": "t"}),
        ("GET", f"/questions/{q}/answers", None),
        ("POST", f"/questions/{q}/answers", {"body": "b"}),
        ("POST", f"/questions/{q}/comments", {"body": "b"}),
        ("GET", f"/answers/{a}", None),
        ("PATCH", f"/answers/{a}", {"body": "b"}),
        ("DELETE", f"/answers/{a}", None),
        ("GET", f"/answers/{a}/revisions", None),
        ("PUT", f"/answers/{a}/vote", {"value": 1}),
        ("DELETE", f"/answers/{a}/vote", None),
        ("POST", f"/answers/{a}/comments", {"body": "b"}),
        ("PATCH", f"/comments/{c}", {"body": "b"}),
        ("DELETE", f"/comments/{c}", None),
        ("GET", f"/knowledge-health/groups/{secret}", None),
        ("GET", "/knowledge-health/tags", None),
    ]
    for outsider in (eve, admin):
        for method, path, body in calls:
            if outsider is admin and "knowledge-health" in path:
                continue  # administrators read every group's figures, not its content
            response = posts.request(method, path, json=body, headers=outsider.headers)
            expected = 403 if path == "/knowledge-health/tags" else 404
            assert response.status_code == expected, (outsider.handle, method, path, response.text)
        listed = posts.get("/questions", headers=outsider.headers).json()
        assert q not in [item["id"] for item in listed["items"]]
        by_group = posts.get(
            "/questions", params={"group_id": str(secret)}, headers=outsider.headers
        )
        assert by_group.json()["items"] == []
    # Still there for the members.
    assert posts.get(f"/questions/{q}", headers=member.headers).status_code == 200
    assert posts.get(f"/answers/{a}", headers=member.headers).status_code == 200
    listed = posts.get("/questions", params={"tag": "vaultops"}, headers=member.headers).json()
    assert [item["id"] for item in listed["items"]] == [q]
