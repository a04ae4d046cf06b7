"""Private group content is visible to members only, in search and in experts."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    Headers,
    People,
    article,
    joined,
    left,
    post,
    question,
    reply,
    search_ids,
    settle_content,
)
from shared.ids import new_id
from shared.testing.fixtures import wait_for


def experts(client: TestClient, headers: Headers, topic: str) -> list[dict[str, Any]]:
    response = client.get("/experts", params={"topic": topic}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["experts"]
    return found


def test_private_group_items_are_visible_to_members_only_until_they_leave(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    group, member_id = new_id(), new_id()
    member, outsider = people.header(member_id), people.header(new_id())
    secret = post(title="Roadmap", body="secret roadmap for next year", group_id=group)
    public = post(body="public roadmap summary")
    publish_events(joined(group, member_id))
    settle_content(search_client, member, publish_events, secret, public)
    both = {str(secret.content_id), str(public.content_id)}
    wait_for(lambda: set(search_ids(search_client, member, "roadmap")) == both)

    assert search_ids(search_client, outsider, "roadmap") == [str(public.content_id)]
    assert search_ids(search_client, outsider, "secret") == []
    assert search_ids(search_client, outsider, "roadmap", group_id=str(group)) == []
    assert search_ids(search_client, outsider, "roadmap", kind="post") == [str(public.content_id)]

    publish_events(left(group, member_id))
    wait_for(lambda: search_ids(search_client, member, "secret") == [])
    assert search_ids(search_client, member, "roadmap") == [str(public.content_id)]


def test_experts_for_a_non_member_ignore_private_content_entirely(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    group, member_id = new_id(), new_id()
    insider, public_author = new_id(), new_id()
    member, outsider = people.header(member_id), people.header(new_id())
    private_articles = [
        article(
            title="Kubernetes internals",
            body="etcd and kubernetes",
            author_id=insider,
            group_id=group,
            tags=["kubernetes"],
        )
        for _ in range(3)
    ]
    # The public author also answered in a private thread: that must not count for outsiders.
    private_answer = reply(thread=private_articles[0], body="agreed", author_id=public_author)
    public_post = post(body="a kubernetes tip", author_id=public_author)
    publish_events(joined(group, member_id))
    settle_content(
        search_client, member, publish_events, *private_articles, private_answer, public_post
    )
    wait_for(
        lambda: [e["user_id"] for e in experts(search_client, member, "kubernetes")][:1]
        == [str(insider)]
    )

    seen_by_member = {e["user_id"]: e for e in experts(search_client, member, "kubernetes")}
    seen_by_outsider = experts(search_client, outsider, "kubernetes")

    assert [e["user_id"] for e in seen_by_outsider] == [str(public_author)]
    outsider_evidence = {item["content_id"] for item in seen_by_outsider[0]["evidence"]}
    assert outsider_evidence == {str(public_post.content_id)}
    assert seen_by_outsider[0]["score"] < seen_by_member[str(public_author)]["score"]
    assert str(private_answer.content_id) in {
        item["content_id"] for item in seen_by_member[str(public_author)]["evidence"]
    }
    assert experts(search_client, outsider, "etcd") == []


def similar_ids(client: TestClient, headers: Headers, **draft: Any) -> list[str]:
    response = client.post("/questions/similar", json=draft, headers=headers)
    assert response.status_code == 200, response.text
    return [item["question_id"] for item in response.json()["items"]]


def test_a_private_groups_question_is_never_suggested_to_an_outsider(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    group, member_id = new_id(), new_id()
    member, outsider = people.header(member_id), people.header(new_id())
    secret = question(title="Quarterly layoffs plan", body="layoffs plan details", group_id=group)
    public = question(title="Quarterly planning", body="how we plan the quarter")
    publish_events(joined(group, member_id))
    settle_content(search_client, member, publish_events, secret, public)
    wait_for(lambda: str(secret.content_id) in similar_ids(search_client, member, title="layoffs"))

    draft = {"title": "quarterly layoffs plan", "body": "layoffs"}
    assert similar_ids(search_client, member, **draft)[0] == str(secret.content_id)
    assert similar_ids(search_client, outsider, **draft) == [str(public.content_id)]
    # Naming the group in the draft grants nothing.
    assert similar_ids(search_client, outsider, **draft, group_id=str(group)) == [
        str(public.content_id)
    ]
    assert similar_ids(search_client, outsider, title="layoffs") == []

    publish_events(left(group, member_id))
    wait_for(lambda: similar_ids(search_client, member, title="layoffs") == [])


def test_every_endpoint_needs_a_valid_token(search_client: TestClient) -> None:
    for path, params in (("/search", {"q": "x"}), ("/experts", {"topic": "x"})):
        for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Token x"}):
            response = search_client.get(path, params=params, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["content-type"].startswith("application/problem+json")
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        response = search_client.post("/questions/similar", json={"title": "x"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"].startswith("application/problem+json")
