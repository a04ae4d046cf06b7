"""Semantic retrieval on both engines: found by meaning, never past the permission filter.

The real model (`all-MiniLM-L6-v2`, fetched at setup) embeds every item through the real
`search-embeddings` consumer; searches go through the service's HTTP API.
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.search.main import create_app
from services.search.tests.conftest import (
    Headers,
    People,
    deleted,
    joined,
    post,
    question,
    require_embedding_model,
    search_items,
    settle_content,
    updated,
)
from services.search.tests.fake_posts import FakePosts, serve_fake_posts
from shared.auth import TokenIssuer, TokenVerifier
from shared.ids import new_id
from shared.testing.fixtures import ServiceClientFactory, wait_for

# No content word in common with the query ("laptop battery last longer"): only meaning.
BATTERY = "Tips to extend notebook power life: dim the screen and close background apps"
QUERY = "how can I make my laptop battery last longer"


def similar(client: TestClient, headers: Headers, **draft: Any) -> list[dict[str, Any]]:
    response = client.post("/questions/similar", json=draft, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def embedded(client: TestClient, headers: Headers, publish: Callable[..., None]) -> None:
    """Wait until the embedding consumer has caught up with everything published so far.

    The marker comes after everything else in the stream, and the query shares no word
    with it: only its vector can find it (a query sharing a word would find it as soon as
    it is keyword-indexed, before any vector exists)."""
    marker = post(title="zebra crossing", body="pedestrians cross the road at the zebra")
    query = "where should walkers get over a street safely"
    assert not set(query.split()) & set(f"{marker.title} {marker.body}".split())
    publish(marker)
    wait_for(
        lambda: str(marker.content_id)
        in [item["id"] for item in search_items(client, headers, query)],
        timeout=30,
    )


def test_search_finds_an_item_by_meaning_with_its_snippet(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    tips = post(body=BATTERY)
    unrelated = post(body="The quarterly sales figures are due on Friday")
    settle_content(semantic_client, me, publish_events, tips, unrelated)
    embedded(semantic_client, me, publish_events)

    found = search_items(semantic_client, me, QUERY)
    assert [item["id"] for item in found][:1] == [str(tips.content_id)]
    assert str(unrelated.content_id) not in [item["id"] for item in found]
    assert found[0]["snippet"].startswith("Tips to extend notebook power life")


def test_similar_questions_find_the_same_question_in_other_words(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    asked = question(
        title="Changing the JWT key", body="What do I run to replace the token signing key?"
    )
    other = question(title="Where is the cafeteria menu?", body="Looking for lunch options")
    settle_content(semantic_client, me, publish_events, asked, other)
    embedded(semantic_client, me, publish_events)

    items = similar(semantic_client, me, title="How do I rotate the signing secret for tokens")
    assert [item["question_id"] for item in items][:1] == [str(asked.content_id)]
    assert str(other.content_id) not in [item["question_id"] for item in items]


def test_private_content_is_never_found_by_meaning_by_an_outsider(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    group, member_id = new_id(), new_id()
    member, outsider = people.header(member_id), people.header(new_id())
    secret = post(body=BATTERY, group_id=group)
    secret_question = question(title="Extending notebook power life", group_id=group)
    publish_events(joined(group, member_id))
    settle_content(semantic_client, member, publish_events, secret, secret_question)
    embedded(semantic_client, member, publish_events)

    assert str(secret.content_id) in [i["id"] for i in search_items(semantic_client, member, QUERY)]
    assert search_items(semantic_client, outsider, QUERY) == []
    assert similar(semantic_client, outsider, title=QUERY) == []
    assert similar(semantic_client, outsider, title=QUERY, group_id=str(group)) == []
    for draft_group in (None, str(group)):
        inside = similar(semantic_client, member, title=QUERY, group_id=draft_group)
        assert [item["question_id"] for item in inside] == [str(secret_question.content_id)]


def test_a_deleted_item_is_no_longer_found_by_meaning(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    tips = post(body=BATTERY)
    settle_content(semantic_client, me, publish_events, tips)
    embedded(semantic_client, me, publish_events)
    assert [i["id"] for i in search_items(semantic_client, me, QUERY)] == [str(tips.content_id)]

    publish_events(deleted(tips, version=2))
    wait_for(lambda: search_items(semantic_client, me, QUERY) == [])


def test_filters_apply_to_items_found_by_meaning(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    tips = post(body=BATTERY, tags=["hardware"])
    settle_content(semantic_client, me, publish_events, tips)
    embedded(semantic_client, me, publish_events)

    assert [i["id"] for i in search_items(semantic_client, me, QUERY, tag="hardware")] == [
        str(tips.content_id)
    ]
    assert search_items(semantic_client, me, QUERY, tag="travel") == []
    assert search_items(semantic_client, me, QUERY, kind="article") == []


def test_pages_of_a_hybrid_search_hold_every_match_once(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    items = [post(body=f"battery tip number {n}: {BATTERY}") for n in range(7)]
    settle_content(semantic_client, me, publish_events, *items)
    embedded(semantic_client, me, publish_events)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": QUERY, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = semantic_client.get("/search", params=params, headers=me)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json().get("next_cursor")
        if not cursor:
            break
    assert sorted(seen) == sorted(str(item.content_id) for item in items)


def test_readyz_tells_the_model_and_the_embedding_backlog(semantic_client: TestClient) -> None:
    body = semantic_client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["semantic"]["state"] == "on"
    assert body["semantic"]["model"] == "all-minilm-l6-v2-q"
    assert isinstance(body["semantic"]["backlog"], int)


@pytest.mark.parametrize("engine_name", ["embedded"], indirect=True)
def test_without_the_model_search_is_keyword_only_and_says_so(
    search_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    me = people.header(new_id())
    body = search_client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["semantic"]["state"] == "off"
    assert "KNOWFLOW_SEMANTIC_MODEL" in body["semantic"]["reason"]

    tips = post(body=BATTERY)
    settle_content(search_client, me, publish_events, tips)
    assert search_items(search_client, me, QUERY) == []
    assert [i["id"] for i in search_items(search_client, me, "notebook power")] == [
        str(tips.content_id)
    ]


def test_a_rebuild_makes_the_vectors_items_lack_and_only_those(
    service_client: ServiceClientFactory,
    engine_settings: dict[str, str],
    people: People,
    publish_events: Callable[..., None],
    token_issuer: TokenIssuer,
) -> None:
    require_embedding_model()
    posts = FakePosts(
        TokenVerifier(issuer="knowflow-identity", audience="knowflow", jwks=token_issuer.jwks())
    )
    me = people.header(new_id())
    admin = {
        "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='root', is_admin=True)}"
    }
    with (
        serve_fake_posts(posts) as posts_url,
        service_client(create_app, name="search", posts_url=posts_url, **engine_settings) as client,
    ):
        tips = post(body=BATTERY)
        posts.put(tips)
        settle_content(client, me, publish_events, tips)
        embedded(client, me, publish_events)

        first = client.post("/admin/reindex", headers=admin)
        assert first.status_code == 200, first.text
        assert (first.json()["copied"], first.json()["vectors"]) == (1, 0)  # current already

        # Posts holds a newer version the events have not brought yet: it is embedded.
        posts.put(updated(tips, version=2, body="Power saving settings for notebooks"))
        second = client.post("/admin/reindex", headers=admin).json()
        assert second["vectors"] == 1
        assert client.post("/admin/reindex", headers=admin).json()["vectors"] == 0


def test_a_query_of_words_the_model_does_not_know_is_matched_by_keyword_only(
    semantic_client: TestClient, people: People, publish_events: Callable[..., None]
) -> None:
    """Fragments of unknown words (codes, ids) look alike to the model: never a match."""
    me = people.header(new_id())
    code = post(body="Deploy failed with zq7f3a91c2 on the build agent")
    settle_content(semantic_client, me, publish_events, code)
    embedded(semantic_client, me, publish_events)

    assert [i["id"] for i in search_items(semantic_client, me, "zq7f3a91c2")] == [
        str(code.content_id)
    ]
    assert search_items(semantic_client, me, "zq0b4e8d17") == []
    assert search_items(semantic_client, me, "zq7f3a91c2nothing") == []
