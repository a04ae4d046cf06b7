"""Tag autocomplete and a person's topics: counted and scored only over what the caller sees."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.search.tests.conftest import (
    Headers,
    People,
    answer_to,
    article,
    deleted,
    joined,
    left,
    post,
    question,
    registered,
    settle_content,
)
from shared.ids import new_id
from shared.testing.fixtures import wait_for

Publish = Callable[..., None]


def tags(client: TestClient, headers: Headers, **params: Any) -> list[tuple[str, int]]:
    response = client.get("/tags", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [(item["tag"], item["count"]) for item in response.json()["items"]]


def topics_of(client: TestClient, headers: Headers, user_id: UUID) -> dict[str, Any]:
    response = client.get(f"/experts/{user_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_person(client: TestClient, headers: Headers, user_id: UUID) -> None:
    wait_for(lambda: client.get(f"/experts/{user_id}", headers=headers).status_code == 200)


def test_tags_match_a_prefix_with_or_without_hash_in_any_case_most_used_first(
    search_client: TestClient, people: People, publish_events: Publish
) -> None:
    me = people.header(new_id())
    settle_content(
        search_client,
        me,
        publish_events,
        post(body="a", tags=["python", "web"]),
        post(body="b", tags=["Python"]),
        question(title="c", tags=["python", "pytest"]),
        post(body="d", tags=["postgres"]),
        post(body="e", tags=["postgres", "rust"]),
        post(body="f", tags=["pyramid"]),
    )

    assert tags(search_client, me, prefix="py") == [("python", 3), ("pyramid", 1), ("pytest", 1)]
    assert tags(search_client, me, prefix="#PYT") == [("python", 3), ("pytest", 1)]
    assert tags(search_client, me, prefix="p", limit=2) == [("python", 3), ("postgres", 2)]
    assert tags(search_client, me, prefix="nothing") == []
    # No prefix: the most used tags of all.
    assert tags(search_client, me, limit=3) == [("python", 3), ("postgres", 2), ("pyramid", 1)]
    # Characters a regular expression would read are taken literally.
    assert tags(search_client, me, prefix="p.*") == []


def test_a_tag_used_only_in_a_private_group_is_shown_to_members_only(
    search_client: TestClient, people: People, publish_events: Publish
) -> None:
    member, outsider = new_id(), new_id()
    group = new_id()
    publish_events(joined(group, member))
    member_header, outsider_header = people.header(member), people.header(outsider)
    settle_content(
        search_client,
        member_header,
        publish_events,
        post(body="x", tags=["secretplan", "shared"], group_id=group),
        post(body="y", tags=["shared"]),
    )
    wait_for(lambda: ("secretplan", 1) in tags(search_client, member_header, prefix="s"))

    assert tags(search_client, member_header, prefix="s") == [("shared", 2), ("secretplan", 1)]
    assert tags(search_client, outsider_header, prefix="s") == [("shared", 1)]
    assert tags(search_client, outsider_header) == [("shared", 1)]

    publish_events(left(group, member))
    wait_for(lambda: tags(search_client, member_header, prefix="s") == [("shared", 1)])


def test_deleted_items_do_not_count(
    search_client: TestClient, people: People, publish_events: Publish
) -> None:
    me = people.header(new_id())
    gone = post(body="x", tags=["ephemeral"])
    settle_content(search_client, me, publish_events, gone, post(body="y", tags=["ephemeral"]))
    assert tags(search_client, me, prefix="eph") == [("ephemeral", 2)]

    settle_content(search_client, me, publish_events, deleted(gone, version=2))

    assert tags(search_client, me, prefix="eph") == [("ephemeral", 1)]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 51}, {"prefix": "x" * 52}], ids=["zero", "big", "long"]
)
def test_bad_tag_parameters_are_422_problems(
    search_client: TestClient, people: People, params: dict[str, Any]
) -> None:
    response = search_client.get("/tags", params=params, headers=people.header(new_id()))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_a_persons_topics_are_scored_as_experts_scores_them_strongest_first(
    search_client: TestClient, people: People, publish_events: Publish
) -> None:
    me = people.header(new_id())
    alice, asker = new_id(), new_id()
    asked = question(title="Kubernetes ingress?", tags=["kubernetes"], author_id=asker)
    answer = answer_to(asked, body="Use an ingress controller", author_id=alice)
    guide = article(title="Ingress guide", body="Routing", tags=["kubernetes"], author_id=alice)
    aside = post(body="Some python", tags=["python"], author_id=alice)
    publish_events(registered(alice, "alice"))
    settle_content(search_client, me, publish_events, asked, answer, guide, aside)
    wait_for_person(search_client, me, alice)

    body = topics_of(search_client, me, alice)

    assert (body["user_id"], body["handle"], body["display_name"]) == (str(alice), "alice", "Alice")
    assert [topic["tag"] for topic in body["topics"]] == ["kubernetes", "python"]
    kubernetes = body["topics"][0]
    # The answer carries no tag: its question's tag makes it evidence on the topic.
    assert kubernetes["items"] == 2
    assert {item["content_id"] for item in kubernetes["evidence"]} == {
        str(guide.content_id),
        str(answer.content_id),
    }
    ranked = search_client.get("/experts", params={"topic": "kubernetes"}, headers=me).json()
    as_expert = next(e for e in ranked["experts"] if e["user_id"] == str(alice))
    assert kubernetes["score"] == as_expert["score"]
    assert kubernetes["evidence"] == as_expert["evidence"]
    assert kubernetes["why"] == as_expert["why"]
    assert body["topics"][1]["items"] == 1

    limited = search_client.get(f"/experts/{alice}", params={"limit": 1}, headers=me).json()
    assert [topic["tag"] for topic in limited["topics"]] == ["kubernetes"]


def test_a_persons_private_group_work_is_shown_to_members_only(
    search_client: TestClient, people: People, publish_events: Publish
) -> None:
    alice, member, outsider = new_id(), new_id(), new_id()
    group = new_id()
    publish_events(registered(alice, "alice"), joined(group, member), joined(group, alice))
    member_header, outsider_header = people.header(member), people.header(outsider)
    secret_q = question(title="Launch codes?", tags=["launch"], group_id=group)
    secret_a = answer_to(secret_q, body="The launch codes are", author_id=alice)
    public = post(body="Gardening notes", tags=["gardening"], author_id=alice)
    # The same tag in the open: the outsider sees the topic, counted and shown without
    # the group's items.
    open_launch = post(body="Rocket launch photos", tags=["launch"], author_id=alice)
    settle_content(
        search_client, member_header, publish_events, secret_q, secret_a, public, open_launch
    )
    wait_for_person(search_client, outsider_header, alice)
    wait_for(
        lambda: len(topics_of(search_client, member_header, alice)["topics"]) == 2,
    )

    seen_by_member = {t["tag"]: t for t in topics_of(search_client, member_header, alice)["topics"]}
    assert set(seen_by_member) == {"launch", "gardening"}
    assert seen_by_member["launch"]["items"] == 2
    assert str(secret_a.content_id) in {
        e["content_id"] for e in seen_by_member["launch"]["evidence"]
    }

    outsider_topics = topics_of(search_client, outsider_header, alice)["topics"]
    seen_by_outsider = {t["tag"]: t for t in outsider_topics}
    assert set(seen_by_outsider) == {"launch", "gardening"}
    assert seen_by_outsider["launch"]["items"] == 1
    evidence = {e["content_id"] for t in outsider_topics for e in t["evidence"]}
    assert evidence == {str(public.content_id), str(open_launch.content_id)}
    assert seen_by_outsider["launch"]["score"] < seen_by_member["launch"]["score"]


def test_unknown_person_is_404_and_a_malformed_id_422(
    search_client: TestClient, people: People
) -> None:
    me = people.header(new_id())
    missing = search_client.get(f"/experts/{new_id()}", headers=me)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert search_client.get("/experts/not-a-uuid", headers=me).status_code == 422


@pytest.mark.parametrize("path", ["/tags", f"/experts/{new_id()}"])
def test_no_token_or_a_bad_token_is_401(search_client: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not.a.token"}):
        response = search_client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
